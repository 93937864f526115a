package master

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/catalog"
)

// A target sends its location, time zone and version again when it
// enlists again (RE-ENLIST). Each is checked as an operator's words are: a
// refusal names the field and changes nothing, so a target cannot put a
// terminal escape sequence in place of what an operator set. A new
// location is in the audit log under the target.
func TestReEnlistChecksWhatTheTargetReports(t *testing.T) {
	m := testMaster(t, nil)
	tg := enlist(t, m, "web1")
	ctx := context.Background()
	ops := muster.Actor{Kind: muster.ActorKey, Name: "ops", Role: catalog.RoleAdmin}
	loc := "rack 4"
	if _, err := m.Catalog.SetTargetDetails(ctx, "web1", catalog.TargetDetails{Location: &loc}, ops); err != nil {
		t.Fatal(err)
	}
	good := agentproto.ReEnlistRequest{Location: "rack 4", TimeZone: "Europe/Paris", LocalTime: time.Now(), PollInterval: 60, Version: "1.0"}
	for _, c := range []struct {
		name   string
		change func(*agentproto.ReEnlistRequest)
		msg    string
	}{
		{"an escape sequence in the location", func(r *agentproto.ReEnlistRequest) {
			r.Location = "\x1b]8;;https://evil.example\x1b\\rack 4\x1b]8;;\x1b\\\x1b[2J"
		}, "location: only printable text on one line"},
		{"a line break in the location", func(r *agentproto.ReEnlistRequest) { r.Location = "rack 4\nrack 5" }, "location: only printable text on one line"},
		{"a long location", func(r *agentproto.ReEnlistRequest) { r.Location = strings.Repeat("é", 201) }, "location: at most 200 characters, not 201"},
		{"a control character in the time zone", func(r *agentproto.ReEnlistRequest) { r.TimeZone = "UTC\a" }, "time_zone: only printable text on one line"},
		{"a control character in the version", func(r *agentproto.ReEnlistRequest) { r.Version = "1.0\r" }, "version: only printable text on one line"},
		{"a long version", func(r *agentproto.ReEnlistRequest) { r.Version = strings.Repeat("1", 65) }, "version: at most 64 characters, not 65"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := good
			c.change(&req)
			w := serve(m, tg.tls, http.MethodPost, agentproto.PathReEnlist, req)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("got %d, want 400 %s %q", w.Code, muster.EINVALID, c.msg)
			}
			if code, msg := errorReply(t, w); code != muster.EINVALID || !strings.Contains(msg, c.msg) {
				t.Errorf("got %s %q, want %s %q", code, msg, muster.EINVALID, c.msg)
			}
		})
	}
	got, err := m.Catalog.FindTarget(ctx, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Location != "rack 4" || got.TimeZone != "" || got.Version != "" {
		t.Errorf("after refused re-enlistments: location %q, time zone %q, version %q; want \"rack 4\" and the others unreported", got.Location, got.TimeZone, got.Version)
	}

	// The location an operator set, sent again, records nothing; a new one
	// is recorded under the target.
	for _, location := range []string{"rack 4", "rack 5", "rack 5"} {
		req := good
		req.Location = location
		if w := serve(m, tg.tls, http.MethodPost, agentproto.PathReEnlist, req); w.Code != http.StatusNoContent {
			t.Fatalf("re-enlist at %q: %d %s", location, w.Code, w.Body)
		}
	}
	if got, err = m.Catalog.FindTarget(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	if got.Location != "rack 5" || got.TimeZone != "Europe/Paris" || got.Version != "1.0" {
		t.Errorf("after re-enlisting: location %q, time zone %q, version %q; want \"rack 5\", Europe/Paris, 1.0", got.Location, got.TimeZone, got.Version)
	}
	entries, err := m.Catalog.FindAudit(ctx, catalog.AuditFilter{Target: "web1", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	sets := slices.DeleteFunc(entries, func(e muster.AuditEntry) bool { return e.Action != muster.AuditTargetSet })
	if len(sets) != 2 {
		t.Fatalf("%d target.set entries, want the operator's and the target's: %+v", len(sets), sets)
	}
	if e := sets[0]; e.Kind != muster.ActorTarget || e.Name != "web1" || e.Source != "192.0.2.10" ||
		!slices.Equal(e.Changes, []string{`~ location: "rack 4" -> "rack 5"`}) {
		t.Errorf("the target's change was recorded as %+v, want target web1 from 192.0.2.10 changing the location", e)
	}
}
