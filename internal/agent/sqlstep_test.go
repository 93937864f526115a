package agent

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/testdb"
)

// await polls cond until it holds, failing the test if it does not within
// a generous bound.
func await(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A statement whose step is stopped or times out ends on the server too,
// with its connection: PostgreSQL and MariaDB both keep running a
// statement whose client has only gone away. (MariaDB's SLEEP notices a
// closed connection within seconds; BENCHMARK, as real work, does not.)
func TestSQLStatementStoppedEndsOnTheServer(t *testing.T) {
	for _, tc := range []struct {
		name, driver, dsn, sleep, probe, kill string
	}{
		{"postgres", "pgx", testdb.Postgres(t), "SELECT pg_sleep(120) AS %s",
			"SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%%' || $1 || '%%'",
			"SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%%' || $1 || '%%'"},
		{"mysql", "mysql", testdb.MySQL(t), "SELECT BENCHMARK(100000000000, MD5('x')) AS %s",
			"SELECT count(*) FROM information_schema.processlist WHERE id <> CONNECTION_ID() AND info LIKE CONCAT('%%', ?, '%%')",
			"SELECT id FROM information_schema.processlist WHERE id <> CONNECTION_ID() AND info LIKE CONCAT('%%', ?, '%%')"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probe, err := sql.Open(tc.driver, tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer probe.Close()
			marker := fmt.Sprintf("stopped_%d", time.Now().UnixNano())
			defer func() {
				// What a failure left running is not left to burn the
				// server's CPU for hours.
				rows, err := probe.Query(tc.kill, marker)
				if err != nil {
					return
				}
				var ids []int64
				for rows.Next() {
					var id int64
					if rows.Scan(&id) == nil {
						ids = append(ids, id)
					}
				}
				rows.Close()
				for _, id := range ids {
					if tc.name == "mysql" {
						probe.Exec(fmt.Sprintf("KILL %d", id))
					} else {
						probe.Exec("SELECT pg_terminate_backend($1)", id)
					}
				}
			}()
			on := func() (int, error) {
				var n int
				err := probe.QueryRow(tc.probe, marker).Scan(&n)
				return n, err
			}
			conns := newConnections(map[string]Connection{"db": {Driver: tc.name, DSN: tc.dsn}})
			defer conns.close()
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			done := make(chan error, 1)
			go func() {
				_, err := conns.run(ctx, "db", fmt.Sprintf(tc.sleep, marker), nil, &bytes.Buffer{})
				done <- err
			}()
			await(t, "the statement runs on the server", func() (bool, error) {
				n, err := on()
				return n == 1, err
			})
			stop()
			if err := <-done; err == nil {
				t.Fatal("a stopped statement succeeded")
			}
			await(t, "the stopped statement and its connection are gone from the server", func() (bool, error) {
				n, err := on()
				return n == 0, err
			})
		})
	}
}

// A statement that returns rows prints them even after a comment: a
// script's first lines are often one.
func TestSQLRowsAfterALeadingComment(t *testing.T) {
	conns := newConnections(map[string]Connection{
		"postgres": {Driver: "postgres", DSN: testdb.Postgres(t)},
		"mysql":    {Driver: "mysql", DSN: testdb.MySQL(t)},
		"sqlite":   {Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "lite.db")},
	})
	defer conns.close()
	for _, name := range []string{"postgres", "mysql", "sqlite"} {
		for _, text := range []string{
			"-- the nightly report\nSELECT 1 AS a",
			"/* the nightly\n   report */ SELECT 1 AS a",
			"  -- one\n\t/* two */ -- three\n SELECT 1 AS a",
		} {
			var out bytes.Buffer
			outcome, err := conns.run(context.Background(), name, text, nil, &out)
			if err != nil || outcome != "1 row returned" || out.String() != "a\n1\n(1 row returned)\n" {
				t.Errorf("%s %q: outcome %q, err %v, output %q; want the row", name, text, outcome, err, out.String())
			}
		}
	}
}

