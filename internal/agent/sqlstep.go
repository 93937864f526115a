package agent

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql" // registers "mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"github.com/musterhq/muster"
)

// sqlDriver is the database/sql driver behind a connection driver a
// target's settings may name; ok is false for a name that is not one.
func sqlDriver(name string) (driver string, ok bool) {
	switch name {
	case "postgres":
		return "pgx", true
	case "mysql", "sqlite":
		return name, true
	}
	return "", false
}

// checkDSN parses a connection's DSN as its driver will. Neither parser
// puts the password in its errors: pgx masks it, the MySQL driver names
// only what it could not read. A SQLite DSN (which holds no password)
// names its file by an absolute path.
func checkDSN(c Connection) error {
	var err error
	switch c.Driver {
	case "postgres":
		_, err = pgx.ParseConfig(c.DSN)
	case "mysql":
		_, err = mysql.ParseDSN(c.DSN)
	case "sqlite":
		// A relative path would be read from the daemon's working
		// directory (/ under systemd), where SQLite creates an empty
		// database, silently, for the steps to run against.
		path, _, _ := strings.Cut(c.DSN, "?")
		if rest, ok := strings.CutPrefix(path, "file:"); ok {
			path = rest
			if rest, ok := strings.CutPrefix(path, "//"); ok {
				path = strings.TrimPrefix(rest, "localhost")
			}
		}
		if path != ":memory:" && !strings.HasPrefix(path, "/") {
			err = fmt.Errorf("%q is not an absolute path: a SQLite database is a file named from the root, such as /var/lib/app/app.db", c.DSN)
		}
	}
	return err
}

// connections holds one pool per named connection, opened on first use,
// that keeps no idle connection: each step has a session of its own. The
// DSNs (and their secrets) are in the target's settings only.
type connections struct {
	defs  map[string]Connection
	mu    sync.Mutex
	pools map[string]*sql.DB
}

func newConnections(defs map[string]Connection) *connections {
	return &connections{defs: defs, pools: map[string]*sql.DB{}}
}

func (c *connections) get(name string) (*sql.DB, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if db, ok := c.pools[name]; ok {
		return db, nil
	}
	def, ok := c.defs[name]
	if !ok {
		return nil, fmt.Errorf("connection %q not found on this target", name)
	}
	driver, _ := sqlDriver(def.Driver) // the settings were checked when loaded
	dsn := def.DSN
	if def.Driver == "sqlite" {
		dsn = sqliteDSN(dsn)
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("connection %q: %v", name, err)
	}
	// No cap on open connections: a step waiting for another's to end
	// would show running, its timeout counting, while nothing of it ran;
	// max_concurrent_runs bounds steps at once. No connection outlives its step: a transaction a step leaves open
	// is rolled back as its connection closes, and nothing it SET (a
	// search_path, a role, a user variable, an isolation level) reaches
	// another step, maybe another job's.
	db.SetMaxIdleConns(0)
	c.pools[name] = db
	return db, nil
}

// sqliteBusyTimeout is how long a SQLite step waits for a lock another
// connection holds (the application's, another step's) before it fails
// with "database is locked", as a server's statement waits for a row
// lock; the step's timeout or a STOP ends the wait sooner.
const sqliteBusyTimeout = time.Minute

// sqliteDSN is dsn with the busy timeout, unless it sets one itself
// (_busy_timeout or _timeout; a _pragma=busy_timeout is applied after
// the driver's keys, and wins).
func sqliteDSN(dsn string) string {
	_, query, _ := strings.Cut(dsn, "?")
	if q, err := url.ParseQuery(query); err == nil && (q.Has("_busy_timeout") || q.Has("_timeout")) {
		return dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%s_busy_timeout=%d", dsn, sep, sqliteBusyTimeout.Milliseconds())
}

func (c *connections) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, db := range c.pools {
		db.Close()
		delete(c.pools, name)
	}
}

