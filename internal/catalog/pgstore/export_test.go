package pgstore

import "time"

// SetRollbackTimeout sets how long the ROLLBACK of a transaction that did
// not commit may take, until restore is called.
func SetRollbackTimeout(d time.Duration) (restore func()) {
	old := rollbackTimeout
	rollbackTimeout = d
	return func() { rollbackTimeout = old }
}
