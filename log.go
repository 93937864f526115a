package muster

// Log attribute keys. Every log record names things with these keys, so that
// records can be searched, and picked apart by code (the target forwards its
// own errors as events, naming their job and run), without guessing.
const (
	LogErr       = "err"
	LogTarget    = "target"
	LogJob       = "job"
	LogRunID     = "run_id"
	LogStep      = "step"
	LogSeq       = "seq"
	LogOperation = "operation"
	LogMethod    = "method"
	LogPath      = "path"
	LogRetryIn   = "retry_in"
	LogFailures  = "failures"
	LogMaster    = "master"
	LogFile      = "file"
	LogDuty      = "duty"
)
