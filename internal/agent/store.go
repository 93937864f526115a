package agent

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/migration"
	"github.com/musterhq/muster/internal/sqlite"
)

//go:embed migrations
var migrations embed.FS

// StoreFile is the local store in a target's data directory.
const StoreFile = "target.db"

// Keys of the state table.
const (
	keyMasterURL    = "master_url" // the master in use
	keyMasters      = "masters"    // every master of the group, a JSON array of URLs
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
	// full is set while the last write failed for want of space in the
	// data directory, and cleared by the next that succeeds.
	full atomic.Bool
	// fault, when set, fails every write with the error it holds before
	// it reaches SQLite: the seam through which tests fill the disk.
	fault atomic.Pointer[error]
	// afterRunsRead, when set, runs in unsentRuns between its read of the
	// runs and of their output: the seam through which a test saves a
	// run's next state in between.
	afterRunsRead func()
}

// errFull is the condition of a data directory whose filesystem is full.
var errFull = errors.New("the data directory is full")

// isFull reports whether err is a write refused for want of space:
// SQLITE_FULL (which SQLite also returns for ENOSPC), or ENOSPC itself.
func isFull(err error) bool {
	var coded interface{ Code() int }
	if errors.As(err, &coded) && coded.Code()&0xff == sqlite3.SQLITE_FULL {
		return true
	}
	return errors.Is(err, errFull) || errors.Is(err, syscall.ENOSPC)
}