// Several statements in one step run as each database runs them, as
// docs/jobs.md says: PostgreSQL in one transaction, MariaDB not at all,
// SQLite one after the other, each committed.
func TestSQLScriptsOfSeveralStatements(t *testing.T) {
	conns := newConnections(map[string]Connection{
		"postgres": {Driver: "postgres", DSN: testdb.Postgres(t)},
		"mysql":    {Driver: "mysql", DSN: testdb.MySQL(t)},
		"sqlite":   {Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "lite.db")},
	})
	defer conns.close()
	table := fmt.Sprintf("muster_script_%d", time.Now().UnixNano())
	ctx := context.Background()
	for _, name := range []string{"postgres", "mysql", "sqlite"} {
		if _, err := conns.run(ctx, name, "CREATE TABLE "+table+" (a INT)", nil, io.Discard); err != nil {
			t.Fatal(err)
		}
		defer conns.run(ctx, name, "DROP TABLE "+table, nil, io.Discard)
		_, err := conns.run(ctx, name, "INSERT INTO "+table+" VALUES (1); INSERT INTO no_such_table_here VALUES (2)", nil, io.Discard)
		var out bytes.Buffer
		if _, err := conns.run(ctx, name, "SELECT count(*) AS n FROM "+table, nil, &out); err != nil {
			t.Fatal(err)
		}
		var pgErr *pgconn.PgError
		var myErr *mysql.MySQLError
		switch name {
		case "postgres":
			if !errors.As(err, &pgErr) || pgErr.Code != "42P01" || out.String() != "n\n0\n(1 row returned)\n" {
				t.Errorf("postgres: %v, then %q; want the undefined table, and the whole script rolled back", err, out.String())
			}
		case "mysql":
			if !errors.As(err, &myErr) || myErr.Number != 1064 || out.String() != "n\n0\n(1 row returned)\n" {
				t.Errorf("mysql: %v, then %q; want a syntax error (1064), and nothing run", err, out.String())
			}
		case "sqlite":
			if err == nil || !strings.Contains(err.Error(), "no such table") || out.String() != "n\n1\n(1 row returned)\n" {
				t.Errorf("sqlite: %v, then %q; want no such table, and the first statement done", err, out.String())
			}
		}
	}
	_, err := conns.run(ctx, "postgres", "SELECT $1::text; SELECT 2", []any{"x"}, io.Discard)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42601" {
		t.Errorf("postgres with params: %v, want it refused (42601)", err)
	}
}

// On SQLite a statement that changes no rows (CREATE, DROP, a SELECT run
// as an exec) says 0 rows affected, not the count of whatever statement
// changed rows last on its pooled connection, another job's maybe.
func TestSQLiteCountsOnlyWhatTheStatementChanged(t *testing.T) {
	conns := newConnections(map[string]Connection{"lite": {Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "lite.db")}})
	defer conns.close()
	for _, step := range []struct{ text, want string }{
		{"CREATE TABLE t (a INT)", "0 rows affected"},
		{"INSERT INTO t VALUES (1), (2), (3)", "3 rows affected"},
		{"CREATE INDEX t_a ON t (a)", "0 rows affected"},
		{"UPDATE t SET a = a + 1 WHERE a > 1", "2 rows affected"},
		{"UPDATE t SET a = 0 WHERE a > 100", "0 rows affected"},
		{"DELETE FROM t WHERE a = 1", "1 row affected"},
		{"DROP TABLE t", "0 rows affected"},
	} {
		outcome, err := conns.run(context.Background(), "lite", step.text, nil, io.Discard)
		if err != nil || outcome != step.want {
			t.Errorf("%s: %q, %v; want %q", step.text, outcome, err, step.want)
		}
	}
}

