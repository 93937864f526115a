package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// sqlUpsertRun stores a run at its revision; an older or equal revision
// changes nothing (and returns no row). It returns the run's row and, when
// it replaced one, what that held (prior_status, prior_started; NULL when
// it inserted the run).
const sqlUpsertRun = `INSERT INTO runs (target_id, run_id, job_name, status, trigger, message, revision,
		started_at, finished_at, duration_ms, steps, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
` + SQLRunAtRevision + `
	RETURNING id, prior_status, prior_started`

// SQLRunAtRevision is the conflict clause of a run's upsert: the stored
// run is replaced only by a later revision, and what it held is kept in
// prior_status and prior_started. A run at revision 0 is the master's own
// record of a START that was not run (catalog.NotRunRevision): its
// target's report, should one come after all, replaces it, and what it
// held (skipped, no step) says that the run's end was counted already.
const SQLRunAtRevision = `ON CONFLICT (target_id, run_id) DO UPDATE SET status = excluded.status, trigger = excluded.trigger,
		message = excluded.message, revision = excluded.revision, started_at = excluded.started_at,
		finished_at = excluded.finished_at, duration_ms = excluded.duration_ms, steps = excluded.steps,
		updated_at = excluded.updated_at,
		prior_status = runs.status, prior_started = runs.steps NOT IN ('[]', 'null')
	WHERE excluded.revision > runs.revision`

// ScanUpsert reads what sqlUpsertRun returns into u.
func ScanUpsert(row Row, u *catalog.RunUpsert) error {
	var prior sql.NullString
	var started sql.NullBool
	if err := row.Scan(&u.Row, &prior, &started); err != nil {
		return err
	}
	u.Held = held(prior, started)
	return nil
}

// held is what a run's row held before an upsert replaced it, from
// prior_status and prior_started: nil when the upsert inserted it.
func held(prior sql.NullString, started sql.NullBool) *catalog.RunHeld {
	if !prior.Valid {
		return nil
	}
	return &catalog.RunHeld{Status: muster.RunStatus(prior.String), Started: started.Bool}
}

// RunParams returns the parameters of sqlUpsertRun for one run.
func RunParams(targetID int64, r catalog.RunRow, at time.Time) ([]any, error) {
	steps, err := AppendSteps(nil, r.Steps)
	if err != nil {
		return nil, err
	}
	return []any{targetID, r.RunID, r.Job, string(r.Status), r.Trigger, r.Message, r.Revision,
		ms(r.StartedAt), nullMS(r.FinishedAt), r.DurationMS, string(steps), ms(at)}, nil
}

// SQLUpsertRun is the statement that stores one run, for engines that
// batch it.
const SQLUpsertRun = sqlUpsertRun

// UpsertRuns stores runs at their revisions, many to a statement (SQLite's:
// PostgreSQL passes the rows as arrays instead, in pgstore); each run keeps
// its own revision guard, and only the runs a statement changed come back.
// A batch that names a run twice (which one statement cannot insert and
// then update) goes one statement a run.
func (s *Queries) UpsertRuns(ctx context.Context, targetID int64, runs []catalog.RunRow, at time.Time) ([]catalog.RunUpsert, error) {
	index, distinct := RunIndex(runs)
	if len(runs) < 2 || !distinct {
		return s.upsertRunsEach(ctx, targetID, runs, at)
	}
	out := make([]catalog.RunUpsert, len(runs))
	updated := ms(at)
	params := make([]any, 0, upsertRunsValues.cols*upsertRunsValues.rows(len(runs)))
	var buf []byte
	var ends []int
	for rest := runs; len(rest) > 0; {
		n := upsertRunsValues.rows(len(rest))
		// The statement's step attempts, encoded one after the other into
		// one string that each run's are a part of.
		buf, ends = buf[:0], ends[:0]
		for _, r := range rest[:n] {
			var err error
			if buf, err = AppendSteps(buf, r.Steps); err != nil {
				return nil, err
			}
			ends = append(ends, len(buf))
		}
		steps, start := string(buf), 0
		params = params[:0]
		for i, r := range rest[:n] {
			params = append(params, targetID, r.RunID, r.Job, string(r.Status), r.Trigger, r.Message, r.Revision,
				ms(r.StartedAt), nullMS(r.FinishedAt), r.DurationMS, steps[start:ends[i]], updated)
			start = ends[i]
		}
		res, err := s.Q.Query(ctx, upsertRunsValues.text(n), params...)
		if err != nil {
			return nil, err
		}
		if err := scanUpsertsInto(res, index, out); err != nil {
			return nil, err
		}
		rest = rest[n:]
	}
	return out, nil
}

