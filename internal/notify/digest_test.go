package notify

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

// A digest's id is made from the notifications it carries, whatever their
// order, so the same ones make the same digest at every attempt; its
// subject counts them, and its text lists each.
func TestDigest(t *testing.T) {
	at := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	var ds []muster.Delivery
	for i, target := range []string{"web1", "web2", "web3"} {
		ds = append(ds, muster.Delivery{ID: fmt.Sprintf("d%d", i), Alert: "offline", Operator: "ops",
			Event: muster.Event{Name: muster.EventTargetOffline, Severity: muster.SeverityWarning, Target: target,
				Message: target + " stopped polling", At: at.Add(time.Duration(i) * time.Minute)}})
	}
	d := NewDigest(ds)
	again := NewDigest([]muster.Delivery{ds[2], ds[0], ds[1]})
	if d.ID != again.ID || !strings.HasPrefix(d.ID, "digest-") {
		t.Errorf("digest ids %q and %q, want one, the same for the same notifications", d.ID, again.ID)
	}
	if other := NewDigest(ds[:2]); other.ID == d.ID {
		t.Errorf("a digest of other notifications has the same id %q", d.ID)
	}
	p := d.Payload
	if p.Count != 3 || p.Target != "" || !p.At.Equal(at.Add(2*time.Minute)) || p.Message != "3 target_offline events on web1, web2, web3" {
		t.Errorf("digest %+v", p)
	}
	if s := p.subject(); s != "[muster] 3 × target_offline (warning)" {
		t.Errorf("subject %q", s)
	}
	text := p.text()
	for _, want := range []string{"web1 stopped polling", "web2 stopped polling", "web3 stopped polling"} {
		if !strings.Contains(text, want) {
			t.Errorf("text %q lacks %q", text, want)
		}
	}
}
