package schedule_test

import (
	"testing"
	"time"

	"github.com/musterhq/muster/internal/schedule"
)

// A zone is an IANA name. Go's time.LoadLocation also takes "" (UTC) and
// "Local" (whatever zone the reading process has), which would make a job
// fire in the master's zone in a preview and in the target's system zone
// on the target: both are refused.
func TestLoadZone(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"Europe/Paris", true},
		{"America/New_York", true},
		{"UTC", true},
		{"Etc/GMT+5", true},
		{"Local", false},
		{"", false},
		{"Mars/Olympus", false},
		{" Europe/Paris", false},
		{"../etc/passwd", false},
	} {
		loc, err := schedule.LoadZone(tc.name)
		switch {
		case tc.ok && err != nil:
			t.Errorf("LoadZone(%q): %v", tc.name, err)
		case tc.ok && loc.String() != tc.name:
			t.Errorf("LoadZone(%q) = %v", tc.name, loc)
		case !tc.ok && err == nil:
			t.Errorf("LoadZone(%q) = %v, want an error", tc.name, loc)
		case !tc.ok && loc != nil:
			t.Errorf("LoadZone(%q) returned %v with its error", tc.name, loc)
		}
		if loc == time.Local {
			t.Errorf("LoadZone(%q) = time.Local", tc.name)
		}
	}
}
