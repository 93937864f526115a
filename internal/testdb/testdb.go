// Package testdb finds the database servers tests run SQL against.
package testdb

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"
)

// DSN returns the DSN of a test database: envVar's, else def. The test
// skips, saying so, when nothing answers there, or fails when
// MUSTER_TEST_REQUIRE_SERVICES=1 (as in CI). driver must be registered.
func DSN(t testing.TB, envVar, def, driver string) string {
	t.Helper()
	dsn := os.Getenv(envVar)
	if dsn == "" {
		dsn = def
	}
	db, err := sql.Open(driver, dsn)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
		db.Close()
	}
	if err != nil {
		if os.Getenv("MUSTER_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s (%s) is required and does not answer: %v", envVar, dsn, err)
		}
		t.Skipf("skipping: no database at %s (set %s): %v", dsn, envVar, err)
	}
	return dsn
}

// Postgres is the PostgreSQL server's DSN (MUSTER_TEST_POSTGRES), for the
// driver "pgx".
func Postgres(t testing.TB) string {
	t.Helper()
	return DSN(t, "MUSTER_TEST_POSTGRES", "postgres://root@127.0.0.1:5432/test?sslmode=disable", "pgx")
}

// MySQL is the MySQL or MariaDB server's DSN (MUSTER_TEST_MYSQL), for the
// driver "mysql".
func MySQL(t testing.TB) string {
	t.Helper()
	return DSN(t, "MUSTER_TEST_MYSQL", "root@tcp(127.0.0.1:3306)/test", "mysql")
}

// Column returns the first column of every row query returns, as text.
func Column(t testing.TB, db *sql.DB, query string) []string {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
