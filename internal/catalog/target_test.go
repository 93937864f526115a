package catalog_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// An operator changes a target's location and description after it
// enlisted; each change is audited, and a refused one changes nothing.
func TestSetTargetDetails(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1")
		web2 := enlist(t, db, "web2")
		ops := muster.Actor{Kind: muster.ActorKey, Name: "ops", Role: catalog.RoleOperator}
		str := func(s string) *string { return &s }

		got, err := db.SetTargetDetails(ctx, "WEB1", catalog.TargetDetails{Location: str("dc2, rack 14"), Description: str("front end")}, ops)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "web1" || got.Location != "dc2, rack 14" || got.Description != "front end" {
			t.Errorf("after set: %s at %q, %q; want web1 at \"dc2, rack 14\", \"front end\"", got.Name, got.Location, got.Description)
		}
		// A field left out stays; an empty one clears.
		if got, err = db.SetTargetDetails(ctx, "web1", catalog.TargetDetails{Description: str("")}, ops); err != nil {
			t.Fatal(err)
		}
		if got.Location != "dc2, rack 14" || got.Description != "" {
			t.Errorf("after clearing the description: %q, %q", got.Location, got.Description)
		}
		// Setting what it already says records nothing.
		if _, err := db.SetTargetDetails(ctx, "web1", catalog.TargetDetails{Location: str("dc2, rack 14")}, ops); err != nil {
			t.Fatal(err)
		}
		entries := targetSets(t, db)
		if len(entries) != 2 {
			t.Fatalf("%d target.set entries, want 2: %+v", len(entries), entries)
		}
		if first := entries[1]; first.Actor.Name != "ops" || !slices.Equal(first.Targets, []string{"web1"}) ||
			!slices.Equal(first.Changes, []string{`~ location: "" -> "dc2, rack 14"`, `~ description: "" -> "front end"`}) {
			t.Errorf("first entry = %+v", first)
		}

		for _, c := range []struct {
			name   string
			target string
			d      catalog.TargetDetails
			code   string
			msg    string
		}{
			{"nothing to change", "web1", catalog.TargetDetails{}, muster.EINVALID, "location, description: give at least one"},
			{"long location", "web1", catalog.TargetDetails{Location: str(strings.Repeat("x", 201))}, muster.EINVALID, "location: at most 200 characters, not 201"},
			{"long description", "web1", catalog.TargetDetails{Description: str(strings.Repeat("é", 1001))}, muster.EINVALID, "description: at most 1000 characters, not 1001"},
			{"newline", "web1", catalog.TargetDetails{Location: str("dc2\nrack 14")}, muster.EINVALID, "location: only printable text on one line"},
			{"unknown target", "nosuch", catalog.TargetDetails{Location: str("x")}, muster.ENOTFOUND, `no target named "nosuch"`},
			{"defected target", "web2", catalog.TargetDetails{Location: str("x")}, muster.ENOTFOUND, `no target named "web2"`},
		} {
			if c.target == "web2" {
				if err := db.DefectTarget(ctx, web2.ID, muster.Actor{Kind: muster.ActorTarget, Name: "web2"}); err != nil {
					t.Fatal(err)
				}
			}
			_, err := db.SetTargetDetails(ctx, c.target, c.d, ops)
			if muster.ErrorCode(err) != c.code || !strings.Contains(muster.ErrorMessage(err), c.msg) {
				t.Errorf("%s: got %v, want %s %q", c.name, err, c.code, c.msg)
			}
		}
		after, err := db.FindTarget(ctx, "web1")
		if err != nil {
			t.Fatal(err)
		}
		if after.Location != "dc2, rack 14" || after.Description != "" {
			t.Errorf("after refused changes: %q, %q; want them unchanged", after.Location, after.Description)
		}
		if n := len(targetSets(t, db)); n != 2 {
			t.Errorf("%d target.set entries after refused changes, want 2", n)
		}
	})
}

// targetSets returns the audit log's target.set entries, newest first.
func targetSets(t *testing.T, db *catalog.Catalog) []muster.AuditEntry {
	return slices.DeleteFunc(audit(t, db, catalog.AuditFilter{Target: "web1"}), func(e muster.AuditEntry) bool {
		return e.Action != muster.AuditTargetSet
	})
}

// A target reports its location when it enlists again: it is checked as
// an operator's is, and a change is in the audit log under the target;
// the location it already has records nothing, and a refused one changes
// nothing.
func TestSetLocation(t *testing.T) {
	catalogtest.ForEach(t, func(t *testing.T, e catalogtest.Engine) {
		db, _, _ := MustOpen(t, e)
		ctx := context.Background()
		enlist(t, db, "web1")
		by := muster.Actor{Kind: muster.ActorTarget, Name: "web1", Source: "192.0.2.10"}
		for range 2 {
			if err := db.SetLocation(ctx, "web1", "rack 4", by); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			location string
			msg      string
		}{
			{"\x1b]8;;https://evil.example\x1b\\rack 5\x1b]8;;\x1b\\", "location: only printable text on one line"},
			{"rack 5\r\nrack 6", "location: only printable text on one line"},
			{strings.Repeat("x", 201), "location: at most 200 characters, not 201"},
		} {
			err := db.SetLocation(ctx, "web1", c.location, by)
			if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(muster.ErrorMessage(err), c.msg) {
				t.Errorf("location %q: got %v, want %s %q", c.location, err, muster.EINVALID, c.msg)
			}
		}
		got, err := db.FindTarget(ctx, "web1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Location != "rack 4" {
			t.Errorf("location %q, want \"rack 4\"", got.Location)
		}
		entries := targetSets(t, db)
		if len(entries) != 1 {
			t.Fatalf("%d target.set entries, want 1: %+v", len(entries), entries)
		}
		if e := entries[0]; e.Kind != muster.ActorTarget || e.Name != "web1" || e.Source != by.Source || !slices.Equal(e.Targets, []string{"web1"}) ||
			!slices.Equal(e.Changes, []string{`~ location: "" -> "rack 4"`}) {
			t.Errorf("entry = %+v, want target.set by %v of web1's location", e, by)
		}
	})
}
