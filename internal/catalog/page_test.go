package catalog_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A job's history is read a page at a time, newest first by start time,
// and runs that started at one instant in the order the master recorded
// them: a page boundary among them neither repeats nor skips one. A run
// uploaded between reads that started before the walk's place comes in a
// later page of it, once; one that started after, in none.
func TestHistoryPages(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, clk, _ := MustOpen(t, e)
		ctx := context.Background()
		web1 := enlist(t, db, "web1")
		web2 := enlist(t, db, "web2")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("backup", "web1", "web2")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		at := clk.Now().Add(-time.Hour)
		n := 0
		upload := func(target catalog.TargetIdentity, started time.Time) {
			n++
			if _, err := db.UpsertRuns(ctx, target, []catalog.RunUpload{report(fmt.Sprintf("r%02d", n), "backup", muster.RunSucceeded, 1, started)}); err != nil {
				t.Fatal(err)
			}
		}
		// Five runs on each target at one instant, and three later.
		for range 5 {
			upload(web1, at)
			upload(web2, at)
		}
		for i := range 3 {
			upload(web1, at.Add(time.Duration(i+1)*time.Minute))
		}
		ids := func(runs []muster.Run) []string {
			var out []string
			for _, r := range runs {
				out = append(out, r.Target+"/"+r.RunID)
			}
			return out
		}
		for _, tc := range []struct {
			name   string
			f      catalog.RunFilter
			before []string // the runs a page is read before
		}{
			{"job", catalog.RunFilter{Job: "backup", Limit: 4}, nil},
			{"target", catalog.RunFilter{Job: "backup", Target: "web2", Limit: 2}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := tc.f
				f.Limit = 1000
				all, err := db.FindRuns(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				want := ids(all)
				var got []string
				f, pages := tc.f, 0
				for {
					page, next, err := db.FindRunsPage(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					got, pages = append(got, ids(page)...), pages+1
					if next == "" || pages > 20 {
						break
					}
					f.Cursor = next
					// A new run, and one a spool kept that started
					// long before: the walk is past neither's place...
					upload(web2, clk.Now())
					if pages == 1 {
						upload(web2, at.Add(-time.Duration(n)*time.Hour)) // before any run so far
					}
				}
				// ...but the second is still ahead of it.
				if got, want := len(got), len(want)+1; got != want {
					t.Fatalf("read %d runs, want %d", got, want)
				}
				if !slices.Equal(got[:len(want)], want) || !strings.HasPrefix(got[len(want)], "web2/") {
					t.Errorf("read %v, want %v and the late run", got, want)
				}
				seen := map[string]bool{}
				for _, id := range got {
					if seen[id] {
						t.Errorf("run %s read twice", id)
					}
					seen[id] = true
				}
			})
		}
		// A cursor of another list is refused, naming the cursor.
		_, next, err := db.FindAuditPage(ctx, catalog.AuditFilter{Limit: 1})
		if err != nil || next == "" {
			t.Fatalf("audit: next %q, %v", next, err)
		}
		if _, _, err := db.FindRunsPage(ctx, catalog.RunFilter{Job: "backup", Cursor: next}); muster.ErrorCode(err) != muster.EINVALID || !strings.HasPrefix(muster.ErrorMessage(err), "cursor: ") {
			t.Errorf("an audit cursor read a history: %v, want invalid naming the cursor", err)
		}
	})
}

// A target whose clock was set before 1970 reports runs that started
// then, and the master keeps them: a walk of the history reads past each,
// one run a page, as past any other.
func TestHistoryPagesBefore1970(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		web1 := enlist(t, db, "web1")
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("backup", "web1")}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		starts := []time.Time{
			time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC),
			time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
			time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		}
		for i, at := range starts {
			if _, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{report(fmt.Sprintf("r%d", i), "backup", muster.RunSucceeded, 1, at)}); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		f := catalog.RunFilter{Job: "backup", Limit: 1}
		for pages := 1; ; pages++ {
			page, next, err := db.FindRunsPage(ctx, f)
			if err != nil {
				t.Fatalf("page %d: %v", pages, err)
			}
			for _, r := range page {
				got = append(got, r.RunID)
			}
			if next == "" || pages > len(starts) {
				break
			}
			f.Cursor = next
		}
		if want := []string{"r0", "r1", "r2"}; !slices.Equal(got, want) {
			t.Errorf("read %v, want %v", got, want)
		}
		// A row is never negative: a cursor that says so is refused.
		forged := base64.RawURLEncoding.EncodeToString([]byte("history:-1000:-2"))
		if _, _, err := db.FindRunsPage(ctx, catalog.RunFilter{Job: "backup", Cursor: forged}); muster.ErrorCode(err) != muster.EINVALID || !strings.HasPrefix(muster.ErrorMessage(err), "cursor: ") {
			t.Errorf("a cursor with a negative row: %v, want invalid naming the cursor", err)
		}
	})
}

// The download lists are read a page at a time, newest first by when an
// entry was posted, its sequence number and its target: a START fanned
// out posts one number to every target at one instant, and a page
// boundary among those neither repeats nor skips one. A page lists its
// entries by target then sequence number.
func TestDownloadListPages(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		var targets []string
		for i := range 5 {
			name := fmt.Sprintf("web%d", i)
			enlist(t, db, name)
			targets = append(targets, name)
		}
		if _, err := db.ApplyJobs(ctx, []muster.Job{job("backup", targets...)}, catalog.ApplyOptions{}, admin); err != nil {
			t.Fatal(err)
		}
		start := func() {
			if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "backup"}, admin); err != nil {
				t.Fatal(err)
			}
		}
		start()
		key := func(in muster.Instruction) string { return fmt.Sprintf("%s/%d", in.Target, in.Seq) }
		all, err := db.FindInstructions(ctx, catalog.InstructionFilter{Job: "backup"})
		if err != nil || len(all) != 10 {
			t.Fatalf("%d instructions (%v), want 10", len(all), err)
		}
		var want []string
		for _, in := range all {
			want = append(want, key(in))
		}
		var got []string
		f, pages := catalog.InstructionFilter{Job: "backup", Limit: 3}, 0
		for {
			page, next, err := db.FindInstructionsPage(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.IsSortedFunc(page, func(a, b muster.Instruction) int {
				return strings.Compare(key(a), key(b)) // one digit each
			}) {
				t.Errorf("page %d: %v, want it by target then sequence number", pages, page)
			}
			for _, in := range page {
				got = append(got, key(in))
			}
			if pages++; next == "" || pages > 10 {
				break
			}
			f.Cursor = next
			start() // posted after the walk began: in none of its pages
		}
		if pages != 4 {
			t.Errorf("pages = %d, want 4", pages)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("read %v, want %v", got, want)
		}
	})
}
