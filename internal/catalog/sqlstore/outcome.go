package sqlstore

import (
	"context"
	"database/sql"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// FindOutcomes returns every job's last outcome on each of its targets, in
// no order: sorting ten thousand joined rows costs the database more than
// the caller, which orders what it shows.
func (s *Queries) FindOutcomes(ctx context.Context) ([]catalog.OutcomeRow, error) {
	return collect(ctx, s.Q, func(r Rows) (catalog.OutcomeRow, error) {
		var o catalog.OutcomeRow
		var status string
		var started sql.NullInt64
		err := r.Scan(&o.Job, &o.Target, &o.LastRunID, &status, &started)
		o.LastStatus, o.LastStartedAt = muster.RunStatus(status), fromNullMS(started)
		return o, err
	}, `SELECT j.name, t.name, jt.last_run_id, jt.last_status, jt.last_started_at
		FROM job_targets jt JOIN jobs j ON j.id = jt.job_id JOIN targets t ON t.id = jt.target_id`)
}
