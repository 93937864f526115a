package agent

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/sqlite"
)

//go:embed migrations
var migrations embed.FS

// StoreFile is the local store in a target's data directory.
const StoreFile = "target.db"

// Keys of the state table.
const (
	keyMasterURL    = "master_url"
	keyName         = "name"
	keyUID          = "uid"
	keyEpoch        = "epoch"
	keyCursor       = "cursor"
	keyMaster       = "master"
	keyPollInterval = "poll_interval"
	keyEnlistedAt   = "enlisted_at"
	keySpoolDropped = "spool_dropped"
	keyPaused       = "paused"
	keyLocation     = "location"
	keyClockOffset  = "clock_offset_ms"
)

// store is a target's local SQLite database: the jobs it holds, its cursor
// in the download list, the acks it owes, and the run spool.
type store struct {
	write, read *sql.DB
	now         func() time.Time
}

func openStore(ctx context.Context, path string, now func() time.Time) (*store, error) {
	// FULL: the spool and the cursor are the target's promises; a power
	// cut must not lose a run that was started or replay a START.
	write, read, err := sqlite.Open(path, "FULL")
	if err != nil {
		return nil, err
	}
	if err := sqlite.Migrate(ctx, write, migrations, "migrations"); err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	return &store{write: write, read: read, now: now}, nil
}

func (s *store) Close() error { return errors.Join(s.write.Close(), s.read.Close()) }

// enlistment is what a target remembers of its master.
type enlistment struct {
	MasterURL    string
	Name         string
	UID          string
	Epoch        string
	Cursor       int64
	Master       string
	PollInterval int
	EnlistedAt   time.Time
	Location     string
	Paused       bool
	// ClockOffset is the offset from the master measured at the last
	// SYNC-TIME, if any.
	ClockOffset *time.Duration
}

func (s *store) state(ctx context.Context) (map[string]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT key, value FROM state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, rows.Err()
}

// enlistment returns the stored enlistment, or ok false if there is none.
func (s *store) enlistment(ctx context.Context) (e enlistment, ok bool, err error) {
	m, err := s.state(ctx)
	if err != nil || m[keyMasterURL] == "" {
		return e, false, err
	}
	e = enlistment{MasterURL: m[keyMasterURL], Name: m[keyName], UID: m[keyUID], Epoch: m[keyEpoch], Master: m[keyMaster],
		Location: m[keyLocation], Paused: m[keyPaused] == "1"}
	if v, err := strconv.ParseInt(m[keyClockOffset], 10, 64); err == nil {
		d := time.Duration(v) * time.Millisecond
		e.ClockOffset = &d
	}
	e.Cursor, _ = strconv.ParseInt(m[keyCursor], 10, 64)
	e.PollInterval, _ = strconv.Atoi(m[keyPollInterval])
	if ms, err := strconv.ParseInt(m[keyEnlistedAt], 10, 64); err == nil {
		e.EnlistedAt = time.UnixMilli(ms).UTC()
	}
	if e.PollInterval == 0 {
		e.PollInterval = muster.DefaultPollInterval
	}
	return e, true, nil
}

func (s *store) saveEnlistment(ctx context.Context, e enlistment) error {
	return s.update(ctx, func(tx *sql.Tx) error {
		for k, v := range map[string]string{
			keyMasterURL: e.MasterURL, keyName: e.Name, keyUID: e.UID, keyEpoch: e.Epoch, keyMaster: e.Master,
			keyCursor: "0", keyPollInterval: strconv.Itoa(e.PollInterval), keyEnlistedAt: strconv.FormatInt(e.EnlistedAt.UnixMilli(), 10),
			keyLocation: e.Location,
		} {
			if err := setState(ctx, tx, k, v); err != nil {
				return err
			}
		}
		return nil
	})
}

func setState(ctx context.Context, tx *sql.Tx, key, value string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}

