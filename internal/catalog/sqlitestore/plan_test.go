package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/sqlstore"
)

// explainer is a Querier that asks SQLite for the plan of each statement
// that names table before running it, and keeps the plans under the label
// of the call that ran them.
type explainer struct {
	sqlstore.Querier
	t     *testing.T
	db    *sql.DB
	table string
	label string
	plans map[string][]string
}

func (e *explainer) explain(ctx context.Context, query string, args []any) {
	if !strings.Contains(query, e.table) {
		return
	}
	rows, err := e.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		e.t.Fatalf("%s: EXPLAIN QUERY PLAN: %v", e.label, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			e.t.Fatal(err)
		}
		e.plans[e.label] = append(e.plans[e.label], detail)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *explainer) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	e.explain(ctx, query, args)
	return e.Querier.Exec(ctx, query, args...)
}

func (e *explainer) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	e.explain(ctx, query, args)
	return e.Querier.Query(ctx, query, args...)
}

func (e *explainer) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	e.explain(ctx, query, args)
	return e.Querier.QueryRow(ctx, query, args...)
}

// openExplained opens a new catalog, closed when the test ends, and
// returns its store with queries on its write connection that keep the
// plan of each statement naming table.
func openExplained(t *testing.T, table string) (*Store, *explainer, *sqlstore.Queries) {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := &explainer{Querier: &querier{db: s.write, stmts: s.writeStmts}, t: t, db: s.write, table: table, plans: map[string][]string{}}
	return s, e, sqlstore.New(e, dialect)
}

// fullScan is a plan line that reads a whole table (or a whole index of
// it) of instructions.
var fullScan = regexp.MustCompile(`^SCAN (i|instructions)\b`)

// The statements that deliver, acknowledge, supersede and count
// instructions read the download lists through an index that serves them,
// never the whole history: a master keeps up to 1,000 finished
// instructions a target, and a statement of a poll or of a START that read
// them all would cost more the longer the fleet has run. Each is run as
// the catalog runs it, and SQLite's own plan for it is checked.
func TestInstructionStatementsUseTheirIndexes(t *testing.T) {
	ctx := context.Background()
	_, e, q := openExplained(t, "instructions")
	now := time.Now()

	calls := []struct {
		label string
		want  string // the index the plan must name
		// walks is set where the statement reads the index it names in
		// order, newest first, and stops at its limit: a scan of that index
		// is what it should do.
		walks bool
		call  func() error
	}{
		{"PollPending", "instructions_pending", false, func() error {
			_, _, _, err := q.PollPending(ctx, 1, 0, 100)
			return err
		}},
		{"PollPendingOf", "instructions_pending", false, func() error {
			_, err := q.PollPendingOf(ctx, map[int64]int64{1: 0, 2: 5}, 100)
			return err
		}},
		{"PendingInstructions", "instructions_pending", false, func() error {
			_, err := q.PendingInstructions(ctx, 1, 0, 100)
			return err
		}},
		{"PendingInstructionsOf", "instructions_pending", false, func() error {
			_, err := q.PendingInstructionsOf(ctx, map[int64]int64{1: 0, 2: 5}, 100)
			return err
		}},
		{"AckInstructions", "", false, func() error {
			_, err := q.AckInstructions(ctx, 1, []catalog.AckRow{{Seq: 3, Status: muster.InstructionDownloaded}}, now)
			return err
		}},
		{"Supersede", "instructions_failed", false, func() error {
			return q.Supersede(ctx, []int64{1, 2}, "backup", []muster.Operation{muster.OpInsert, muster.OpUpdate})
		}},
		{"ActiveStarts", "instructions_job_starts", false, func() error {
			_, err := q.ActiveStarts(ctx, "backup", now)
			return err
		}},
		{"StartsPosted", "instructions_start_run", false, func() error {
			_, err := q.StartsPosted(ctx, 1, []string{muster.NewRunID(), muster.NewRunID()})
			return err
		}},
		{"RolloutTargets", "instructions_start_run", false, func() error {
			_, err := q.RolloutTargets(ctx, []int64{1})
			return err
		}},
		{"RolloutTargets", "queued_starts_target", false, func() error {
			_, err := q.RolloutTargets(ctx, []int64{1})
			return err
		}},
		{"NoSuccessWatches", "instructions_inserts", false, func() error {
			_, err := q.NoSuccessWatches(ctx, "", "")
			return err
		}},
		{"FindTargets", "instructions_failed", false, func() error {
			_, err := q.FindTargets(ctx, catalog.TargetQuery{WithCounts: true})
			return err
		}},
		{"GaugeRows", "instructions_failed", false, func() error {
			_, err := q.GaugeRows(ctx)
			return err
		}},
		{"ClearTarget", "", false, func() error { return q.ClearTarget(ctx, 1) }},
		{"FindInstructions", "instructions_posted", true, func() error {
			_, err := q.FindInstructions(ctx, catalog.InstructionFilter{Job: "backup", Limit: 50})
			return err
		}},
		{"FindInstructions after a page", "instructions_posted", false, func() error {
			_, err := q.FindInstructions(ctx, catalog.InstructionFilter{Job: "backup", Limit: 50,
				Before: &catalog.InstructionKey{PostedAt: now, Seq: 7, TargetID: 3}})
			return err
		}},
	}
	for _, c := range calls {
		e.label = c.label
		if err := c.call(); err != nil && !errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("%s: %v", c.label, err)
		}
	}
	checked := 0
	for _, c := range calls {
		plan := e.plans[c.label]
		if len(plan) == 0 {
			t.Errorf("%s ran no statement on instructions", c.label)
			continue
		}
		uses := regexp.MustCompile(`INDEX ` + c.want + `\b`)
		for _, line := range plan {
			if fullScan.MatchString(line) && !(c.walks && uses.MatchString(line)) {
				t.Errorf("%s reads every instruction: %q in its plan\n%s", c.label, line, strings.Join(plan, "\n"))
			}
		}
		if c.want != "" && !uses.MatchString(strings.Join(plan, "\n")) {
			t.Errorf("%s does not use the index %s; its plan:\n%s", c.label, c.want, strings.Join(plan, "\n"))
		}
		checked++
	}
	if checked != len(calls) {
		t.Fatalf("checked the plans of %d calls, want %d", checked, len(calls))
	}
}

