package catalog_test

import (
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// A job's time_zone is an IANA name; "Local" would mean the master's zone
// in previews and each target's system zone on the targets, so it is
// refused, naming the field.
func TestValidateJobRefusesLocalZone(t *testing.T) {
	for _, zone := range []string{"Local", "Mars/Olympus"} {
		j := muster.Job{Name: "a", TimeZone: zone, Enabled: true, Steps: []muster.Step{{Name: "s", Shell: "true"}}}
		err := catalog.ValidateJob(&j)
		if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(muster.ErrorMessage(err), `time_zone: "`+zone+`" is not an IANA time zone`) {
			t.Errorf("time_zone %q: %v, want EINVALID naming time_zone", zone, err)
		}
	}
	j := muster.Job{Name: "a", TimeZone: "Europe/Paris", Enabled: true, Steps: []muster.Step{{Name: "s", Shell: "true"}}}
	if err := catalog.ValidateJob(&j); err != nil {
		t.Errorf("Europe/Paris: %v", err)
	}
}
