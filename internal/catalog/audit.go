package catalog

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/musterhq/muster"
)

// DefaultAuditMaxAge is how long the audit log keeps an entry unless the
// master is told otherwise.
const DefaultAuditMaxAge = 365 * 24 * time.Hour

// MaxAuditList bounds one page of the audit log; the cursor each page
// names reads on from where it ended.
const MaxAuditList = 10000

// auditList names the audit log in its cursors.
const auditList = "audit log"

// AuditFilter selects entries of the audit log.
type AuditFilter struct {
	Since  time.Time // made at or after; zero for every entry
	Actor  string    // by this key, target or master
	Job    string    // concerning this job
	Target string    // concerning this target
	Limit  int       // the newest this many; 100 when zero
	// Cursor reads on after the page that named it as its next: the
	// entries older than that page's last. Empty for the newest.
	Cursor string
	// BeforeID bounds the entries to those numbered below it; 0 for no
	// bound. The catalog sets it from Cursor for its store.
	BeforeID int64
}

// audit records a change in the transaction that makes it: the change and
// its record commit, or roll back, together. A change that names no actor
// is refused, so that nothing is changed anonymously.
func (tx *tx) audit(by muster.Actor, e muster.AuditEntry) error {
	if by.Name == "" || by.Kind == "" {
		return fmt.Errorf("%s: the change names no actor to record in the audit log", e.Action)
	}
	e.At, e.Actor = tx.now, by
	e.Jobs, e.Targets, e.Changes = sortedSet(e.Jobs), sortedSet(e.Targets), nonNilLines(e.Changes)
	tx.audits = append(tx.audits, e)
	return nil
}

// sortedSet returns names sorted, without repeats, never nil.
func sortedSet(names []string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	out = slices.Compact(out)
	if out == nil {
		out = []string{}
	}
	return out
}

func nonNilLines(lines []string) []string {
	if lines == nil {
		return []string{}
	}
	return lines
}

// FindAudit returns audit entries, newest first.
func (c *Catalog) FindAudit(ctx context.Context, f AuditFilter) ([]muster.AuditEntry, error) {
	entries, _, err := c.FindAuditPage(ctx, f)
	return entries, err
}

// FindAuditPage returns a page of audit entries, newest first, and the
// cursor of the next page: empty when no entry the filter selects is
// older than the page's last. Entries are in the order of their ids, the
// order their changes were recorded in, so a page never splits entries
// made at one instant by chance.
func (c *Catalog) FindAuditPage(ctx context.Context, f AuditFilter) ([]muster.AuditEntry, string, error) {
	if f.Limit < 0 || f.Limit > MaxAuditList {
		return nil, "", muster.Errorf(muster.EINVALID, "limit: from 1 to %d, not %d", MaxAuditList, f.Limit)
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	key, err := decodeCursor(auditList, f.Cursor, 1, 0)
	if err != nil {
		return nil, "", err
	}
	if key != nil {
		f.BeforeID = key[0]
	}
	f.Target = muster.NormalizeTargetName(f.Target)
	limit := f.Limit
	f.Limit++ // one more tells whether there is a next page
	entries, err := c.store.FindAudit(ctx, f)
	if err != nil {
		return nil, "", err
	}
	entries, next := pageOf(entries, limit, auditList, func(e muster.AuditEntry) []int64 { return []int64{e.ID} })
	return entries, next, nil
}

// PruneAudit deletes the audit entries older than maxAge, and returns how
// many. The master's retention duty calls it.
func (c *Catalog) PruneAudit(ctx context.Context, maxAge time.Duration) (int64, error) {
	if maxAge <= 0 {
		return 0, muster.Errorf(muster.EINVALID, "audit max age: must be positive, not %s", maxAge)
	}
	var n int64
	err := c.update(ctx, func(tx *tx) error {
		var err error
		n, err = tx.PruneAudit(ctx, tx.now.Add(-maxAge))
		return err
	})
	return n, err
}

// jobChangeLines describes a job change for the audit log: the diff of its
// definition, then the instructions it posted.
func jobChangeLines(c muster.JobChange) []string {
	lines := slices.Clone(c.Diff)
	for _, in := range c.Instructions {
		lines = append(lines, "posted "+in)
	}
	return lines
}

// postedTargets returns the targets a change posted to.
func postedTargets(c muster.JobChange) []string {
	var out []string
	for _, in := range c.Posted {
		out = append(out, in.Target)
	}
	return out
}