// Each step has a session of its own: a transaction a step leaves open is
// rolled back when it ends, and is not where the next step's statements
// run, uncommitted, holding their locks, whatever job they belong to; what
// a step SETs does not carry over either.
func TestSQLStepLeavesNoSessionToTheNext(t *testing.T) {
	lite := filepath.Join(t.TempDir(), "lite.db")
	conns := newConnections(map[string]Connection{
		"postgres": {Driver: "postgres", DSN: testdb.Postgres(t)},
		"mysql":    {Driver: "mysql", DSN: testdb.MySQL(t)},
		"sqlite":   {Driver: "sqlite", DSN: lite},
	})
	defer conns.close()
	table := fmt.Sprintf("muster_tx_%d", time.Now().UnixNano())
	ctx := context.Background()
	for _, name := range []string{"postgres", "mysql", "sqlite"} {
		if _, err := conns.run(ctx, name, "CREATE TABLE "+table+" (a INT)", nil, io.Discard); err != nil {
			t.Fatal(err)
		}
		defer conns.run(ctx, name, "DROP TABLE "+table, nil, io.Discard)
		begin := "BEGIN; INSERT INTO " + table + " VALUES (1)"
		if name == "mysql" {
			begin = "START TRANSACTION"
		} else if name == "sqlite" {
			begin = "BEGIN"
		}
		if _, err := conns.run(ctx, name, begin, nil, io.Discard); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := conns.run(ctx, name, "INSERT INTO "+table+" VALUES (2)", nil, io.Discard); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Read from a connection of the test's own.
		var probe *sql.DB
		var err error
		switch name {
		case "postgres":
			probe, err = sql.Open("pgx", conns.defs[name].DSN)
		case "mysql":
			probe, err = sql.Open("mysql", conns.defs[name].DSN)
		case "sqlite":
			probe, err = sql.Open("sqlite", lite)
		}
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		rows, err := probe.QueryContext(ctx, "SELECT a FROM "+table+" ORDER BY a")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for rows.Next() {
			var a int
			rows.Scan(&a)
			got = append(got, a)
		}
		rows.Close()
		probe.Close()
		if len(got) != 1 || got[0] != 2 {
			t.Errorf("%s: the table holds %v, want [2]: the next step's INSERT committed on its own", name, got)
		}
	}
	for _, tc := range []struct{ name, set, show, want string }{
		{"postgres", "SET application_name = 'set_by_a_step'", "SHOW application_name", "application_name\n\n(1 row returned)\n"},
		{"mysql", "SET @set_by_a_step = 1", "SELECT @set_by_a_step AS v", "v\nNULL\n(1 row returned)\n"},
	} {
		if _, err := conns.run(ctx, tc.name, tc.set, nil, io.Discard); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var out bytes.Buffer
		if _, err := conns.run(ctx, tc.name, tc.show, nil, &out); err != nil || out.String() != tc.want {
			t.Errorf("%s: %q after %q: %q, %v; want %q", tc.name, tc.show, tc.set, out.String(), err, tc.want)
		}
	}
}

// A connection that cannot be made, or whose DSN cannot be read, fails
// the step with an error that never shows the DSN's password: the step's
// message goes to the master, its history and its API.
func TestSQLConnectionErrorsKeepThePasswordOut(t *testing.T) {
	const secret = "s3cr3tPW"
	conns := newConnections(map[string]Connection{
		"pg-refused":   {Driver: "postgres", DSN: "postgres://muster:" + secret + "@127.0.0.1:1/app?connect_timeout=5"},
		"pg-malformed": {Driver: "postgres", DSN: "postgres://muster:" + secret + "%zz@127.0.0.1/app"},
		"pg-keywords":  {Driver: "postgres", DSN: "host=127.0.0.1 port=nope user=muster password=" + secret},
		"pg-wrong":     {Driver: "postgres", DSN: "postgres://no_such_user_here:" + secret + "@127.0.0.1:5432/test?sslmode=disable"},
		"my-refused":   {Driver: "mysql", DSN: "muster:" + secret + "@tcp(127.0.0.1:1)/app?timeout=5s"},
		"my-malformed": {Driver: "mysql", DSN: "muster:" + secret + "@tcp(127.0.0.1:1/app"},
		"my-wrong":     {Driver: "mysql", DSN: "no_such_user_here:" + secret + "@tcp(127.0.0.1:3306)/test"},
	})
	defer conns.close()
	for name := range conns.defs {
		_, err := conns.run(context.Background(), name, "SELECT 1", nil, io.Discard)
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: %v; want an error without the password", name, err)
		}
	}
}