// The audit log found by an entry's job or target reads the entries newest
// first and looks each one's subject up by the subjects' own key, and the
// subjects have no index beside that key: an index by name was written by
// every entry (a page per target for a START fanned out on a catalog with
// history) and read by no statement.
func TestAuditSubjectsAreReadByTheirKey(t *testing.T) {
	ctx := context.Background()
	s, e, q := openExplained(t, "audit_subjects")
	filters := map[string]catalog.AuditFilter{
		"by target":         {Target: "db1"},
		"by job":            {Job: "backup"},
		"by job and target": {Job: "backup", Target: "db1", Limit: 10},
	}
	for label, f := range filters {
		e.label = label
		if _, err := q.FindAudit(ctx, f); err != nil {
			t.Fatalf("%s: %v", label, err)
		}
	}
	key := regexp.MustCompile(`^SEARCH s (EXISTS )?USING PRIMARY KEY \(audit_id=\? AND kind=\? AND name=\?\)$`)
	checked := 0
	for label := range filters {
		plan := e.plans[label]
		probes := 0
		for _, line := range plan {
			if strings.HasPrefix(line, "SCAN s") {
				t.Errorf("%s reads every subject: %q in its plan\n%s", label, line, strings.Join(plan, "\n"))
			}
			if key.MatchString(line) {
				probes++
			}
		}
		if probes == 0 {
			t.Errorf("%s does not look subjects up by their key; its plan:\n%s", label, strings.Join(plan, "\n"))
		}
		checked++
	}
	if checked != len(filters) {
		t.Fatalf("checked the plans of %d filters, want %d", checked, len(filters))
	}

	rows, err := s.write.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'audit_subjects' AND sql IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		t.Errorf("audit_subjects has the index %s beside its key", name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
