// Package e2e holds end-to-end tests of muster: a real master and real
// targets in one process (see package testenv), talking over TLS on
// 127.0.0.1 and running real step processes.
package e2e
