package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/musterhq/muster"
)

// The output limits are checked when the settings are read, naming the
// setting and its range.
func TestOutputLimitSettings(t *testing.T) {
	for _, tc := range []struct{ yaml, err string }{
		{"run_output_limit: 8MiB\n", ""},
		{"run_output_limit: 512\n", "run_output_limit: from 1KiB to 32MiB, not 512 bytes"},
		{"run_output_limit: 64MiB\n", "run_output_limit: from 1KiB to 32MiB, not 67108864 bytes"},
		{"output_limit: 8MiB\n", "output_limit: from 1KiB to 4MiB"},
	} {
		path := filepath.Join(t.TempDir(), "target.yaml")
		os.WriteFile(path, []byte(tc.yaml), 0o600)
		s, err := LoadSettings(path)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case tc.err == "" && s.RunOutputLimit != 8<<20:
			t.Errorf("%q: run_output_limit %d", tc.yaml, s.RunOutputLimit)
		case tc.err != "" && (muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: %v, want an error with %q", tc.yaml, err, tc.err)
		}
	}
}
