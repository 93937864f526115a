package agent

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// A target raises events about itself (a failed instruction, a full spool,
// a skewed clock, an error of the daemon, a failed certificate renewal),
// keeps them in its store and forwards them to its master, retrying with
// backoff while the master is away: SQL Server's event forwarding. The
// master raises run and step events itself, from the runs it receives.
//
// An event is handled when the target deals with it by itself: a
// certificate renewal that failed because the master could not be reached
// is retried until it succeeds (after expiry too, by proof of possession).
// A muster target has no local alerts, so its own recovery is the only
// handling there is. Every other event needs a person and is unhandled.

// Forwarding modes of the events setting.
const (
	ForwardAll       = "all"       // every event at or above the minimum severity
	ForwardUnhandled = "unhandled" // only events the target does not deal with by itself
	ForwardNone      = "none"      // nothing
)

// EventSettings say which of its events a target forwards to its master.
type EventSettings struct {
	// Forward is all, unhandled (the default) or none.
	Forward string `yaml:"forward"`
	// MinSeverity forwards only events at or above it, 1 (info, the
	// default) to 4 (critical).
	MinSeverity muster.Severity `yaml:"min_severity"`
}

// DefaultEventSettings returns the event settings used when the file sets
// none.
func DefaultEventSettings() EventSettings {
	return EventSettings{Forward: ForwardUnhandled, MinSeverity: muster.SeverityInfo}
}

func (s EventSettings) validate() error {
	switch s.Forward {
	case "", ForwardAll, ForwardUnhandled, ForwardNone:
	default:
		return muster.Errorf(muster.EINVALID, "events: forward: %q is not all, unhandled or none", s.Forward)
	}
	if s.MinSeverity != 0 && !s.MinSeverity.Valid() {
		return muster.Errorf(muster.EINVALID, "events: min_severity: 1 (info) to 4 (critical), not %d", s.MinSeverity)
	}
	return nil
}

// withDefaults fills in what the settings leave unset.
func (s EventSettings) withDefaults() EventSettings {
	def := DefaultEventSettings()
	if s.Forward == "" {
		s.Forward = def.Forward
	}
	if s.MinSeverity == 0 {
		s.MinSeverity = def.MinSeverity
	}
	return s
}

// Bounds of the local events: how many are kept (the oldest go first),
// queued before they are stored, and sent in one forward.
const (
	maxLocalEvents  = 10000
	maxQueuedEvents = 1000
	eventBatch      = 500
)

// localEvent is an event as a target raises it.
type localEvent struct {
	name    muster.EventName
	job     string
	runID   string
	message string
	at      time.Time
	handled bool
}

// insertEvent stores e in tx, under the current enlistment.
func insertEvent(ctx context.Context, tx *sql.Tx, e localEvent) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO events (enlistment, name, severity, job, run_id, message, at, handled)
		VALUES (COALESCE((SELECT value FROM state WHERE key = ?), ''), ?, ?, ?, ?, ?, ?, ?)`,
		keyUID, string(e.name), int(e.name.Severity()), e.job, e.runID, muster.TruncateMessage(e.message), e.at.UnixMilli(), e.handled)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?`, maxLocalEvents)
	return err
}

// events holds what the forwarder needs besides the store: events raised
// where the store cannot be written (inside a log call), a wake-up, and
// what has been raised already for conditions that last.
type events struct {
	now  func() time.Time
	wake chan struct{}

	mu      sync.Mutex
	queued  []localEvent
	renewal int // raised in the current streak of renewal failures: 0 none, 1 handled, 2 unhandled
	// inTimeAt is when the clock last measured in time after a poll reply
	// showed it off.
	inTimeAt time.Time

	skewed atomic.Bool
}

func newEvents(now func() time.Time) *events {
	return &events{now: now, wake: make(chan struct{}, 1)}
}

// signal wakes the forwarder.
func (q *events) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// queue keeps e for the forwarder to store; beyond maxQueuedEvents it is
// dropped (an error storm must not eat the memory).
func (q *events) queue(e localEvent) {
	q.mu.Lock()
	if len(q.queued) < maxQueuedEvents {
		q.queued = append(q.queued, e)
	}
	q.mu.Unlock()
	q.signal()
}

func (q *events) take() []localEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.queued
	q.queued = nil
	return out
}

// logger returns log with every record at error level also raised as
// agent_error: the errors the daemon logs at the top of its loops.
func (q *events) logger(log *slog.Logger) *slog.Logger {
	return slog.New(&errorEvents{next: log.Handler(), q: q})
}

// errorEvents is a slog.Handler that passes records on, and queues an
// agent_error event for each at error level.
type errorEvents struct {
	next  slog.Handler
	q     *events
	attrs []slog.Attr
}

func (h *errorEvents) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || h.next.Enabled(ctx, l)
}