// upsertRunsValues is sqlUpsertRun for many runs at once, a row of
// parameters each, in sqlUpsertRun's order; it returns the run's id last.
var upsertRunsValues = newValuesInsert(`INSERT INTO runs (target_id, run_id, job_name, status, trigger, message, revision,
		started_at, finished_at, duration_ms, steps, updated_at)`, 12,
	SQLRunAtRevision+`
	RETURNING id, prior_status, prior_started, run_id`)

// RunIndex returns each run's place in runs, by its id, and whether every
// id is named once (a statement for many runs cannot insert a run and then
// update it).
func RunIndex(runs []catalog.RunRow) (map[string]int, bool) {
	index := make(map[string]int, len(runs))
	for i, r := range runs {
		if _, dup := index[r.RunID]; dup {
			return nil, false
		}
		index[r.RunID] = i
	}
	return index, true
}

// ScanUpserts reads, and closes, the rows of a statement that stored many
// runs: sqlUpsertRun's columns, then the run's id. Each goes to its run's
// place (index, from RunIndex), marked changed; a run not returned was
// not changed.
func ScanUpserts(rows Rows, index map[string]int) ([]catalog.RunUpsert, error) {
	out := make([]catalog.RunUpsert, len(index))
	return out, scanUpsertsInto(rows, index, out)
}

// scanUpsertsInto is ScanUpserts into out, which holds a place for each
// run of index.
func scanUpsertsInto(rows Rows, index map[string]int, out []catalog.RunUpsert) error {
	defer rows.Close()
	// The same destinations for every row: a row costs no allocation but
	// its run's id.
	var (
		row     int64
		prior   sql.NullString
		started sql.NullBool
		runID   string
	)
	dest := []any{&row, &prior, &started, &runID}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		i, ok := index[runID]
		if !ok {
			return fmt.Errorf("upsert of runs: run %q came back unasked", runID)
		}
		out[i] = catalog.RunUpsert{Row: row, Held: held(prior, started), Changed: true}
	}
	return rows.Err()
}

// upsertRunsEach stores runs one statement each.
func (s *Queries) upsertRunsEach(ctx context.Context, targetID int64, runs []catalog.RunRow, at time.Time) ([]catalog.RunUpsert, error) {
	out := make([]catalog.RunUpsert, len(runs))
	for i, r := range runs {
		params, err := RunParams(targetID, r, at)
		if err != nil {
			return nil, err
		}
		err = ScanUpsert(s.Q.QueryRow(ctx, sqlUpsertRun, params...), &out[i])
		switch {
		case noRows(err):
		case err != nil:
			return nil, err
		default:
			out[i].Changed = true
		}
	}
	return out, nil
}

// SetLastOutcome makes a run the last outcome of its job on its target,
// unless a run the catalog recorded later already is: runs are ordered by
// when the master first recorded them, which no target can forge.
func (s *Queries) SetLastOutcome(ctx context.Context, targetID int64, r catalog.RunRow, row int64) error {
	return s.execHeld(ctx, `UPDATE job_targets SET last_run_id = $1, last_status = $2, last_message = $3,
			last_started_at = $4, last_duration_ms = $5, last_run_row = $6
		WHERE target_id = $7 AND job_id = (SELECT id FROM jobs WHERE name = $8)
			AND (last_run_row IS NULL OR last_run_row <= $6)`,
		r.RunID, string(r.Status), r.Message, ms(r.StartedAt), r.DurationMS, row, targetID, r.Job)
}

// SetLastSuccess moves a job's last success on a target forward to at.
func (s *Queries) SetLastSuccess(ctx context.Context, targetID int64, job string, at time.Time) error {
	return s.execHeld(ctx, `UPDATE job_targets SET last_success_at = $1
		WHERE target_id = $2 AND job_id = (SELECT id FROM jobs WHERE name = $3)
			AND (last_success_at IS NULL OR last_success_at < $1)`, ms(at), targetID, job)
}