func openStore(ctx context.Context, path string, now func() time.Time) (*store, error) {
	// FULL: the spool and the cursor are the target's promises; a power
	// cut must not lose a run that was started or replay a START. Two
	// readers: a target reads little, and each holds a page cache.
	write, read, err := sqlite.Open(path, "FULL", 2)
	if err != nil {
		return nil, err
	}
	if err := sqlite.Migrate(ctx, write, migrations, "migrations"); err != nil {
		write.Close()
		read.Close()
		if sqlite.IsDamaged(err) {
			return nil, muster.Wrap(muster.EPRECONDITION, err, "%s: the target's store is damaged (%v). Put back a copy of it taken while the daemon was stopped, "+
				"or enlist this server again: `muster target delete NAME --force` on the master, then `muster enlist` with a new data directory", path, err)
		}
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	return &store{write: write, read: read, now: now}, nil
}

// StoreSchema is the number of the last migration of the target's store
// this muster has: the store schema it knows.
func StoreSchema() int { return migration.Latest(migrations, "migrations") }

func (s *store) Close() error { return errors.Join(s.write.Close(), s.read.Close()) }

// enlistment is what a target remembers of its master.
type enlistment struct {
	MasterURL string // the master in use
	// Masters are the URLs of every master of the group, MasterURL
	// among them.
	Masters      []string
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
	if json.Unmarshal([]byte(m[keyMasters]), &e.Masters) != nil || len(e.Masters) == 0 {
		e.Masters = []string{e.MasterURL} // enlisted by a build that knew one master
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
	masters, err := json.Marshal(e.Masters)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *sql.Tx) error {
		for k, v := range map[string]string{
			keyMasterURL: e.MasterURL, keyMasters: string(masters), keyName: e.Name, keyUID: e.UID, keyEpoch: e.Epoch, keyMaster: e.Master,
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

// update runs fn in a write transaction and commits it, synced. The
// rollback is deferred, so that even a panic in fn gives the single write
// connection back; after a commit it does nothing.
func (s *store) update(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.noteFull(s.transact(ctx, fn, true))
}

// updateUnsynced is update for a transaction whose loss in a power cut
// costs only a repeat: its commit is written to the log, but the log is
// not synced (synchronous=NORMAL), so it waits for no disk, and a synced
// commit queued behind it waits only for the write. The next synced commit
// syncs it with its own: the log is one file, written in order. What it
// records is what the master already holds (see markUploaded): lost, it is
// sent again, and the master takes the repeat as it takes one whose answer
// the network lost.
func (s *store) updateUnsynced(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.noteFull(s.transact(ctx, fn, false))
}

// noteFull notes whether the store refused a write for want of space.
func (s *store) noteFull(err error) error {
	switch {
	case err == nil:
		s.full.Store(false)
	case isFull(err):
		s.full.Store(true)
		if !errors.Is(err, errFull) {
			err = fmt.Errorf("%w: %w", errFull, err)
		}
	}
	return err
}

func (s *store) transact(ctx context.Context, fn func(*sql.Tx) error, synced bool) error {
	if f := s.fault.Load(); f != nil {
		return *f
	}
	if synced {
		tx, err := s.write.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		return commit(tx, fn)
	}
	// The store has one write connection: held here, it runs the pragmas
	// and the transaction with no other writer between them. SQLite will
	// not change the level inside a transaction, so it is changed around
	// it, and set back whatever happens: a connection left unsynced would
	// drop the guarantee of every commit after.
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return err
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = FULL`); err != nil {
			// Not set back: the connection is discarded, and the one
			// opened in its place is synced.
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	return commit(tx, fn)
}

// commit runs fn in tx and commits it, or rolls it back.
func commit(tx *sql.Tx, fn func(*sql.Tx) error) error {
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
	return s.exec(ctx, `DELETE FROM acks WHERE seq <= ?`, upTo)
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

// insertRun writes a new run at revision 1, and reports false, writing
// nothing, if the spool has (or had, within retention) a run of that id:
// a replayed START or fire, which already happened. One statement where a
// check and an insert took two, on the dispatch path.
func insertRun(ctx context.Context, tx *sql.Tx, r muster.Run) (bool, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	var rev int64
	err = tx.QueryRowContext(ctx, `INSERT INTO runs (run_id, job, status, revision, data, started_at) VALUES (?, ?, ?, 1, ?, ?)
		ON CONFLICT (run_id) DO NOTHING RETURNING revision`, r.RunID, r.Job, string(r.Status), string(data), r.StartedAt.UnixMilli()).Scan(&rev)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// outputChunk is a piece of one attempt's output: data follows the first
// offset bytes of the output of the run's steps[attempt].
type outputChunk struct {
	attempt int
	offset  int64
	data    string
}

// saveRuns records run states, in order, with their output, in one
// transaction.
func (s *store) saveRuns(ctx context.Context, runs []pendingRun) error {
	return s.update(ctx, func(tx *sql.Tx) error {
		for _, p := range runs {
			if _, err := putRun(ctx, tx, p.run); err != nil {
				return err
			}
			if err := appendOutput(ctx, tx, p.run.RunID, p.output); err != nil {
				return err
			}
		}
		return nil
	})
}

// saveRun writes a run's new state, and the chunks of output that came
// since the last, in one transaction.
func (s *store) saveRun(ctx context.Context, r muster.Run, output []outputChunk) error {
	return s.update(ctx, func(tx *sql.Tx) error {
		if _, err := putRun(ctx, tx, r); err != nil {
			return err
		}
		return appendOutput(ctx, tx, r.RunID, output)
	})
}

// maxStoredChunk bounds a stored chunk of output: encoded, even with
// every byte escaped (six times its size), it fits a run report
// (agentproto.MaxRunReport) with room to spare.
const maxStoredChunk = 1 << 20

// appendOutput stores chunks of a run's output, in order, each cut at
// maxStoredChunk bytes (on a character's boundary).
func appendOutput(ctx context.Context, tx *sql.Tx, runID string, output []outputChunk) error {
	for _, c := range output {
		for data, offset := c.data, c.offset; data != ""; {
			piece := data[:cutAt(data, maxStoredChunk)]
			if _, err := tx.ExecContext(ctx, `INSERT INTO output (run_id, attempt, offset, data) VALUES (?, ?, ?, ?)`,
				runID, c.attempt, offset, piece); err != nil {
				return err
			}
			data, offset = data[len(piece):], offset+int64(len(piece))
		}
	}
	return nil
}

// cutAt returns where to cut s so that s[:i] is at most n bytes and ends
// on a character's boundary: len(s) if it is short enough.
func cutAt(s string, n int) int {
	if len(s) <= n {
		return len(s)
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	if i == 0 {
		return n // not UTF-8 at all: cut where it is
	}
	return i
}

// runExists reports whether the spool has (or had, within retention) a run.
func runExists(ctx context.Context, tx *sql.Tx, runID string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs WHERE run_id = ?`, runID).Scan(&n)
	return n > 0, err
}

// upload is a batch of runs for the master, with the last chunk of output
// of each that it carries.
type upload struct {
	reports   []agentproto.RunReport
	lastChunk []int64
	// partial is set when the batch carries some of its last run's output
	// only: that run is to be sent again with the rest.
	partial bool
	// more is set when runs were left out to keep within the budget.
	more bool
}

// unsentRuns returns, oldest first, at most lim.runs runs whose latest
// revision the master does not hold yet, each with the chunks of its
// output the master does not hold, within about lim.body bytes as they
// are encoded, each run's report within about lim.report. The first run
// is carried whatever its size, its output cut to the limits if need be,
// with at least one chunk of it.
func (s *store) unsentRuns(ctx context.Context, lim uploadLimits) (upload, error) {
	limit, budget := lim.runs, lim.body
	var up upload
	// The runs and their output are read in one transaction, from one
	// snapshot. Read apart, a state saved in between (a step that began and
	// ended) would bring its output along with the older revision read
	// first; the master refuses output for an attempt that revision does
	// not have, and the output, counted as sent with it, was lost.
	tx, err := s.read.BeginTx(ctx, nil)
	if err != nil {
		return up, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT run_id, revision, data, uploaded_output FROM runs WHERE revision > uploaded_revision
		ORDER BY started_at LIMIT ?`, limit)
	if err != nil {
		return up, err
	}
	type pending struct {
		rep  agentproto.RunReport
		from int64 // the last chunk the master holds
	}
	var runs []pending
	for rows.Next() {
		var p pending
		var id, data string
		if err := rows.Scan(&id, &p.rep.Revision, &data, &p.from); err != nil {
			rows.Close()
			return up, err
		}
		var r muster.Run
		if err := json.Unmarshal([]byte(data), &r); err != nil {
			rows.Close()
			return up, fmt.Errorf("run %s: stored run: %w", id, err)
		}
		p.rep.Run = agentproto.RunFromDomain(r)
		runs = append(runs, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return up, err
	}
	if s.afterRunsRead != nil {
		s.afterRunsRead()
	}
	size := 0
	for _, p := range runs {
		size += runOverhead + len(p.rep.Run.Message)
		if len(up.reports) > 0 && size > budget {
			up.more = true
			break
		}
		last, complete, err := unsentOutput(ctx, tx, &p.rep, p.from, &size, budget, lim.report, len(up.reports) == 0)
		if err != nil {
			return up, err
		}
		up.reports, up.lastChunk = append(up.reports, p.rep), append(up.lastChunk, last)
		if !complete {
			up.partial, up.more = true, true
			break
		}
	}
	return up, nil
}

// runOverhead is about what a run's report takes besides its message and
// output.
const runOverhead = 1024

// unsentOutput adds to rep the chunks of its run's output after chunk
// from, while size stays within budget and the report within maxReport;
// the first chunk is added whatever its size when first is set. It
// returns the last chunk added (from, if none) and whether every unsent
// chunk was.
func unsentOutput(ctx context.Context, tx *sql.Tx, rep *agentproto.RunReport, from int64, size *int, budget, maxReport int, first bool) (int64, bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, attempt, offset, data FROM output WHERE run_id = ? AND id > ? ORDER BY id`,
		rep.Run.RunID, from)
	if err != nil {
		return from, false, err
	}
	defer rows.Close()
	last := from
	// The report is at most maxReport as sent: its run besides the
	// output, then the chunks.
	reportSize := runOverhead + encodedLen(rep.Run.Message)
	for rows.Next() {
		var id int64
		var c agentproto.OutputChunk
		if err := rows.Scan(&id, &c.Attempt, &c.Offset, &c.Data); err != nil {
			return last, false, err
		}
		n := 64 + encodedLen(c.Data)
		if (*size+n > budget || reportSize+n > maxReport) && !(first && last == from) {
			return last, false, nil
		}
		*size, reportSize = *size+n, reportSize+n
		rep.Output, last = append(rep.Output, c), id
	}
	return last, true, rows.Err()
}

// encodedLen is about how many bytes s takes as a JSON string: the bytes
// JSON escapes (controls, quotes, backslashes, and <, > and & as Go writes
// them) count six.
func encodedLen(s string) int {
	n := 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&':
			n += 6
		default:
			n++
		}
	}
	return n
}

// markUploaded records the master's answers to an upload: the output each
// run's report carried is the master's, and so is the revision, unless the
// report carried only part of the output still to send. Its commit is not
// synced: a run finishing meanwhile has its synced commit wait for no
// disk but its own, and a mark lost in a power cut sends the runs again.
func (s *store) markUploaded(ctx context.Context, up upload, results []agentproto.RunResult) error {
	return s.updateUnsynced(ctx, func(tx *sql.Tx) error {
		for i, res := range results {
			if i >= len(up.reports) || res.RunID != up.reports[i].Run.RunID {
				return fmt.Errorf("the master answered for run %q where it was sent another", res.RunID)
			}
			rev := up.reports[i].Revision
			if up.partial && i == len(up.reports)-1 {
				rev = 0 // the rest of its output is still to go
			}
			if _, err := tx.ExecContext(ctx, `UPDATE runs SET uploaded_output = MAX(uploaded_output, ?),
				uploaded_revision = MAX(uploaded_revision, ?), rejected = ? WHERE run_id = ?`,
				up.lastChunk[i], rev, res.Error, res.RunID); err != nil {
				return err
			}
		}
		return nil
	})
}

// skipOutput records that the master is not to be sent a run's output up
// to chunk through: it refused it.
func (s *store) skipOutput(ctx context.Context, runID string, through int64) error {
	return s.update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE runs SET uploaded_output = MAX(uploaded_output, ?) WHERE run_id = ?`, through, runID)
		return err
	})
}

// rejectRun records that the master refused a run at revision for good, as
// markUploaded records a refusal in its answers: the revision is not sent
// again.
func (s *store) rejectRun(ctx context.Context, runID string, revision int64, reason string) error {
	return s.update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE runs SET uploaded_revision = MAX(uploaded_revision, ?), rejected = ? WHERE run_id = ?`,
			revision, reason, runID)
		return err
	})
}