// A stopped statement ends on a PostgreSQL server even when the cancel
// request the driver sends is lost, as a pooler or proxy in front of the
// server may lose it: here a proxy that passes sessions and drops cancel
// requests.
func TestSQLStatementStoppedEndsBehindAProxyThatDropsCancels(t *testing.T) {
	dsn := testdb.Postgres(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	server := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() { ln.Close(); wg.Wait() }()
	dropped := make(chan struct{}, 8)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer client.Close()
				// A startup message: its length, then its code; a cancel
				// request's code is 80877102.
				head := make([]byte, 8)
				if _, err := io.ReadFull(client, head); err != nil {
					return
				}
				if binary.BigEndian.Uint32(head[4:]) == 80877102 {
					dropped <- struct{}{}
					return
				}
				upstream, err := net.Dial("tcp", server)
				if err != nil {
					return
				}
				defer upstream.Close()
				upstream.Write(head)
				go func() { io.Copy(client, upstream); client.Close() }()
				io.Copy(upstream, client)
			}()
		}
	}()
	u.Host = ln.Addr().String()
	probe, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	marker := fmt.Sprintf("stopped_%d", time.Now().UnixNano())
	defer probe.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%' || $1 || '%'`, marker)
	on := func() (bool, error) {
		var n int
		err := probe.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%' || $1 || '%'`, marker).Scan(&n)
		return n > 0, err
	}
	conns := newConnections(map[string]Connection{"db": {Driver: "postgres", DSN: u.String()}})
	defer conns.close()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() {
		_, err := conns.run(ctx, "db", "SELECT pg_sleep(120) AS "+marker, nil, &bytes.Buffer{})
		done <- err
	}()
	await(t, "the statement runs on the server", on)
	stop()
	if err := <-done; err == nil {
		t.Fatal("a stopped statement succeeded")
	}
	await(t, "the stopped statement and its connection are gone from the server", func() (bool, error) {
		running, err := on()
		return !running, err
	})
	select {
	case <-dropped:
	default:
		t.Error("no cancel request reached the proxy: the test proves nothing")
	}
}

// A database that cannot be reached when a step starts (its server down,
// its file's directory gone) fails the step with a message that names the
// connection, so whoever reads the history knows which of the target's
// connections to look at, and still not its password.
func TestSQLConnectionThatCannotBeMadeIsNamed(t *testing.T) {
	const secret = "s3cr3tPW"
	conns := newConnections(map[string]Connection{
		"warehouse": {Driver: "postgres", DSN: "postgres://muster:" + secret + "@127.0.0.1:1/app?connect_timeout=5"},
		"shop":      {Driver: "mysql", DSN: "muster:" + secret + "@tcp(127.0.0.1:1)/shop?timeout=5s"},
		"local":     {Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "no_such_dir", "app.db")},
	})
	defer conns.close()
	for name := range conns.defs {
		_, err := conns.run(context.Background(), name, "SELECT 1", nil, io.Discard)
		want := fmt.Sprintf("connection %q: cannot connect: ", name)
		if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: %v; want an error starting %q, without the password", name, err, want)
		}
	}
}

// A PostgreSQL error says what psql would: where in the statement it is,
// and the server's DETAIL and HINT (which key a unique violation hit).
func TestSQLPostgresErrorSaysWhereAndWhy(t *testing.T) {
	conns := newConnections(map[string]Connection{"pg": {Driver: "postgres", DSN: testdb.Postgres(t)}})
	defer conns.close()
	ctx := context.Background()
	for _, tc := range []struct{ text, code, want string }{
		{"SELECT 1\n  FROM no_such_table_here", "42P01",
			`ERROR: relation "no_such_table_here" does not exist (SQLSTATE 42P01) at line 2, column 8`},
		{"CREATE TEMP TABLE u (id int PRIMARY KEY); INSERT INTO u VALUES (1); INSERT INTO u VALUES (1)", "23505",
			`ERROR: duplicate key value violates unique constraint "u_pkey" (SQLSTATE 23505); DETAIL: Key (id)=(1) already exists.`},
		{"SELECT 'é' || nosuchfn()", "42883",
			"ERROR: function nosuchfn() does not exist (SQLSTATE 42883) at line 1, column 15; HINT: No function matches the given name and argument types. You might need to add explicit type casts."},
	} {
		_, err := conns.run(ctx, "pg", tc.text, nil, io.Discard)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != tc.code || err.Error() != tc.want {
			t.Errorf("%q: %v; want %s", tc.text, err, tc.want)
		}
	}
}