// FindRuns returns runs, newest first.
func (s *Queries) FindRuns(ctx context.Context, f catalog.RunFilter) ([]catalog.RunRow, error) {
	a := &args{d: s.D}
	q := `SELECT r.job_name, t.name, r.run_id, r.status, r.trigger, r.message, r.started_at, r.finished_at, r.duration_ms, r.steps,
			r.revision, r.updated_at, r.id, t.id, t.last_poll_at, t.poll_interval
		FROM runs r JOIN targets t ON t.id = r.target_id WHERE TRUE`
	if f.Job != "" {
		q += ` AND r.job_name = ` + a.add(f.Job)
	}
	if f.Target != "" {
		// The targets of the name (one, or with those defected before it
		// was taken again) first: the runs of one are read by its index
		// in the list's order, and stopped at the limit.
		ids, err := collect(ctx, s.Q, func(r Rows) (id int64, err error) { return id, r.Scan(&id) },
			`SELECT id FROM targets WHERE name = $1`, f.Target)
		if err != nil || len(ids) == 0 {
			return nil, err
		}
		if len(ids) == 1 {
			q += ` AND r.target_id = ` + a.add(ids[0])
		} else {
			q += ` AND ` + in(a, "r.target_id", ids)
		}
	}
	if f.Scope.Limited() {
		q += ` AND ` + scopeJobs(a, "r.job_name", f.Scope)
	}
	if f.Before != nil {
		// A row value: both engines read it as a bound of the indexes by
		// (job or target, started_at, id), in the history's order.
		q += ` AND (r.started_at, r.id) < (` + a.add(ms(f.Before.StartedAt)) + `, ` + a.add(f.Before.Row) + `)`
	}
	want := map[muster.RunRef]bool{}
	if len(f.Runs) > 0 {
		ids := make([]string, len(f.Runs))
		for i, ref := range f.Runs {
			ids[i] = ref.RunID
			want[ref] = true
		}
		q += ` AND ` + in(a, "r.run_id", ids)
	}
	q += ` ORDER BY r.started_at DESC, r.id DESC`
	if len(f.Runs) == 0 {
		limit := f.Limit
		if limit <= 0 {
			limit = 100
		}
		q += ` LIMIT ` + a.add(limit)
	}
	runs, err := collect(ctx, s.Q, scanRun, q, a.vals...)
	if err != nil || len(f.Runs) == 0 {
		return runs, err
	}
	// A run id names a run on its own target only, whatever another
	// target uploaded under the same id.
	out := runs[:0]
	for _, r := range runs {
		if want[muster.RunRef{Target: r.Target, RunID: r.RunID}] || want[muster.RunRef{RunID: r.RunID}] {
			out = append(out, r)
		}
	}
	return out, nil
}

// RunningRuns returns the runs a target last reported running, oldest
// first.
func (s *Queries) RunningRuns(ctx context.Context, targetID int64) ([]catalog.RunRow, error) {
	return collect(ctx, s.Q, scanRun, `SELECT r.job_name, t.name, r.run_id, r.status, r.trigger, r.message, r.started_at, r.finished_at, r.duration_ms, r.steps,
			r.revision, r.updated_at, r.id, t.id, t.last_poll_at, t.poll_interval
		FROM runs r JOIN targets t ON t.id = r.target_id WHERE r.target_id = $1 AND r.status = 'running'
		ORDER BY r.started_at, r.id`, targetID)
}

// TargetsRunning returns the active targets, by name, where a run of job is
// recorded running.
func (s *Queries) TargetsRunning(ctx context.Context, job string) (map[string]int64, error) {
	type target struct {
		name string
		id   int64
	}
	ts, err := collect(ctx, s.Q, func(r Rows) (t target, err error) {
		err = r.Scan(&t.name, &t.id)
		return t, err
	}, `SELECT DISTINCT t.name, t.id FROM runs r JOIN targets t ON t.id = r.target_id
		WHERE r.job_name = $1 AND r.status = 'running' AND t.state = 'active'`, job)
	out := make(map[string]int64, len(ts))
	for _, t := range ts {
		out[t.name] = t.id
	}
	return out, err
}

