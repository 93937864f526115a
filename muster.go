// Package muster holds the domain of a multiserver job scheduler: jobs, their
// steps and schedules, the targets that run them, the instructions a master
// posts to a target's download list, and the runs a target reports back.
//
// The package does no I/O. Storage, the HTTP API, the agent protocol and the
// daemons import it; it imports none of them.
package muster

// Version is the release of this build, stamped at build time with
// -ldflags "-X github.com/musterhq/muster.Version=1.2.0". It is reported by
// targets when they enlist and at every poll, and shown by `muster
// --version`; a build not stamped says which commit it was built from
// when the Go toolchain recorded it.
var Version = "0.1.0-dev"
