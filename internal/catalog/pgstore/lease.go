package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/musterhq/muster"
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
			err = conn.QueryRow(check, `SELECT pg_try_advisory_lock($1)`, s.leaseKey).Scan(&got)
			if err == nil && got {
				holding = true
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