func (h *errorEvents) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		e := localEvent{name: muster.EventAgentError, at: h.q.now()}
		var b strings.Builder
		b.WriteString(r.Message)
		add := func(a slog.Attr) bool {
			switch a.Key {
			case muster.LogJob:
				e.job = a.Value.String()
			case muster.LogRunID:
				e.runID = a.Value.String()
			default:
				fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			}
			return true
		}
		for _, a := range h.attrs {
			add(a)
		}
		r.Attrs(add)
		e.message = b.String()
		h.q.queue(e)
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *errorEvents) WithAttrs(as []slog.Attr) slog.Handler {
	return &errorEvents{next: h.next.WithAttrs(as), q: h.q, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *errorEvents) WithGroup(name string) slog.Handler {
	return &errorEvents{next: h.next.WithGroup(name), q: h.q, attrs: h.attrs}
}

// raise stores an event raised outside any transaction and wakes the
// forwarder.
func (m *Main) raise(ctx context.Context, e localEvent) {
	err := m.store.update(ctx, func(tx *sql.Tx) error { return insertEvent(ctx, tx, e) })
	if err != nil {
		m.log.Warn("an event could not be stored", "event", e.name, muster.LogErr, err)
		return
	}
	m.events.signal()
}

// instructionFailed raises instruction_failed in the transaction that
// records the failed instruction's ack.
func (m *Main) instructionFailed(ctx context.Context, tx *sql.Tx, in agentproto.Instruction, applyErr error) error {
	err := insertEvent(ctx, tx, localEvent{
		name: muster.EventInstructionFailed, job: in.Job, at: m.cfg.Now(),
		message: fmt.Sprintf("instruction %d (%s) could not be applied: %v", in.Seq, in.Operation, applyErr),
	})
	m.events.signal() // the forwarder reads through the writer, so it sees this only after the commit
	return err
}

// spoolFull raises spool_full in the transaction that dropped runs. It
// happened when the newest run was recorded.
func spoolFull(ctx context.Context, tx *sql.Tx, dropped int64, limit int) error {
	var at int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(started_at), 0) FROM runs`).Scan(&at); err != nil {
		return err
	}
	return insertEvent(ctx, tx, localEvent{
		name: muster.EventSpoolFull, at: time.UnixMilli(at),
		message: fmt.Sprintf("the spool is full (spool_limit %d): dropped the %d oldest runs the master has not received", limit, dropped),
	})
}

// skewRecheck is how long a clock that a poll reply showed off, but that
// measured in time, is taken as in time before a poll reply makes it
// measured again.
const skewRecheck = 10 * time.Minute

// skewMeasureTimeout bounds the round trips that measure a clock a poll
// reply showed off.
const skewMeasureTimeout = 10 * time.Second

// checkClockSkew measures the target's clock against the master's time in
// a poll reply: roughly, the network delay included, and a reply read late
// (a target frozen while it waited, a slow network) looks like a clock
// ahead. So a reply that shows the clock off has it measured as SYNC-TIME
// does, by round trips, before clock_skew is raised; one that was late
// raises nothing.
func (m *Main) checkClockSkew(ctx context.Context, serverTime time.Time) {
	if serverTime.IsZero() {
		return
	}
	offset := m.cfg.Now().Sub(serverTime)
	if offset.Abs() <= m.cfg.Settings.ClockSkewThreshold.Std() || m.events.skewed.Load() {
		m.clockMeasured(ctx, offset, "at a poll, network delay included")
		return
	}
	m.events.mu.Lock()
	recent := !m.events.inTimeAt.IsZero() && m.cfg.Now().Sub(m.events.inTimeAt).Abs() < skewRecheck
	m.events.mu.Unlock()
	if recent {
		return
	}
	// Bounded: the poll's instructions wait for it.
	mctx, cancel := context.WithTimeout(ctx, skewMeasureTimeout)
	precise, err := m.measureOffset(mctx)
	cancel()
	if err != nil {
		return // the next poll tells again
	}
	if precise.Abs() <= m.cfg.Settings.ClockSkewThreshold.Std() {
		m.events.mu.Lock()
		m.events.inTimeAt = m.cfg.Now()
		m.events.mu.Unlock()
	}
	m.clockMeasured(ctx, precise, "by round trips after a poll reply showed it")
}

// clockMeasured raises clock_skew when an offset from the master's clock is
// above clock_skew_threshold: once, until a measurement finds the clock
// back within it.
func (m *Main) clockMeasured(ctx context.Context, offset time.Duration, how string) {
	limit := m.cfg.Settings.ClockSkewThreshold.Std()
	if offset.Abs() <= limit {
		m.events.skewed.Store(false)
		return
	}
	if m.events.skewed.Swap(true) {
		return
	}
	way := "ahead of"
	if offset < 0 {
		way = "behind"
	}
	m.raise(ctx, localEvent{name: muster.EventClockSkew, at: m.cfg.Now(),
		message: fmt.Sprintf("the target's clock is %s %s the master's, measured %s (clock_skew_threshold %s)",
			offset.Abs().Round(time.Millisecond), way, how, limit)})
}

// renewalFailed raises cert_renewal_failed for the first failure of a
// streak, and again if a streak that began with the master unreachable
// (handled: the target retries) turns into a refusal (unhandled).
func (m *Main) renewalFailed(ctx context.Context, failures int, err error) {
	handled := muster.ErrorCode(err) == muster.EUNAVAILABLE
	m.events.mu.Lock()
	if failures <= 1 {
		m.events.renewal = 0
	}
	raise := m.events.renewal == 0 || (m.events.renewal == 1 && !handled)
	if raise {
		m.events.renewal = 1
		if !handled {
			m.events.renewal = 2
		}
	}
	m.events.mu.Unlock()
	if !raise {
		return
	}
	notAfter := m.client.cert.Load().Leaf.NotAfter
	m.raise(ctx, localEvent{name: muster.EventCertRenewalFailed, at: m.cfg.Now(), handled: handled,
		message: fmt.Sprintf("certificate renewal failed: %v; the certificate expires at %s", err, notAfter.UTC().Format(time.RFC3339))})
}

// eventLoop forwards events to the master as they are raised, retrying
// with capped backoff while the master is unreachable. On its way out it
// stores what is still queued, for the next start to send.
func (m *Main) eventLoop(ctx context.Context) {
	m.retryLoop(ctx, m.events.wake, "event forward failed; the events stay in the store", "event forwarding works again", m.forwardEvents)
	if err := m.storeQueued(context.WithoutCancel(ctx)); err != nil {
		m.log.Warn("queued events could not be stored", muster.LogErr, err)
	}
}

// storeQueued stores the events raised inside log calls.
func (m *Main) storeQueued(ctx context.Context) error {
	queued := m.events.take()
	if len(queued) == 0 {
		return nil
	}
	err := m.store.update(ctx, func(tx *sql.Tx) error {
		for _, e := range queued {
			if err := insertEvent(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		m.events.mu.Lock()
		m.events.queued = append(queued, m.events.queued...)
		m.events.mu.Unlock()
	}
	return err
}

// forwardEvents drops the events the settings do not forward and sends the
// rest, oldest first, forgetting each once the master has answered for it.
// Events are read through the store's writer, so an event raised inside a
// transaction that has not committed yet is seen once it has.
func (m *Main) forwardEvents(ctx context.Context) error {
	if err := m.storeQueued(ctx); err != nil {
		return err
	}
	var waiting bool
	if err := m.store.write.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM events)`).Scan(&waiting); err != nil || !waiting {
		return err // a wake-up may find nothing, and then writes nothing
	}
	s := m.cfg.Settings.Events.withDefaults()
	if err := m.store.exec(ctx, `DELETE FROM events WHERE enlistment <> ? OR severity < ? OR (? AND handled) OR ?`,
		m.enl.UID, int(s.MinSeverity), s.Forward == ForwardUnhandled, s.Forward == ForwardNone); err != nil {
		return err
	}
	for {
		evs, err := m.store.unsentEvents(ctx)
		if err != nil || len(evs) == 0 {
			return err
		}
		var resp agentproto.EventsResponse
		if err := m.client.call(ctx, http.MethodPost, agentproto.PathEvents, nil, agentproto.EventsRequest{Events: evs}, &resp); err != nil {
			return err
		}
		if len(resp.Results) != len(evs) {
			return fmt.Errorf("the master answered %d results for %d events", len(resp.Results), len(evs))
		}
		for _, r := range resp.Results {
			if !r.OK {
				m.log.Warn("the master refused an event", "id", r.ID, muster.LogErr, r.Error)
			}
		}
		if err := m.store.exec(ctx, `DELETE FROM events WHERE id <= ?`, evs[len(evs)-1].ID); err != nil {
			return err
		}
		if len(evs) < eventBatch {
			return nil
		}
	}
}

// unsentEvents returns the oldest stored events, as they are forwarded.
func (s *store) unsentEvents(ctx context.Context) ([]agentproto.Event, error) {
	rows, err := s.write.QueryContext(ctx, `SELECT id, name, severity, job, run_id, message, at FROM events ORDER BY id LIMIT ?`, eventBatch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []agentproto.Event
	for rows.Next() {
		var e agentproto.Event
		var at int64
		if err := rows.Scan(&e.ID, &e.Name, &e.Severity, &e.Job, &e.RunID, &e.Message, &at); err != nil {
			return nil, err
		}
		e.At = time.UnixMilli(at).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// PendingEvents returns how many events wait to be forwarded.
func (m *Main) PendingEvents(ctx context.Context) (int, error) {
	var n int
	err := m.store.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM events`).Scan(&n)
	return n, err
}
