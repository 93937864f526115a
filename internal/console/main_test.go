package console_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/musterhq/muster/internal/testenv"
)

// TestMain checks that no test leaves a goroutine behind: every master,
// target and browser a test starts stops with it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { testenv.RemoveBinaries() }))
}