// spoolDepth counts runs the master does not hold the latest revision of.
func (s *store) spoolDepth(ctx context.Context) int {
	var n int
	s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs WHERE revision > uploaded_revision`).Scan(&n)
	return n
}

// unsentRunIDs returns the runs the master does not hold the latest
// revision of (the runs_unsent index).
func (s *store) unsentRunIDs(ctx context.Context) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT run_id FROM runs WHERE revision > uploaded_revision`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
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

// LocalRun is a run in a target's spool, with its output, and whether the
// master holds its latest revision.
type LocalRun struct {
	muster.Run
	Uploaded bool   `json:"uploaded"`
	Rejected string `json:"rejected,omitempty"`
}

// localRuns returns the spool, oldest first.
func (s *store) localRuns(ctx context.Context) ([]LocalRun, error) {
	// Runs and output from one snapshot, as the uploader reads them: apart,
	// a run's older state could come with output of attempts it lacks.
	tx, err := s.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT data, revision <= uploaded_revision, rejected FROM runs ORDER BY started_at, run_id`)
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
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if err := readOutput(ctx, tx, &out[i].Run); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readOutput fills in the output of r's attempts from the stored chunks.
func readOutput(ctx context.Context, tx *sql.Tx, r *muster.Run) error {
	rows, err := tx.QueryContext(ctx, `SELECT attempt, data FROM output WHERE run_id = ? ORDER BY id`, r.RunID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var attempt int
		var data string
		if err := rows.Scan(&attempt, &data); err != nil {
			return err
		}
		if attempt >= 0 && attempt < len(r.Steps) {
			r.Steps[attempt].Output += data
		}
	}
	return rows.Err()
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
	return s.exec(ctx, `DELETE FROM runs WHERE revision <= uploaded_revision AND status <> 'running' AND started_at < ?`,
		cutoff.UnixMilli())
}

// exec runs one writing statement in its own transaction.
func (s *store) exec(ctx context.Context, query string, args ...any) error {
	return s.update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	})
}

// setState writes one state key in its own transaction.
func (s *store) setState(ctx context.Context, key, value string) error {
	return s.update(ctx, func(tx *sql.Tx) error { return setState(ctx, tx, key, value) })
}