// A param names a variable of the step's environment; one that is not
// there (a typo, a variable a scheduled run was not started with) fails
// the step, naming it, and runs nothing, instead of binding an empty
// string. A variable set to the empty string binds it.
func TestSQLParamNotInTheEnvironmentFailsTheStep(t *testing.T) {
	lite := filepath.Join(t.TempDir(), "lite.db")
	m := newTestMain(t, func(c *Config) {
		c.Settings.Connections = map[string]Connection{"lite": {Driver: "sqlite", DSN: lite}}
	})
	create := muster.Step{Name: "create", SQL: "CREATE TABLE t (a TEXT, b TEXT)", Connection: "lite"}
	if run := runJob(t, m, flowJob("create", create)); run.Status != muster.RunSucceeded {
		t.Fatalf("create: %s %q", run.Status, run.Message)
	}
	insert := muster.Step{Name: "insert", SQL: "INSERT INTO t VALUES (?, ?)", Connection: "lite",
		Params: []string{"EMPTY", "MUSTER_RUNID"}, Env: map[string]string{"EMPTY": ""}}
	run := runJob(t, m, flowJob("typo", insert))
	want := `params[1]: MUSTER_RUNID is not set in the step's environment`
	if run.Status != muster.RunFailed || len(run.Steps) != 1 || run.Steps[0].Status != muster.AttemptFailed || run.Steps[0].Message != want {
		t.Fatalf("run %s, steps %+v; want the step failed with %q", run.Status, run.Steps, want)
	}
	insert.Params = []string{"EMPTY", "MUSTER_RUN_ID"}
	if run := runJob(t, m, flowJob("right", insert)); run.Status != muster.RunSucceeded {
		t.Fatalf("right: %s %q", run.Status, run.Message)
	}
	var out bytes.Buffer
	if _, err := m.exec.sql.run(context.Background(), "lite", "SELECT a, b FROM t", nil, &out); err != nil || out.String() != "a\tb\n\trun-right\n(1 row returned)\n" {
		t.Errorf("the table holds %q (%v); want only the run that named its params right", out.String(), err)
	}
}

// Rows are printed so that each is one line and each value can be read
// back: a tab, a line break or a backslash in a value is escaped as
// `mysql --batch` does (\t, \n, \r, \\), and binary data (bytea, a BLOB
// or BINARY column, a SQLite blob) is printed in hex as psql does
// (\x00ff) instead of as bytes that are not text.
func TestSQLRowsPrintedFaithfully(t *testing.T) {
	conns := newConnections(map[string]Connection{
		"postgres": {Driver: "postgres", DSN: testdb.Postgres(t)},
		"mysql":    {Driver: "mysql", DSN: testdb.MySQL(t)},
		"sqlite":   {Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "lite.db")},
	})
	defer conns.close()
	const want = "n\tt\tb\tu\tnum\tbt\n" + `NULL` + "\t" + `a\tb\nc\\d\r` + "\t" + `\x00ff0a` + "\t" + "é😀\t42\t" + `\x6869` + "\n(1 row returned)\n"
	for name, text := range map[string]string{
		"postgres": `SELECT NULL AS n, E'a\tb\nc\\d\r' AS t, '\x00ff0a'::bytea AS b, 'é😀' AS u, 42 AS num, %s AS bt`,
		"mysql":    `SELECT NULL AS n, 'a\tb\nc\\d\r' AS t, x'00ff0a' AS b, 'é😀' AS u, 42 AS num, %s AS bt`,
		"sqlite":   `SELECT NULL AS n, 'a' || char(9) || 'b' || char(10) || 'c\d' || char(13) AS t, x'00ff0a' AS b, 'é😀' AS u, 42 AS num, %s AS bt`,
	} {
		// Binary data that happens to be text ("hi") is still binary.
		bt := map[string]string{"postgres": `'hi'::bytea`, "mysql": `CAST('hi' AS BINARY)`, "sqlite": `CAST('hi' AS BLOB)`}[name]
		text = fmt.Sprintf(text, bt)
		var out bytes.Buffer
		if _, err := conns.run(context.Background(), name, text, nil, &out); err != nil || out.String() != want {
			t.Errorf("%s: %q (%v)\nwant %q", name, out.String(), err, want)
		}
	}
}

// A connection lost while its statement runs (the session killed, the
// server restarted) fails the step saying so, and that the statement may
// or may not have taken effect, not with the driver's "invalid
// connection".
func TestSQLConnectionLostMidStatementIsSaid(t *testing.T) {
	dsn := testdb.MySQL(t)
	probe, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	conns := newConnections(map[string]Connection{"shop": {Driver: "mysql", DSN: dsn}})
	defer conns.close()
	marker := fmt.Sprintf("lost_%d", time.Now().UnixNano())
	done := make(chan error, 1)
	go func() {
		_, err := conns.run(context.Background(), "shop", "SELECT SLEEP(60) AS "+marker, nil, io.Discard)
		done <- err
	}()
	var id int64
	await(t, "the statement runs on the server", func() (bool, error) {
		err := probe.QueryRow("SELECT id FROM information_schema.processlist WHERE id <> CONNECTION_ID() AND info LIKE CONCAT('%', ?, '%')", marker).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	})
	if _, err := probe.Exec(fmt.Sprintf("KILL CONNECTION %d", id)); err != nil {
		t.Fatal(err)
	}
	err = <-done
	const want = `connection "shop": lost while the statement ran, which may or may not have taken effect: `
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("%v; want an error starting %q", err, want)
	}
}

