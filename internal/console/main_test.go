package console_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: every master,
// target and browser a test starts stops with it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
