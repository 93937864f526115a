package catalog_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
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

// A target whose system zone has no name (a copied /etc/localtime) reports
// "Local" and its UTC offset. Its fires are previewed at that offset, as
// it fires them, not in the master's own zone.
func TestNextFiresOfATargetWithoutAZoneName(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, clk, _ := MustOpen(t, e)
		ctx := context.Background()
		web1 := enlist(t, db, "web1")
		kolkata := time.FixedZone("", 5*3600+1800)
		db.RecordPoll(web1.ID, catalog.Heartbeat{At: clk.Now(), LocalTime: clk.Now().In(kolkata), TimeZone: "Local", PollInterval: 30})
		if err := db.FlushHeartbeats(ctx); err != nil {
			t.Fatal(err)
		}
		j := job("report", "web1")
		j.Schedules = []muster.Schedule{{Name: "nightly", Cron: "0 2 * * *"}}
		if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		fires, err := db.NextFires(ctx, "report", 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(fires) != 1 || len(fires[0].Fires) != 1 {
			t.Fatalf("fires %+v, want one on web1", fires)
		}
		tf := fires[0]
		at := tf.Fires[0].At
		if _, off := at.Zone(); off != 5*3600+1800 || at.Hour() != 2 || at.Minute() != 0 {
			t.Errorf("fire at %s, want 02:00 at +05:30", at.Format(time.RFC3339))
		}
		if tf.TimeZone != "UTC+05:30" {
			t.Errorf("time zone %q, want %q", tf.TimeZone, "UTC+05:30")
		}
	})
}