// A SQLite step waits for a lock another connection holds (the
// application's, another job's step) up to a minute, as a server's
// statement waits for a row lock, instead of failing at once with
// "database is locked"; a DSN that sets its own busy timeout keeps it.
func TestSQLiteStepWaitsForALock(t *testing.T) {
	dir := t.TempDir()
	conns := newConnections(map[string]Connection{
		"default": {Driver: "sqlite", DSN: filepath.Join(dir, "a.db")},
		"query":   {Driver: "sqlite", DSN: filepath.Join(dir, "b.db") + "?_pragma=foreign_keys(1)"},
		"own":     {Driver: "sqlite", DSN: filepath.Join(dir, "c.db") + "?_pragma=busy_timeout(5)"},
		"alias":   {Driver: "sqlite", DSN: "file:" + filepath.Join(dir, "d.db") + "?_timeout=7"},
	})
	defer conns.close()
	for name, want := range map[string]string{"default": "60000", "query": "60000", "own": "5", "alias": "7"} {
		var out bytes.Buffer
		if _, err := conns.run(context.Background(), name, "PRAGMA busy_timeout", nil, &out); err != nil || out.String() != "timeout\n"+want+"\n(1 row returned)\n" {
			t.Errorf("%s: %q (%v); want a busy timeout of %s ms", name, out.String(), err, want)
		}
	}
}

