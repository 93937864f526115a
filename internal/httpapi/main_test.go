package httpapi_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: every master
// and target a test starts stops with it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
