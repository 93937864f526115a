package sqlstore

import (
	"context"
	"database/sql"

	"github.com/musterhq/muster/internal/catalog"
)

// GaugeRows reads what the master's metrics show as gauges: a row per
// active or deleted target with its count of blocking instructions (the
// instructions_failed index) and its newest certificate (certs_target), the
// count of defected targets, and each job's last success per target.
func (s *Queries) GaugeRows(ctx context.Context) (catalog.GaugeRows, error) {
	var g catalog.GaugeRows
	var err error
	g.Targets, err = collect(ctx, s.Q, func(r Rows) (catalog.TargetGaugeRow, error) {
		var t catalog.TargetGaugeRow
		var lastPoll, oldest, cert sql.NullInt64
		err := r.Scan(&t.ID, &t.Name, &t.State, &t.Paused, &lastPoll, &t.PollInterval, &t.SpoolDepth, &oldest, &t.Blocking, &cert)
		t.LastPoll, t.SpoolOldest, t.CertNotAfter = fromNullMS(lastPoll), fromNullMS(oldest), fromNullMS(cert)
		return t, err
	}, `SELECT t.id, t.name, t.state, t.paused, t.last_poll_at, t.poll_interval, t.spool_depth, t.spool_oldest_at,
			(SELECT COUNT(*) FROM instructions i WHERE i.target_id = t.id AND i.status = 'failed'),
			(SELECT MAX(c.not_after) FROM certs c WHERE c.target_id = t.id AND c.replaced_at IS NULL)
		FROM targets t WHERE t.state IN ('active', 'deleted') ORDER BY t.name`)
	if err != nil {
		return g, err
	}
	if err := s.Q.QueryRow(ctx, `SELECT COUNT(*) FROM targets WHERE state = 'defected'`).Scan(&g.Defected); err != nil {
		return g, err
	}
	g.LastSuccess, err = collect(ctx, s.Q, func(r Rows) (catalog.LastSuccessRow, error) {
		var l catalog.LastSuccessRow
		var at int64
		err := r.Scan(&l.Job, &l.Target, &at)
		l.At = fromMS(at)
		return l, err
	}, `SELECT j.name, t.name, jt.last_success_at FROM job_targets jt
		JOIN jobs j ON j.id = jt.job_id JOIN targets t ON t.id = jt.target_id
		WHERE jt.last_success_at IS NOT NULL AND t.state = 'active' ORDER BY j.name, t.name`)
	return g, err
}