// Steps running at once on one connection each have a session on the
// server: none waits, its timeout running, for another step's statement
// to end before its own starts.
func TestSQLStepsAtOnceEachRun(t *testing.T) {
	dsn := testdb.Postgres(t)
	probe, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	holder, err := probe.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	const key = 7345011
	if _, err := holder.ExecContext(context.Background(), "SELECT pg_advisory_lock($1)", key); err != nil {
		t.Fatal(err)
	}
	conns := newConnections(map[string]Connection{"warehouse": {Driver: "postgres", DSN: dsn}})
	defer conns.close()
	marker := fmt.Sprintf("at_once_%d", time.Now().UnixNano())
	const steps = 6
	done := make(chan error, steps)
	for range steps {
		go func() {
			_, err := conns.run(context.Background(), "warehouse", fmt.Sprintf("SELECT pg_advisory_lock_shared(%d) AS %s", key, marker), nil, io.Discard)
			done <- err
		}()
	}
	await(t, "every step's statement on the server", func() (bool, error) {
		var n int
		err := probe.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%' || $1 || '%'`, marker).Scan(&n)
		return n == steps, err
	})
	if _, err := holder.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", key); err != nil {
		t.Fatal(err)
	}
	for range steps {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// A quote escaped with a backslash, as MariaDB reads every string and
// PostgreSQL an E'…' one, does not end the string: the RETURNING after it
// is seen, and its rows printed, not run as a statement whose rows are
// dropped and which says "0 rows affected". A # starts a comment in
// MariaDB, where the word after it is not one.
func TestSQLReturningAfterABackslashEscapedQuote(t *testing.T) {
	conns := newConnections(map[string]Connection{
		"postgres": {Driver: "postgres", DSN: testdb.Postgres(t)},
		"mysql":    {Driver: "mysql", DSN: testdb.MySQL(t)},
	})
	defer conns.close()
	table := fmt.Sprintf("muster_escaped_%d", time.Now().UnixNano())
	ctx := context.Background()
	for _, name := range []string{"postgres", "mysql"} {
		if _, err := conns.run(ctx, name, "CREATE TABLE "+table+" (a INT, note VARCHAR(32))", nil, io.Discard); err != nil {
			t.Fatal(err)
		}
		defer conns.run(ctx, name, "DROP TABLE "+table, nil, io.Discard)
	}
	checked := 0
	for _, tc := range []struct{ name, text, want string }{
		{"mysql", "INSERT INTO " + table + " (a, note) VALUES (1, 'it\\'s'), (2, 'x') RETURNING a", "a\n1\n2\n(2 rows returned)\n"},
		{"mysql", "INSERT INTO " + table + " (a, note) VALUES (3, \"say \\\"hi\") RETURNING a", "a\n3\n(1 row returned)\n"},
		{"mysql", "UPDATE " + table + " SET note = 'y' WHERE a = 1 # returning", "1 row affected\n"},
		{"postgres", "INSERT INTO " + table + " (a, note) VALUES (1, E'it\\'s'), (2, 'x') RETURNING a", "a\n1\n2\n(2 rows returned)\n"},
		{"postgres", "INSERT INTO " + table + " (a, note) VALUES (3, 'C:\\') RETURNING a", "a\n3\n(1 row returned)\n"},
	} {
		var out bytes.Buffer
		if _, err := conns.run(ctx, tc.name, tc.text, nil, &out); err != nil || out.String() != tc.want {
			t.Errorf("%s: %q: %q (%v); want %q", tc.name, tc.text, out.String(), err, tc.want)
		}
		checked++
	}
	if checked != 5 {
		t.Fatalf("checked %d statements, want 5", checked)
	}
}

// A statement with a RETURNING clause (PostgreSQL, MariaDB, SQLite)
// prints the rows it returns, as a SELECT does, not only how many rows it
// changed; the word in a string, a quoted name or a comment is not one.
func TestSQLReturningPrintsItsRows(t *testing.T) {
	conns := newConnections(map[string]Connection{
		"postgres": {Driver: "postgres", DSN: testdb.Postgres(t)},
		"mysql":    {Driver: "mysql", DSN: testdb.MySQL(t)},
		"sqlite":   {Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "lite.db")},
	})
	defer conns.close()
	table := fmt.Sprintf("muster_returning_%d", time.Now().UnixNano())
	ctx := context.Background()
	for _, name := range []string{"postgres", "mysql", "sqlite"} {
		if _, err := conns.run(ctx, name, "CREATE TABLE "+table+" (a INT, note VARCHAR(32))", nil, io.Discard); err != nil {
			t.Fatal(err)
		}
		defer conns.run(ctx, name, "DROP TABLE "+table, nil, io.Discard)
		for _, step := range []struct{ text, want string }{
			{"INSERT INTO " + table + " (a) VALUES (7), (8) RETURNING a", "a\n7\n8\n(2 rows returned)\n"},
			{"DELETE FROM " + table + " WHERE a = 8\n  returning a, 'done' AS note", "a\tnote\n8\tdone\n(1 row returned)\n"},
			{"INSERT INTO " + table + " (a, note) VALUES (1, 'x RETURNING y') -- returning", "1 row affected\n"},
			{"UPDATE " + table + " SET note = 'returning' /* returning */ WHERE a = 1", "1 row affected\n"},
		} {
			var out bytes.Buffer
			if _, err := conns.run(ctx, name, step.text, nil, &out); err != nil || out.String() != step.want {
				t.Errorf("%s: %q: %q (%v); want %q", name, step.text, out.String(), err, step.want)
			}
		}
	}
}

func TestHasReturning(t *testing.T) {
	for text, want := range map[string]bool{
		"INSERT INTO t VALUES ($1) RETURNING id":                 true,
		"insert into t values (1) returning *":                   true,
		"UPDATE t SET a = $1 WHERE b = $2 RETURNING a":           true,
		"INSERT INTO t VALUES ('it''s RETURNING')":               false,
		`INSERT INTO "returning" VALUES (1)`:                     false,
		"INSERT INTO `returning` VALUES (1)":                     false,
		"DO $$BEGIN INSERT INTO t VALUES (1) RETURNING a; END$$": false,
		"DO $body$ RETURNING $body$":                             false,
		"INSERT INTO t VALUES ($$x$$) RETURNING a":               true,
		"INSERT INTO t VALUES (1) /* RETURNING */":               false,
		"INSERT INTO t VALUES (1) -- RETURNING":                  false,
		"INSERT INTO t (returning_id) VALUES (1)":                false,
		"INSERT INTO t VALUES (1) -- note\nRETURNING a":          true,
		"INSERT INTO t VALUES ('unterminated RETURNING":          false,
	} {
		if got := hasReturning(text, "postgres"); got != want {
			t.Errorf("hasReturning(%q) = %v, want %v", text, got, want)
		}
	}
}
