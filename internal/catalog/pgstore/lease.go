package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// Lead competes for the catalog's singleton duties until ctx ends: the
// master that holds a session-level advisory lock, on a connection of its
// own, has them. The holder checks its connection every LeaseInterval and
// gives the duties up when the check fails. A holder that dies, freezes or
// is cut off loses the lock with its session: the server ends a session
// idle for three intervals (idle_session_timeout) or whose peer stops
// answering keep-alives, and another master takes the lock at its next
// try, within about three intervals more.
func (s *Store) Lead(ctx context.Context, held func(bool)) {
	every := s.opts.LeaseInterval
	for ctx.Err() == nil {
		if err := s.lead(ctx, held); err != nil && ctx.Err() == nil {
			s.log.Warn("competing for the singleton duties failed; trying again", muster.LogErr, err, muster.LogRetryIn, every)
		}
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
}

// lead runs one lease connection: it tries for the lock until it gets it,
// then holds it while the connection answers.
func (s *Store) lead(ctx context.Context, held func(bool)) (err error) {
	every := s.opts.LeaseInterval
	conn, err := pgx.ConnectConfig(ctx, s.conn)
	if err != nil {
		return classify(err)
	}
	holding := false
	defer func() {
		if holding {
			s.holder.Store(nil)
			held(false)
		}
		conn.Close(context.WithoutCancel(ctx))
	}()
	// The server ends this session, and its lock, when it goes quiet
	// (idle_session_timeout is PostgreSQL 14's; before it, keep-alives
	// alone find a dead holder).
	secs := max(int(every.Seconds()), 1)
	if _, err := conn.Exec(ctx, fmt.Sprintf(`SET tcp_keepalives_idle = %d; SET tcp_keepalives_interval = %d; SET tcp_keepalives_count = 3`,
		secs, secs)); err != nil {
		return classify(err)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(`SET idle_session_timeout = %d`, (3*every).Milliseconds())); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42704" {
			return classify(err)
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		check, cancel := context.WithTimeout(ctx, every)
		if holding {
			var one int
			err = conn.QueryRow(check, `SELECT 1`).Scan(&one)
		} else {
			var got bool
			var me leaseSession
			err = conn.QueryRow(check, `SELECT pg_try_advisory_lock($1), pid, backend_start FROM pg_stat_activity
				WHERE pid = pg_backend_pid()`, s.leaseKey).Scan(&got, &me.pid, &me.start)
			if err == nil && got {
				holding = true
				s.holder.Store(&me)
				held(true)
			}
		}
		cancel()
		if err != nil {
			return classify(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// leaseSession names the session holding the lease: a backend's pid, and
// when it started, since a pid is used again after its backend ends.
type leaseSession struct {
	pid   int32
	start time.Time
}

// HoldsDuties asks the database whether this store's lease session holds
// the advisory lock of the singleton duties now. The lease's own
// connection cannot say: a master frozen past idle_session_timeout, then
// resumed, finds out only when it next uses it, and its duties may act
// before that. The question goes on a pool connection, to the server's
// table of locks.
func (s *Store) HoldsDuties(ctx context.Context) error {
	me := s.holder.Load()
	if me == nil {
		return catalog.ErrNotLeader
	}
	var holds bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.pid = $1 AND a.backend_start = $2
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND l.classid::bigint = $3 AND l.objid::bigint = $4 AND l.objsubid = 1)`,
		me.pid, me.start, int64(uint64(s.leaseKey)>>32), int64(uint32(s.leaseKey))).Scan(&holds)
	if err != nil {
		return classify(err)
	}
	if !holds {
		return catalog.ErrNotLeader
	}
	return nil
}