func scanRun(r Rows) (catalog.RunRow, error) {
	var run catalog.RunRow
	var started, updated int64
	var finished, lastPoll sql.NullInt64
	var steps, status string
	if err := r.Scan(&run.Job, &run.Target, &run.RunID, &status, &run.Trigger, &run.Message, &started, &finished, &run.DurationMS, &steps,
		&run.Revision, &updated, &run.Key, &run.TargetID, &lastPoll, &run.PollInterval); err != nil {
		return run, err
	}
	run.Status = muster.RunStatus(status)
	run.StartedAt, run.FinishedAt, run.UpdatedAt, run.LastPoll = fromMS(started), fromNullMS(finished), fromMS(updated), fromNullMS(lastPoll)
	if err := json.Unmarshal([]byte(steps), &run.Steps); err != nil {
		return run, fmt.Errorf("run %s: stored steps: %w", run.RunID, err)
	}
	if run.Steps == nil {
		run.Steps = []muster.StepAttempt{}
	}
	return run, nil
}

// inRunningRollout is true of a run a running rollout waits on, or counts
// the failures of: retention keeps it until the rollout ends.
const inRunningRollout = `EXISTS (SELECT 1 FROM rollout_targets rt JOIN rollouts ro ON ro.id = rt.rollout_id
	WHERE ro.state = 'running' AND rt.target_id = runs.target_id AND rt.run_id = runs.run_id)`

// PurgeRuns deletes finished runs that started before a time, and beyond
// the newest keepPerJob finished runs of each job, of one job or every
// job; never one of a running rollout. It returns how many it deleted of
// each job.
func (s *Queries) PurgeRuns(ctx context.Context, job string, startedBefore *time.Time, keepPerJob int) (map[string]int64, error) {
	deleted := map[string]int64{}
	purge := func(q string, vals ...any) error {
		names, err := collect(ctx, s.Q, func(r Rows) (name string, err error) {
			return name, r.Scan(&name)
		}, q+` RETURNING job_name`, vals...)
		for _, n := range names {
			deleted[n]++
		}
		return err
	}
	if startedBefore != nil {
		a := &args{d: s.D}
		q := `DELETE FROM runs WHERE status <> 'running' AND NOT ` + inRunningRollout + ` AND started_at < ` + a.add(ms(*startedBefore))
		if job != "" {
			q += ` AND job_name = ` + a.add(job)
		}
		if err := purge(q, a.vals...); err != nil {
			return nil, err
		}
	}
	if keepPerJob > 0 {
		a := &args{d: s.D}
		filter := ` WHERE status <> 'running'`
		if job != "" {
			filter += ` AND job_name = ` + a.add(job)
		}
		if err := purge(`DELETE FROM runs WHERE id IN (
			SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY job_name ORDER BY started_at DESC, id DESC) AS n
				FROM runs`+filter+`) AS ranked
			WHERE n > `+a.add(keepPerJob)+`) AND NOT `+inRunningRollout, a.vals...); err != nil {
			return nil, err
		}
	}
	return deleted, nil
}

// RunKey returns a run's row.
func (s *Queries) RunKey(ctx context.Context, targetID int64, runID string) (int64, error) {
	var key int64
	err := s.Q.QueryRow(ctx, `SELECT id FROM runs WHERE target_id = $1 AND run_id = $2`, targetID, runID).Scan(&key)
	return key, err
}

// RunOutputs returns the output chunks of runs, by run, attempt and place.
func (s *Queries) RunOutputs(ctx context.Context, runs []int64) ([]catalog.OutputRow, error) {
	a := &args{d: s.D}
	return collect(ctx, s.Q, func(r Rows) (o catalog.OutputRow, err error) {
		err = r.Scan(&o.Run, &o.Attempt, &o.Offset, &o.Data)
		return o, err
	}, `SELECT run, attempt, byte_offset, data FROM run_output WHERE `+in(a, "run", runs)+` ORDER BY run, attempt, byte_offset`, a.vals...)
}

// OutputEnd returns where the chunks held of an attempt's output end (0
// when none is).
func (s *Queries) OutputEnd(ctx context.Context, run int64, attempt int) (int64, error) {
	var end int64
	err := s.Q.QueryRow(ctx, `SELECT byte_offset + length(data) FROM run_output WHERE run = $1 AND attempt = $2
		ORDER BY byte_offset DESC LIMIT 1`, run, attempt).Scan(&end)
	if noRows(err) {
		return 0, nil
	}
	return end, err
}