// run runs one statement against the named connection, writing its rows
// or its count to out; see execSQL. When ctx ends first the statement ends
// on the server too, with its connection.
func (c *connections) run(ctx context.Context, name, text string, args []any, out io.Writer) (string, error) {
	db, err := c.get(name)
	if err != nil {
		return "", err
	}
	// A connection that cannot be made (its server down, its file's
	// directory gone, its password refused) is named: the driver's error
	// says which address or file, not which of the target's connections.
	// Neither driver puts the password in it.
	conn, err := db.Conn(ctx)
	if err != nil {
		return "", fmt.Errorf("connection %q: cannot connect: %w", name, err)
	}
	defer conn.Close()
	server := c.defs[name].Driver
	if server != "mysql" && server != "postgres" {
		// SQLite is interrupted. Its driver returns only blobs as []byte.
		return execSQL(ctx, conn, text, args, out, server)
	}
	// MySQL and MariaDB keep running a statement whose client has closed
	// its connection, until it ends by itself, and so does PostgreSQL
	// (unless client_connection_check_interval is set). pgx sends a cancel
	// request as it closes the connection, but on its own, from a
	// goroutine, best effort: one lost (the server or a pooler in front of
	// it did not take it in time) left the statement running. So the
	// target ends the connection on the server itself, statement and
	// session, from a connection of its own (the pool's may all be taken
	// by statements being stopped).
	var session uint64
	if err := conn.QueryRowContext(ctx, sessionQuery[server]).Scan(&session); err != nil {
		return "", fmt.Errorf("connection %q: %w", name, err)
	}
	outcome, err := execSQL(ctx, conn, text, args, out, server)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		err = postgresError{pgErr, text}
	case ctx.Err() == nil && lostConnection(err):
		// The driver's words ("invalid connection", "unexpected EOF") do
		// not say that the statement was sent, maybe committed.
		err = fmt.Errorf("connection %q: lost while the statement ran, which may or may not have taken effect: %w", name, err)
	}
	if ctx.Err() != nil {
		c.kill(name, session)
		// The killed connection must not go back to the pool.
		conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	return outcome, err
}

// lostConnection says err is a connection lost under a statement, as the
// drivers report it: the MySQL driver's ErrInvalidConn, a stream cut short.
func lostConnection(err error) bool {
	return errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF)
}

// postgresError is a PostgreSQL error as psql shows it: pgx's message
// and SQLSTATE, then where in the statement it is, and the server's DETAIL
// (which key a unique violation hit) and HINT.
type postgresError struct {
	*pgconn.PgError
	text string // the statement, which Position counts characters of
}

func (e postgresError) Unwrap() error { return e.PgError }

func (e postgresError) Error() string {
	var b strings.Builder
	b.WriteString(e.PgError.Error())
	if e.Position > 0 {
		line, column := 1, 1
		for i, r := range []rune(e.text) {
			if i == int(e.Position)-1 {
				break
			}
			if r == '\n' {
				line, column = line+1, 1
			} else {
				column++
			}
		}
		fmt.Fprintf(&b, " at line %d, column %d", line, column)
	}
	if e.Detail != "" {
		b.WriteString("; DETAIL: " + e.Detail)
	}
	if e.Hint != "" {
		b.WriteString("; HINT: " + e.Hint)
	}
	return b.String()
}

// sessionQuery and killStatement read a connection's session on the
// server, and end it there, by server.
var (
	sessionQuery  = map[string]string{"mysql": "SELECT CONNECTION_ID()", "postgres": "SELECT pg_backend_pid()"}
	killStatement = map[string]string{"mysql": "KILL CONNECTION %d", "postgres": "SELECT pg_terminate_backend(%d)"}
)

// killTimeout bounds the kill of a stopped statement: a server that does
// not answer does not hold the step.
const killTimeout = 10 * time.Second

// kill ends a connection's session, and the statement it runs, on the
// server: a MySQL or MariaDB thread, a PostgreSQL backend (which the same
// role may end). It is best effort: a session already gone is not an
// error worth reporting, and an unreachable server kept nothing.
func (c *connections) kill(name string, session uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	defer cancel()
	def := c.defs[name]
	drv, _ := sqlDriver(def.Driver)
	db, err := sql.Open(drv, def.DSN)
	if err != nil {
		return
	}
	defer db.Close()
	db.ExecContext(ctx, fmt.Sprintf(killStatement[def.Driver], session))
}

// queryWords start statements that return rows (as does one with a
// RETURNING clause: see hasReturning).
var queryWords = []string{"SELECT", "WITH", "SHOW", "VALUES", "EXPLAIN", "PRAGMA", "TABLE", "DESCRIBE", "DESC"}