// update runs fn in a write transaction and commits it. The rollback is
// deferred, so that even a panic in fn gives the single write connection
// back; after a commit it does nothing.
func (s *store) update(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// applied records, in the transaction tx that applied instruction seq, the
// new cursor and the ack the master is owed.
func applied(ctx context.Context, tx *sql.Tx, seq int64, applyErr error) error {
	if err := setState(ctx, tx, keyCursor, strconv.FormatInt(seq, 10)); err != nil {
		return err
	}
	ok, msg := 1, ""
	if applyErr != nil {
		ok, msg = 0, applyErr.Error()
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO acks (seq, ok, error) VALUES (?, ?, ?) ON CONFLICT (seq) DO NOTHING`, seq, ok, msg)
	return err
}

// pendingAcks returns acks not yet confirmed by the master, in order.
func (s *store) pendingAcks(ctx context.Context) ([]agentproto.Ack, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT seq, ok, error FROM acks ORDER BY seq LIMIT 1000`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var acks []agentproto.Ack
	for rows.Next() {
		var a agentproto.Ack
		if err := rows.Scan(&a.Seq, &a.OK, &a.Error); err != nil {
			return nil, err
		}
		acks = append(acks, a)
	}
	return acks, rows.Err()
}

func (s *store) dropAcks(ctx context.Context, upTo int64) error {
	_, err := s.write.ExecContext(ctx, `DELETE FROM acks WHERE seq <= ?`, upTo)
	return err
}

// queryRower is a *sql.DB or a *sql.Tx.
type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// job returns a held job, or ok false.
func (s *store) job(ctx context.Context, q queryRower, name string) (j muster.Job, ok bool, err error) {
	var def string
	var version int64
	err = q.QueryRowContext(ctx, `SELECT version, definition FROM jobs WHERE name = ?`, name).Scan(&version, &def)
	if errors.Is(err, sql.ErrNoRows) {
		return j, false, nil
	}
	if err != nil {
		return j, false, err
	}
	if err := json.Unmarshal([]byte(def), &j); err != nil {
		return j, false, fmt.Errorf("job %q: stored definition: %w", name, err)
	}
	j.Version = version
	return j, true, nil
}

// jobs returns every held job.
func (s *store) jobs(ctx context.Context) ([]muster.Job, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT version, definition FROM jobs ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var jobs []muster.Job
	for rows.Next() {
		var def string
		var j muster.Job
		if err := rows.Scan(&j.Version, &def); err != nil {
			return nil, err
		}
		v := j.Version
		if err := json.Unmarshal([]byte(def), &j); err != nil {
			return nil, err
		}
		j.Version = v
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}

func putJob(ctx context.Context, tx *sql.Tx, j muster.Job, now time.Time) error {
	v := j.Version
	j.Version = 0
	def, err := json.Marshal(j)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO jobs (name, version, definition, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET version = excluded.version, definition = excluded.definition, updated_at = excluded.updated_at`,
		j.Name, v, string(def), now.UnixMilli())
	return err
}

// putRun writes a run at the next revision and returns that revision.
func putRun(ctx context.Context, tx *sql.Tx, r muster.Run) (int64, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	var rev int64
	err = tx.QueryRowContext(ctx, `INSERT INTO runs (run_id, job, status, revision, data, started_at) VALUES (?, ?, ?, 1, ?, ?)
		ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, revision = runs.revision + 1, data = excluded.data
		RETURNING revision`, r.RunID, r.Job, string(r.Status), string(data), r.StartedAt.UnixMilli()).Scan(&rev)
	return rev, err
}

// saveRun writes a run's new state in its own transaction.
func (s *store) saveRun(ctx context.Context, r muster.Run) error {
	return s.update(ctx, func(tx *sql.Tx) error {
		_, err := putRun(ctx, tx, r)
		return err
	})
}

// runExists reports whether the spool has (or had, within retention) a run.
func runExists(ctx context.Context, tx *sql.Tx, runID string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs WHERE run_id = ?`, runID).Scan(&n)
	return n > 0, err
}

// unsentRuns returns runs whose latest revision the master does not hold
// yet, oldest first.
func (s *store) unsentRuns(ctx context.Context, limit int) ([]agentproto.RunReport, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT revision, data FROM runs WHERE revision > uploaded_revision
		ORDER BY started_at LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []agentproto.RunReport
	for rows.Next() {
		var rep agentproto.RunReport
		var data string
		if err := rows.Scan(&rep.Revision, &data); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(data), &rep.Run); err != nil {
			return nil, err
		}
		out = append(out, rep)
	}
	return out, rows.Err()
}

// markUploaded records the master's answers to an upload.
func (s *store) markUploaded(ctx context.Context, sent []agentproto.RunReport, results []agentproto.RunResult) error {
	return s.update(ctx, func(tx *sql.Tx) error {
		for i, res := range results {
			if i >= len(sent) || res.RunID != sent[i].Run.RunID {
				return fmt.Errorf("the master answered run %q where %q was sent", res.RunID, sent[i].Run.RunID)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE runs SET uploaded_revision = ?, rejected = ? WHERE run_id = ? AND uploaded_revision < ?`,
				sent[i].Revision, res.Error, res.RunID, sent[i].Revision); err != nil {
				return err
			}
		}
		return nil
	})
}

// spoolDepth counts runs the master does not hold the latest revision of.
func (s *store) spoolDepth(ctx context.Context) int {
	var n int
	s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs WHERE revision > uploaded_revision`).Scan(&n)
	return n
}

// runningRuns returns the runs recorded as running.
func (s *store) runningRuns(ctx context.Context) ([]muster.Run, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT data FROM runs WHERE status = 'running'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var runs []muster.Run
	for rows.Next() {
		var data string
		var r muster.Run
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(data), &r); err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, rows.Err()
}

// LocalRun is a run in a target's spool, with whether the master holds its
// latest revision.
type LocalRun struct {
	muster.Run
	Uploaded bool   `json:"uploaded"`
	Rejected string `json:"rejected,omitempty"`
}

// localRuns returns the spool, oldest first.
func (s *store) localRuns(ctx context.Context) ([]LocalRun, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT data, revision <= uploaded_revision, rejected FROM runs ORDER BY started_at, run_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LocalRun
	for rows.Next() {
		var lr LocalRun
		var data string
		if err := rows.Scan(&data, &lr.Uploaded, &lr.Rejected); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(data), &lr.Run); err != nil {
			return nil, err
		}
		out = append(out, lr)
	}
	return out, rows.Err()
}

// trimSpool keeps at most limit runs waiting for the master: beyond it, the
// oldest finished ones are dropped (the newest are worth more) and counted
// under spool_dropped, which every poll reports.
func trimSpool(ctx context.Context, tx *sql.Tx, limit int) (dropped int64, err error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs WHERE revision > uploaded_revision`).Scan(&n); err != nil || n <= limit {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM runs WHERE run_id IN (SELECT run_id FROM runs
		WHERE revision > uploaded_revision AND status <> 'running' ORDER BY started_at LIMIT ?)`, n-limit)
	if err != nil {
		return 0, err
	}
	dropped, _ = res.RowsAffected()
	if dropped > 0 {
		_, err = tx.ExecContext(ctx, `INSERT INTO state (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ? AS TEXT)`, keySpoolDropped, dropped, dropped)
		if err == nil {
			err = spoolFull(ctx, tx, dropped, limit)
		}
	}
	return dropped, err
}

// spoolDropped returns how many runs the spool has dropped since enlistment.
func (s *store) spoolDropped(ctx context.Context) int {
	var v string
	s.read.QueryRowContext(ctx, `SELECT value FROM state WHERE key = ?`, keySpoolDropped).Scan(&v)
	n, _ := strconv.Atoi(v)
	return n
}

// expireRuns deletes runs the master holds that finished before cutoff.
func (s *store) expireRuns(ctx context.Context, cutoff time.Time) error {
	_, err := s.write.ExecContext(ctx, `DELETE FROM runs WHERE revision <= uploaded_revision AND status <> 'running' AND started_at < ?`,
		cutoff.UnixMilli())
	return err
}

// setState writes one state key in its own transaction.
func (s *store) setState(ctx context.Context, key, value string) error {
	return s.update(ctx, func(tx *sql.Tx) error { return setState(ctx, tx, key, value) })
}
