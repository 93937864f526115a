//go:build race

package testenv

// Race reports whether the tests are built with the race detector.
const Race = true