// runSQL runs a SQL step against its connection, binding the variables
// named by params (never substituting anything into the text). A statement
// that returns rows prints them, tab-separated under a header line; any
// other prints how many rows it affected. ctx cancels the statement.
func (e *executor) runSQL(ctx context.Context, ar *activeRun, run *muster.Run, step muster.Step, env map[string]string, attempt muster.StepAttempt) muster.StepAttempt {
	args := make([]any, len(step.Params))
	for i, p := range step.Params {
		v, ok := env[p]
		if !ok {
			// A typo, or a variable this run was not started with: an
			// empty string bound in its place would be written, or
			// matched, as if it were the value.
			attempt.Status = muster.AttemptFailed
			attempt.Message = fmt.Sprintf("params[%d]: %s is not set in the step's environment", i, p)
			return attempt
		}
		args[i] = v
	}
	out := e.outputFor(ar)
	run.Steps[len(run.Steps)-1] = attempt
	// As for a process (see startSaveDelay), the attempt's start is saved
	// only if the statement is still running after the delay.
	type result struct {
		outcome string
		err     error
	}
	ended := make(chan result, 1)
	go func() {
		outcome, err := e.sql.run(ctx, step.Connection, step.SQL, args, out)
		ended <- result{outcome, err}
	}()
	started := time.NewTimer(e.startSaveDelay)
	var res result
	select {
	case res = <-ended:
		started.Stop()
	case <-started.C:
		e.save(ar, run)
		res = <-ended
	}
	outcome, err := res.outcome, res.err
	ar.keep(run, out.final())
	switch {
	case err == nil:
		// A statement has no exit code: its outcome in words stands for it.
		// It succeeded even when its time ran out as it ended: what it
		// committed is recorded as done, so that nobody runs it again.
		attempt.Status, attempt.Message = muster.AttemptSucceeded, outcome
	case ctx.Err() != nil:
		// runAttempt records timed_out or canceled from the cause.
	default:
		attempt.Status, attempt.Message = muster.AttemptFailed, err.Error()
	}
	return attempt
}

// rows says how many rows, "1 row" or "42 rows", and what happened to them.
func rows(n int64, what string) string {
	if n == 1 {
		return "1 row " + what
	}
	return fmt.Sprintf("%d rows %s", n, what)
}

// queryer is a pool (*sql.DB) or one of its connections (*sql.Conn).
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// execSQL runs one statement, writes its rows or its count to out, and
// returns its outcome in words: "3 rows returned", "42 rows affected".
// server is the connection's driver (postgres, mysql or sqlite): how its
// strings are written, and whether every []byte value it returns is
// binary data (SQLite's), not text.
func execSQL(ctx context.Context, db queryer, text string, args []any, out io.Writer, server string) (string, error) {
	first := strings.ToUpper(statementStart(text))
	returnsRows, bytesAreBinary := hasReturning(text, server), server == "sqlite"
	for _, w := range queryWords {
		if strings.HasPrefix(first, w) && (len(first) == len(w) || !isWordChar(first[len(w)])) {
			returnsRows = true
		}
	}
	if !returnsRows {
		res, err := db.ExecContext(ctx, text, args...)
		if err != nil {
			return "", err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return "done", nil // the driver does not count
		}
		outcome := rows(n, "affected")
		fmt.Fprintln(out, outcome)
		return outcome, nil
	}
	result, err := db.QueryContext(ctx, text, args...)
	if err != nil {
		return "", err
	}
	defer result.Close()
	types, err := result.ColumnTypes()
	if err != nil {
		return "", err
	}
	cells := make([]string, len(types))
	binary := make([]bool, len(types))
	for i, ct := range types {
		cells[i] = escapeCell(ct.Name())
		binary[i] = bytesAreBinary || binaryTypes[ct.DatabaseTypeName()]
	}
	fmt.Fprintln(out, strings.Join(cells, "\t"))
	values := make([]any, len(types))
	ptrs := make([]any, len(types))
	for i := range values {
		ptrs[i] = &values[i]
	}
	var n int64
	for result.Next() {
		if err := result.Scan(ptrs...); err != nil {
			return "", err
		}
		for i, v := range values {
			cells[i], err = cell(v, binary[i])
			if err != nil {
				return "", err
			}
		}
		fmt.Fprintln(out, strings.Join(cells, "\t"))
		n++
	}
	if err := result.Err(); err != nil {
		return "", err
	}
	outcome := rows(n, "returned")
	fmt.Fprintf(out, "(%s)\n", outcome)
	return outcome, nil
}

// binaryTypes are the column types, as the drivers name them, whose values
// are bytes rather than text: PostgreSQL's bytea, MySQL's binary strings.
// (SQLite's driver returns a blob as []byte, whatever its column's
// declared type, and text as a string.)
var binaryTypes = map[string]bool{
	"BYTEA": true, "BINARY": true, "VARBINARY": true,
	"TINYBLOB": true, "BLOB": true, "MEDIUMBLOB": true, "LONGBLOB": true,
}

