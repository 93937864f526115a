package pgstore_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/catalogtest"
)

// A post to every target rewrites each target's row on its own page (a
// heap-only update, no index entries), since the table's pages are written
// half full: a START to 20,000 targets spent most of its counters' update
// moving rows to other pages and indexing them again. A few rows may still
// move: the first heartbeat's old versions take room until they are
// pruned (one row a page moved so, where without the setting nearly all
// did). The test runs in a database of its own and waits for the
// transactions older than that heartbeat to end, so that another test's
// transaction cannot hold the pruning back.
func TestTargetRowsUpdatedInPlace(t *testing.T) {
	// A database of its own: a snapshot held by a test running beside it
	// in the same database would keep the first flush's dead row versions
	// on their pages, and the post's new ones would find no room there.
	s, conn := openWithConn(t, catalogtest.PostgresDatabaseURL(t))
	ctx := context.Background()
	const n = 300 // a dozen pages of rows
	if _, err := conn.Exec(ctx, `INSERT INTO targets (uid, name, enlisted_at)
		SELECT 'uid-' || g, 'web-' || lpad(g::text, 5, '0'), 0 FROM generate_series(1, $1) g`, n); err != nil {
		t.Fatal(err)
	}
	pages := func() map[int64]string {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT id, (ctid::text::point)[0]::bigint FROM targets`)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int64]string{}
		for rows.Next() {
			var id, page int64
			if err := rows.Scan(&id, &page); err != nil {
				t.Fatal(err)
			}
			out[id] = fmt.Sprint(page)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	counts, beats := map[int64]int{}, map[int64]catalog.Heartbeat{}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for i := range n {
		counts[int64(i+1)] = 1
		beats[int64(i+1)] = catalog.Heartbeat{At: now, LocalTime: now, TimeZone: "Europe/Amsterdam", PollInterval: 60, Version: "1.0.0", Protocol: 3}
	}
	post := func() {
		t.Helper()
		if err := s.Update(ctx, func(tx catalog.Tx) error {
			_, err := tx.NextSeqs(ctx, counts)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	flush := func() {
		t.Helper()
		if err := s.Update(ctx, func(tx catalog.Tx) error { return tx.FlushHeartbeats(ctx, beats) }); err != nil {
			t.Fatal(err)
		}
	}
	flush() // the first poll fills in the row: it may grow out of its page
	waitForOlderTransactions(t, conn)
	before := pages()
	if len(before) != n {
		t.Fatalf("%d targets, want %d", len(before), n)
	}
	post()
	moved := 0
	for id, page := range pages() {
		if page != before[id] {
			moved++
		}
	}
	if moved > n/10 {
		t.Errorf("%d of %d target rows moved to another page after a post, want a tenth at most", moved, n)
	}
}

// waitForOlderTransactions returns once no transaction that began before
// it still runs anywhere on the server. Until then, the row versions the
// caller's last commit replaced stay on their pages: every snapshot taken
// meanwhile, the caller's own included, reaches back to the oldest
// transaction running in any database. It waits on the server, for the
// other tests' transactions; a few milliseconds in practice.
func waitForOlderTransactions(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	var mark int64
	if err := conn.QueryRow(ctx, `SELECT txid_current()`).Scan(&mark); err != nil {
		t.Fatal(err)
	}
	for tries := 0; ; tries++ {
		var oldest int64
		if err := conn.QueryRow(ctx, `SELECT txid_snapshot_xmin(txid_current_snapshot())`).Scan(&oldest); err != nil {
			t.Fatal(err)
		}
		if oldest > mark {
			return
		}
		if tries == 3000 {
			t.Fatalf("a transaction older than %d still runs on the server after 3,000 looks (30 s)", mark)
		}
		if _, err := conn.Exec(ctx, `SELECT pg_sleep(0.01)`); err != nil {
			t.Fatal(err)
		}
	}
}

// A heartbeat flush, and a pause of several targets, take the targets'
// rows in id order, as a post does, so that none of them deadlocks with
// another over a fleet's rows. Here a transaction holds one target's row;
// the write, of every target, stops there. Taken in id order, it holds
// exactly the rows before it: a third transaction that skips locked rows
// finds only those after it free. The rows are stored in the reverse of
// their ids' order, which a write that took them as it came upon them
// would follow.
func TestTargetRowWritesTakeRowsInIDOrder(t *testing.T) {
	now := time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)
	writes := []struct {
		name    string
		write   func(ctx context.Context, tx catalog.Tx, ids []int64) error
		written string // counts the rows written
	}{
		{"heartbeat flush", func(ctx context.Context, tx catalog.Tx, ids []int64) error {
			beats := map[int64]catalog.Heartbeat{}
			for _, id := range ids {
				beats[id] = catalog.Heartbeat{At: now, LocalTime: now, TimeZone: "UTC", PollInterval: 60, Version: "1.0.0", Protocol: 2}
			}
			return tx.FlushHeartbeats(ctx, beats)
		}, fmt.Sprintf(`SELECT COUNT(*) FROM targets WHERE last_poll_at = %d`, now.UnixMilli())},
		{"pause", func(ctx context.Context, tx catalog.Tx, ids []int64) error {
			return tx.SetPaused(ctx, ids, true)
		}, `SELECT COUNT(*) FROM targets WHERE paused`},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			url := catalogtest.PostgresDatabaseURL(t)
			s, conn := openWithConn(t, url)
			ctx := context.Background()
			const n, held = 60, 30
			// Rows written in the reverse of their ids' order (n down to 1),
			// so that the table's own order, in which a statement may come
			// upon them, is not the ids'.
			if _, err := conn.Exec(ctx, `INSERT INTO targets (id, uid, name, enlisted_at)
				SELECT g, 'uid-' || g, 'web-' || lpad(g::text, 5, '0'), 0 FROM generate_series($1, 1, -1) g`, n); err != nil {
				t.Fatal(err)
			}
			ids := make([]int64, n)
			for i := range ids {
				ids[i] = int64(i + 1)
			}
			hold := catalogtest.LockTargetRow(t, url, ids[held], "FOR UPDATE")

			done := make(chan error, 1)
			go func() {
				done <- s.Update(ctx, func(tx catalog.Tx) error { return w.write(ctx, tx, ids) })
			}()
			got := catalogtest.FreeTargetsOnceBlocked(t, conn, w.name)
			if want := ids[held+1:]; !slices.Equal(got, want) {
				t.Errorf("rows free while the %s waits for row %d: %v, want those after it, %v", w.name, ids[held], got, want)
			}

			if err := hold.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("%s: %v", w.name, err)
			}
			var written int
			if err := conn.QueryRow(ctx, w.written).Scan(&written); err != nil {
				t.Fatal(err)
			}
			if written != n {
				t.Errorf("%d rows written by the %s, want %d", written, w.name, n)
			}
		})
	}
}

// A heartbeat flush, a post's counters and a pause do not wait for a
// target's row that a foreign key being checked holds (FOR KEY SHARE: a job
// applied to the target inserts its job_targets row). Locking it FOR UPDATE
// did, and a job applied to the fleet, which checks its targets' rows in
// name order, deadlocked with flushes that took them in id order.
func TestTargetRowWritesLetForeignKeyChecksThrough(t *testing.T) {
	url := catalogtest.PostgresDatabaseURL(t)
	s, conn := openWithConn(t, url)
	ctx := context.Background()
	var id, second int64
	if err := conn.QueryRow(ctx, `INSERT INTO targets (uid, name, enlisted_at) VALUES ('uid-1', 'web-1', 0) RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, `INSERT INTO targets (uid, name, enlisted_at) VALUES ('uid-2', 'web-2', 0) RETURNING id`).Scan(&second); err != nil {
		t.Fatal(err)
	}
	check := catalogtest.LockTargetRow(t, url, id, "FOR KEY SHARE")
	now := time.Date(2026, 12, 6, 22, 30, 0, 0, time.UTC)
	beat := catalog.Heartbeat{At: now, LocalTime: now, TimeZone: "UTC", PollInterval: 60, Version: "1.0.0", Protocol: 2}
	writes := []struct {
		name string
		fn   func(tx catalog.Tx) error
	}{
		{"heartbeat flush", func(tx catalog.Tx) error {
			return tx.FlushHeartbeats(ctx, map[int64]catalog.Heartbeat{id: beat, second: beat})
		}},
		// Two targets take the statement that locks in id order; one is
		// counted alone.
		{"post's counters, two targets", func(tx catalog.Tx) error {
			_, err := tx.NextSeqs(ctx, map[int64]int{id: 1, second: 1})
			return err
		}},
		{"post's counter, one target", func(tx catalog.Tx) error {
			_, err := tx.NextSeqs(ctx, map[int64]int{id: 1})
			return err
		}},
		{"pause", func(tx catalog.Tx) error { return tx.SetPaused(ctx, []int64{id, second}, true) }},
	}
	for _, w := range writes {
		done := make(chan error, 1)
		go func() { done <- s.Update(ctx, w.fn) }()
		for tries := 0; ; tries++ {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%s: %v", w.name, err)
				}
			default:
				if !catalogtest.LockAwaited(t, conn) {
					if tries == 3000 {
						t.Fatalf("%s neither ended nor waited after 3,000 looks (30 s)", w.name)
					}
					if _, err := conn.Exec(ctx, `SELECT pg_sleep(0.01)`); err != nil {
						t.Fatal(err)
					}
					continue
				}
				check.Rollback(ctx) // let it finish, then fail
				<-done
				t.Fatalf("%s waits for the row a foreign-key check holds", w.name)
			}
			break
		}
	}
}
