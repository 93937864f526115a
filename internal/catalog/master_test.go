package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A master's URL is its own while it says it is alive: another master, of
// another name, is refused it and told who holds it; the same master
// started again takes it back; once its holder has gone quiet, another
// may take it.
func TestMasterURLIsItsHoldersWhileItLives(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		const url = "https://m.example.com:7070"
		t0 := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
		live := 15 * time.Second
		steps := []struct {
			name, master string
			at           time.Time
			holder       string // the master that holds the URL instead, or ""
		}{
			{"first", "m1", t0, ""},
			{"another name", "m2", t0.Add(time.Second), "m1"},
			{"the same master again", "m1", t0.Add(2 * time.Second), ""},
			{"another, once m1 is quiet", "m2", t0.Add(2*time.Second + live + time.Millisecond), ""},
			{"m1 resumed", "m1", t0.Add(2*time.Second + live + 2*time.Millisecond), "m2"},
		}
		for i, s := range steps {
			holder, err := db.UpsertMaster(ctx, catalog.MasterRow{Name: s.master, URL: url, StartedAt: t0, SeenAt: s.at}, i == 0, s.at.Add(-live))
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			got := ""
			if holder != nil {
				got = holder.Name
			}
			if got != s.holder {
				t.Errorf("%s: %s recording itself is refused for %q, want %q", s.name, s.master, got, s.holder)
			}
		}
		masters, err := db.FindMasters(ctx, t0)
		if err != nil || len(masters) != 1 || masters[0].Name != "m2" {
			t.Errorf("masters recorded: %+v, %v; want m2's row alone", masters, err)
		}
	})
}
