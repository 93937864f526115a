package catalogtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a PostgreSQL server of a test's own, in a temporary directory
// on a free port, which the test may stop and start (as a database restart
// or an outage) without disturbing the shared test database. PostgreSQL
// refuses to run as root: the server runs as the postgres user.
type Cluster struct {
	dir, bin string
	Port     int
	// URL reaches its database, as the root role.
	URL string
	tb  testing.TB
}

// NewCluster initializes and starts a cluster, stopped when the test ends.
// It skips, saying why, where it cannot (PostgreSQL's programs are not
// installed, or the test does not run as root to switch to postgres); in CI
// (MUSTER_TEST_REQUIRE_SERVICES=1) it fails instead.
func NewCluster(tb testing.TB) *Cluster {
	tb.Helper()
	skip := func(format string, args ...any) *Cluster {
		if os.Getenv("MUSTER_TEST_REQUIRE_SERVICES") == "1" {
			tb.Fatalf("a PostgreSQL cluster of the test's own is required: "+format, args...)
		}
		tb.Skipf("skipping: "+format, args...)
		return nil
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return skip("PostgreSQL's initdb is not installed under /usr/lib/postgresql")
	}
	if os.Geteuid() != 0 {
		return skip("running PostgreSQL as postgres needs root")
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		return skip("no postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	dir, err := os.MkdirTemp("", "muster-pg-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		tb.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		tb.Fatal(err)
	}
	c := &Cluster{dir: dir, bin: filepath.Dir(bins[len(bins)-1]), Port: port, tb: tb}
	c.URL = fmt.Sprintf("postgres://root@127.0.0.1:%d/postgres?sslmode=disable", port)
	if out, err := c.as("initdb", "-D", c.data(), "-A", "trust", "-U", "root", "--no-sync").CombinedOutput(); err != nil {
		tb.Fatalf("initdb: %v\n%s", err, out)
	}
	c.Start()
	tb.Cleanup(func() { c.as("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop").Run() })
	return c
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// as runs one of PostgreSQL's programs as the postgres user.
func (c *Cluster) as(prog string, args ...string) *exec.Cmd {
	return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(c.bin, prog)}, args...)...)
}

// Start starts the server and waits until it answers.
func (c *Cluster) Start() {
	c.tb.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", c.Port, c.dir)
	if out, err := c.as("pg_ctl", "-D", c.data(), "-o", opts, "-l", filepath.Join(c.dir, "log"), "-w", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		c.tb.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.URL)
		if err == nil {
			conn.Close(ctx)
			return
		}
		if ctx.Err() != nil {
			c.tb.Fatalf("the cluster does not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server at once (as a crash does: sessions are cut, no
// checkpoint).
func (c *Cluster) Stop() {
	c.tb.Helper()
	if out, err := c.as("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop").CombinedOutput(); err != nil {
		c.tb.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// Restart stops the server at once and starts it again.
func (c *Cluster) Restart() {
	c.tb.Helper()
	c.Stop()
	c.Start()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