// InsertOutputs stores chunks of output, each unless one is held at its
// place: several to a statement, a row of parameters each, up to
// maxOutputsBytes of output a statement (SQLite's: PostgreSQL passes the
// rows as arrays, in pgstore); a single chunk, or a large one, alone.
func (s *Queries) InsertOutputs(ctx context.Context, chunks []catalog.OutputRow) error {
	var params []any
	for rest := chunks; len(rest) > 0; {
		n := insertOutputsValues.rows(len(rest))
		for n > 1 && outputBytes(rest[:n]) > maxOutputsBytes {
			n /= 2
		}
		if n == 1 {
			o := rest[0]
			if err := s.execHeld(ctx, `INSERT INTO run_output (run, attempt, byte_offset, data) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
				o.Run, o.Attempt, o.Offset, o.Data); err != nil {
				return err
			}
			rest = rest[1:]
			continue
		}
		params = params[:0]
		for _, o := range rest[:n] {
			params = append(params, o.Run, o.Attempt, o.Offset, o.Data)
		}
		if err := s.execHeld(ctx, insertOutputsValues.text(n), params...); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

// insertOutputsValues stores many chunks at once.
var insertOutputsValues = newValuesInsert(`INSERT INTO run_output (run, attempt, byte_offset, data)`, 4, `ON CONFLICT DO NOTHING`)

// outputBytes is the output the chunks hold.
func outputBytes(chunks []catalog.OutputRow) int {
	n := 0
	for _, o := range chunks {
		n += len(o.Data)
	}
	return n
}

// maxOutputsBytes bounds the bytes of output stored in one statement, which
// the driver copies to bind: past it, the statement's cost is the bytes,
// not the statement.
const maxOutputsBytes = 256 << 10

// StartsPosted returns when the STARTs of the runs named were posted to
// the target (instructions_start_run).
func (s *Queries) StartsPosted(ctx context.Context, targetID int64, runIDs []string) (map[string]time.Time, error) {
	out := make(map[string]time.Time, len(runIDs))
	if len(runIDs) == 0 {
		return out, nil
	}
	a := &args{d: s.D}
	// run_id <> '' is the condition of the index by run id, which a
	// statement must state for the index to serve it.
	q := `SELECT run_id, posted_at FROM instructions WHERE target_id = ` + a.add(targetID) + ` AND run_id <> '' AND ` + in(a, "run_id", runIDs)
	rows, err := s.Q.Query(ctx, q, a.vals...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, err
		}
		out[id] = fromMS(at)
	}
	return out, rows.Err()
}

// StartsWithoutRun returns the STARTs q selects whose run is not recorded
// (instructions_open, then the runs' key).
func (s *Queries) StartsWithoutRun(ctx context.Context, q catalog.StartQuery) ([]catalog.StartRow, error) {
	a := &args{d: s.D}
	stmt := `SELECT i.target_id, i.seq, i.job_name, i.payload, i.status, i.error, i.posted_at, i.run_id FROM instructions i
		WHERE ` + in(a, "i.target_id", q.TargetIDs) + ` AND ` + in(a, "i.status", statusTexts(q.Statuses)) +
		` AND i.operation = 'START' AND i.run_id <> ''`
	if q.Job != "" {
		stmt += ` AND i.job_name = ` + a.add(q.Job)
	}
	if len(q.Seqs) > 0 {
		stmt += ` AND ` + in(a, "i.seq", q.Seqs)
	}
	if q.After > 0 {
		stmt += ` AND i.seq > ` + a.add(q.After)
	}
	stmt += ` AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.target_id = i.target_id AND r.run_id = i.run_id)
		ORDER BY i.target_id, i.seq`
	return collect(ctx, s.Q, func(r Rows) (st catalog.StartRow, err error) {
		var payload, status string
		var posted int64
		err = r.Scan(&st.TargetID, &st.Seq, &st.Job, &payload, &status, &st.Error, &posted, &st.RunID)
		st.Operation, st.Payload, st.Status, st.PostedAt = muster.OpStart, []byte(payload), muster.InstructionStatus(status), fromMS(posted)
		return st, err
	}, stmt, a.vals...)
}