// cell is one value as a row prints it: NULL, bytes in hex as psql prints
// them (\x00ff) when they are binary, and any other value as text, with
// the characters that would end it (a tab, a line break) escaped as
// mysql --batch does.
func cell(v any, binary bool) (string, error) {
	switch v := v.(type) {
	case nil:
		return "NULL", nil
	case []byte:
		// The MySQL driver returns text as []byte too.
		if binary || !utf8.Valid(v) {
			return `\x` + hex.EncodeToString(v), nil
		}
		return escapeCell(string(v)), nil
	case string:
		return escapeCell(v), nil
	}
	var s sql.NullString // as database/sql converts numbers, times, booleans
	if err := s.Scan(v); err != nil {
		return "", err
	}
	return escapeCell(s.String), nil
}

var cellEscaper = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`)

func escapeCell(s string) string { return cellEscaper.Replace(s) }

// statementStart is text from its first word: past blanks, opening
// parentheses and comments (-- and # to the end of the line, /* to */).
func statementStart(text string) string {
	for {
		text = strings.TrimLeft(text, " \t\r\n\f(")
		switch {
		case strings.HasPrefix(text, "--"), strings.HasPrefix(text, "#"):
			_, rest, ok := strings.Cut(text, "\n")
			if !ok {
				return ""
			}
			text = rest
		case strings.HasPrefix(text, "/*"):
			_, rest, ok := strings.Cut(text[2:], "*/")
			if !ok {
				return ""
			}
			text = rest
		default:
			return text
		}
	}
}

// hasReturning says text has a RETURNING clause (PostgreSQL, MariaDB and
// SQLite return rows from an INSERT, UPDATE or DELETE so): the word
// outside strings, quoted names and comments, as server (the connection's
// driver) reads them. MariaDB escapes a quote in a string with a
// backslash, and starts a comment with # too; PostgreSQL escapes with a
// backslash in an E'…' string only.
func hasReturning(text, server string) bool {
	const word = "RETURNING"
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case strings.HasPrefix(text[i:], "--"):
			end := strings.IndexByte(text[i:], '\n')
			if end < 0 {
				return false
			}
			i += end + 1
		case strings.HasPrefix(text[i:], "/*"):
			end := strings.Index(text[i+2:], "*/")
			if end < 0 {
				return false
			}
			i += 2 + end + 2
		case server == "mysql" && c == '#':
			end := strings.IndexByte(text[i:], '\n')
			if end < 0 {
				return false
			}
			i += end + 1
		case c == '\'' || c == '"' || c == '`':
			// A doubled quote inside is two strings back to back.
			escapes := server == "mysql" && c != '`' || server == "postgres" && c == '\'' && escapeString(text, i)
			end := quoteEnd(text[i+1:], c, escapes)
			if end < 0 {
				return false
			}
			i += 1 + end + 1
		case c == '$' && (i == 0 || !isWordChar(upper(text[i-1]))):
			// A PostgreSQL dollar quote, $$…$$ or $tag$…$tag$ (not a
			// $1 placeholder).
			tag := dollarTag(text[i:])
			if tag == "" {
				i++
				continue
			}
			end := strings.Index(text[i+len(tag):], tag)
			if end < 0 {
				return false
			}
			i += len(tag) + end + len(tag)
		case isWordChar(upper(c)):
			j := i
			for j < len(text) && (isWordChar(upper(text[j])) || text[j] == '$') {
				j++
			}
			if strings.EqualFold(text[i:j], word) {
				return true
			}
			i = j
		default:
			i++
		}
	}
	return false
}

// escapeString says the quote at text[i] opens a PostgreSQL escape
// string, E'…', in which a backslash escapes the next character.
func escapeString(text string, i int) bool {
	return i > 0 && upper(text[i-1]) == 'E' && (i == 1 || !isWordChar(upper(text[i-2])))
}

// quoteEnd is the index in s of the quote q that ends a string or name
// whose opening quote went just before s, or -1; with escapes, a quote
// after a backslash does not end it.
func quoteEnd(s string, q byte, escapes bool) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if escapes {
				i++
			}
		case q:
			return i
		}
	}
	return -1
}

// dollarTag is the dollar-quote tag text starts with ($$, $body$), or "".
func dollarTag(text string) string {
	for j := 1; j < len(text); j++ {
		switch c := upper(text[j]); {
		case c == '$':
			return text[:j+1]
		case c == '_' || c >= 'A' && c <= 'Z' || j > 1 && c >= '0' && c <= '9':
		default:
			return ""
		}
	}
	return ""
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func isWordChar(c byte) bool {
	return c == '_' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
