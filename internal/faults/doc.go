// Package faults is muster's fault suite: real master and target processes
// (the muster command, built once per run) killed with SIGKILL, restarted,
// cut off from each other by a fault proxy, flooded with output, while an
// independent checker reads what the steps themselves wrote (each appends
// its run id to a file with O_APPEND) rather than the master's tables.
//
// Every test is bounded in count and in wall time, stops by itself, and
// reports its figures in the test log (and, with MUSTER_FAULTS_REPORT=FILE,
// as JSON lines in FILE). The short version runs in `go test ./...`; the
// full one is
//
//	MUSTER_FAULTS=full go test ./internal/faults -v -timeout 2h
//
// See docs/benchmarks.md for the figures of a full run.
package faults
