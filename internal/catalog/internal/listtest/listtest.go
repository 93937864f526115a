// Package listtest fills a catalog with 100,000 rows in each table an
// operator's list reads, and makes each list's reads, for tests of
// their plans on each engine.
package listtest

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

//go:embed list-rows.sql
var listRows string

// ListTargets is how many targets SeedLists enlists.
const ListTargets = 100

// SeedLists fills a new catalog on store with ListTargets targets and
// 100,000 rows in each table an operator's list reads (runs, events,
// notifications, audit entries, instructions), with statistics gathered,
// for the plans of the list queries to be read at that size. exec runs a
// statement on the store's database. The store is closed when the test
// ends.
func SeedLists(tb testing.TB, store catalog.Store, exec func(ctx context.Context, query string) error) {
	tb.Helper()
	ctx := context.Background()
	db, err := catalog.Open(ctx, store, catalog.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() }) // with its store
	self := muster.Actor{Kind: muster.ActorMaster, Name: "seed"}
	for i := range ListTargets {
		name := fmt.Sprintf("web%d", i)
		if _, err := db.CreateEnlistToken(ctx, "hash-"+name, name, time.Hour, self); err != nil {
			tb.Fatal(err)
		}
		if _, err := db.Enlist(ctx, catalog.Enlistment{TokenHash: "hash-" + name, Name: name, UID: "uid-" + name},
			func(string) (catalog.IssuedCert, error) {
				return catalog.IssuedCert{Serial: "serial-" + name, NotAfter: time.Now().Add(time.Hour)}, nil
			}); err != nil {
			tb.Fatal(err)
		}
	}
	for _, line := range strings.Split(listRows, "\n") {
		if line == "" || strings.HasPrefix(line, "--") {
			continue
		}
		if err := exec(ctx, line); err != nil {
			tb.Fatalf("seed: %v\n%s", err, line)
		}
	}
	if err := exec(ctx, "ANALYZE"); err != nil {
		tb.Fatal(err)
	}
}

// ListCall is one read of an operator's list, as the API, the CLI and
// the console make it: a page, with filters, after a cursor.
type ListCall struct {
	Name string
	// From is the text of the statement that reads the list: "FROM audit
	// a", not the statements that read what its rows name.
	From string
	Call func(ctx context.Context, r catalog.Reads) error
	// Exempt says, by engine ("sqlite", "postgres"), why the list may read
	// more than its page: a cost known and bounded otherwise.
	Exempt map[string]string
}

// ListCalls are the reads of every operator's list, on a catalog seeded
// by SeedLists: each filter with a value that selects few rows (a job of
// a thousand, a target of a hundred), without and after a cursor.
var ListCalls = func() []ListCall {
	before := time.UnixMilli(1700000000000 + 50000*1000).UTC()
	var calls []ListCall
	for name, f := range map[string]catalog.AuditFilter{
		"audit":                {},
		"audit by actor":       {Actor: "key7"},
		"audit by job":         {Job: "job7"},
		"audit since":          {Since: before},
		"audit after a page":   {BeforeID: 50000},
		"audit by actor after": {Actor: "key7", BeforeID: 50000},
	} {
		f.Limit = 101
		calls = append(calls, ListCall{Name: name, From: "FROM audit a", Call: func(ctx context.Context, r catalog.Reads) error {
			_, err := r.FindAudit(ctx, f)
			return err
		}})
	}
	for name, f := range map[string]catalog.EventFilter{
		"events":                 {},
		"events by job":          {Job: "job7"},
		"events by target":       {Target: "web7"},
		"events after a page":    {BeforeID: 50000},
		"events by job after":    {Job: "job7", BeforeID: 50000},
		"events by target after": {Target: "web7", BeforeID: 50000},
	} {
		f.Limit = 51
		calls = append(calls, ListCall{Name: name, From: "FROM events e", Call: func(ctx context.Context, r catalog.Reads) error {
			_, err := r.FindEvents(ctx, f)
			return err
		}})
	}
	for name, f := range map[string]catalog.DeliveryFilter{
		"notifications":            {},
		"notifications by alert":   {Alert: "alert7"},
		"notifications failed":     {Status: muster.DeliveryFailed},
		"notifications after page": {BeforeKey: 50000},
	} {
		f.Limit = 51
		calls = append(calls, ListCall{Name: name, From: "FROM deliveries d", Call: func(ctx context.Context, r catalog.Reads) error {
			_, err := r.FindDeliveries(ctx, f)
			return err
		}})
	}
	for name, f := range map[string]catalog.RunFilter{
		"history":                {Job: "job7"},
		"history of a busy job":  {Job: "job0"},
		"busy history after":     {Job: "job0", Before: &catalog.RunKey{StartedAt: before, Row: 50000}},
		"busy history on target": {Job: "job0", Target: "web8"},
		"history on a target":    {Job: "job7", Target: "web7"},
		"history after a page":   {Job: "job7", Before: &catalog.RunKey{StartedAt: before, Row: 50000}},
		"runs of a target":       {Target: "web7"},
		"runs of a target after": {Target: "web7", Before: &catalog.RunKey{StartedAt: before, Row: 50000}},
	} {
		f.Limit = 51
		calls = append(calls, ListCall{Name: name, From: "FROM runs r", Call: func(ctx context.Context, r catalog.Reads) error {
			_, err := r.FindRuns(ctx, f)
			return err
		}})
	}
	for name, f := range map[string]catalog.InstructionFilter{
		"download lists":              {},
		"download list of a target":   {Target: "web7"},
		"download lists of a job":     {Job: "job7"},
		"download lists after a page": {Before: &catalog.InstructionKey{PostedAt: before, Seq: 51000, TargetID: 1}},
	} {
		f.Limit = 1001
		c := ListCall{Name: name, From: "FROM instructions i", Call: func(ctx context.Context, r catalog.Reads) error {
			_, err := r.FindInstructions(ctx, f)
			return err
		}}
		switch name {
		case "download list of a target":
			why := "one target's entries, sorted: at most --downloaded-max-rows finished ones, and its pending and failed ones"
			c.Exempt = map[string]string{"sqlite": why, "postgres": why}
		case "download lists of a job":
			// docs/benchmarks.md: every index on instructions is written by
			// each target a START reaches.
			c.Exempt = map[string]string{"postgres": "no index by job: a START fanned out would write it for every target"}
		}
		calls = append(calls, c)
	}
	return calls
}()
