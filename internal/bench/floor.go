package bench

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/sqlite"
)

// DispatchFloor is the durable-dispatch floor: what a start request costs
// at the least, on this machine, in any design that keeps muster's
// guarantees (a START committed by the master before a target can read it;
// committed durably on the target before its process starts, so that it
// runs at most once across a power cut). Each sample is the sum of its four
// parts, measured one after the other in the same run as the starts, one
// sample after each start, so that the machine's noise falls on both:
//
//   - MasterCommit: a write transaction of one row on a SQLite file in the
//     master's data directory, opened as the master opens its catalog
//     (WAL, synchronous=NORMAL: the master's commit is not synced, as its
//     catalog is replayed from its targets' records after a power cut);
//   - RoundTrip: a request and its reply (256 and 1,024 bytes) over a
//     mutual-TLS connection, configured as a target's and a master's are,
//     held open to another process on 127.0.0.1, as a target holds its
//     poll;
//   - TargetCommit: the same transaction on a file in the target's data
//     directory, opened as a target opens its store (synchronous=FULL: the
//     commit is synced);
//   - Exec: starting `/bin/sh -c` with the step's command in a process
//     group of its own, its output to a pipe, until os/exec's Start returns
//     (its exit is waited for outside the measure).
type DispatchFloor struct {
	Summary
	MasterCommit Summary `json:"master_commit"`
	RoundTrip    Summary `json:"tls_round_trip"`
	TargetCommit Summary `json:"target_commit"`
	Exec         Summary `json:"exec"`
}

// floorProbe takes samples of the dispatch floor.
type floorProbe struct {
	master, target *floorDB
	echo           *daemon
	conn           *tls.Conn
	script         string
	req, reply     []byte
	sums, parts    [][]time.Duration // parts: master, round trip, target, exec
}

// newFloorProbe opens the floor's files in masterDir and targetDir and its
// TLS connection to an echo process started from the muster executable.
func (e *env) newFloorProbe(ctx context.Context, masterDir, targetDir, script string) (*floorProbe, error) {
	p := &floorProbe{script: script, req: make([]byte, echoRequest), reply: make([]byte, echoReply), parts: make([][]time.Duration, 4), sums: make([][]time.Duration, 1)}
	var err error
	if p.master, err = openFloorDB(filepath.Join(masterDir, "floor.db"), "NORMAL"); err != nil {
		return nil, err
	}
	e.onClose(p.master.close)
	if p.target, err = openFloorDB(filepath.Join(targetDir, "floor.db"), "FULL"); err != nil {
		return nil, err
	}
	e.onClose(p.target.close)
	dir := filepath.Join(e.dir, "echo")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if _, _, err := pki.LoadOrCreateCA(dir, time.Now()); err != nil {
		return nil, err
	}
	p.echo = &daemon{exe: e.o.Exe, args: []string{"bench", "serve-echo", "--dir", dir}, log: filepath.Join(dir, "echo.log")}
	if err := p.echo.start(); err != nil {
		return nil, err
	}
	e.onClose(func() { p.echo.Stop() })
	addr, err := waitLine(ctx, p.echo, echoLine)
	if err != nil {
		return nil, err
	}
	cfg, err := floorClientTLS(dir)
	if err != nil {
		return nil, err
	}
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("echo process: %w", err)
	}
	p.conn = c.(*tls.Conn)
	e.onClose(func() { p.conn.Close() })
	return p, nil
}

// sample measures each part once.
func (p *floorProbe) sample(ctx context.Context) error {
	var d [4]time.Duration
	var err error
	if d[0], err = p.master.commit(ctx); err != nil {
		return fmt.Errorf("floor: master commit: %w", err)
	}
	if d[1], err = p.roundTrip(); err != nil {
		return fmt.Errorf("floor: TLS round trip: %w", err)
	}
	if d[2], err = p.target.commit(ctx); err != nil {
		return fmt.Errorf("floor: target commit: %w", err)
	}
	if d[3], err = bareExec(p.script); err != nil {
		return fmt.Errorf("floor: exec: %w", err)
	}
	var sum time.Duration
	for i, v := range d {
		p.parts[i] = append(p.parts[i], v)
		sum += v
	}
	p.sums[0] = append(p.sums[0], sum)
	return nil
}

// reset forgets the samples taken so far (the warm-up's).
func (p *floorProbe) reset() {
	p.sums[0] = p.sums[0][:0]
	for i := range p.parts {
		p.parts[i] = p.parts[i][:0]
	}
}

// floor summarizes the samples taken.
func (p *floorProbe) floor() DispatchFloor {
	return DispatchFloor{Summary: Summarize(p.sums[0]), MasterCommit: Summarize(p.parts[0]), RoundTrip: Summarize(p.parts[1]),
		TargetCommit: Summarize(p.parts[2]), Exec: Summarize(p.parts[3])}
}

func (p *floorProbe) roundTrip() (time.Duration, error) {
	p.conn.SetDeadline(time.Now().Add(10 * time.Second))
	t0 := time.Now()
	if _, err := p.conn.Write(p.req); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(p.conn, p.reply); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// bareExec starts `/bin/sh -c script` as a target starts a step (its own
// process group, its output to a pipe) and returns how long Start took.
func bareExec(script string) (time.Duration, error) {
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	return d, cmd.Wait()
}

// floorDB is a SQLite file opened as muster opens its stores, with one
// prepared insert.
type floorDB struct {
	write, read *sql.DB
	insert      *sql.Stmt
	row         string
}

func openFloorDB(path, synchronous string) (*floorDB, error) {
	write, read, err := sqlite.Open(path, synchronous, 1)
	if err != nil {
		return nil, err
	}
	f := &floorDB{write: write, read: read, row: strings.Repeat("r", 400)}
	if _, err := write.Exec(`CREATE TABLE IF NOT EXISTS floor (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, body TEXT NOT NULL)`); err != nil {
		f.close()
		return nil, err
	}
	if f.insert, err = write.Prepare(`INSERT INTO floor (at, body) VALUES (?, ?)`); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

// commit runs a write transaction of one row and returns its time.
func (f *floorDB) commit(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	tx, err := f.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Stmt(f.insert).ExecContext(ctx, t0.UnixNano(), f.row); err != nil {
		tx.Rollback()
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

func (f *floorDB) close() {
	if f.insert != nil {
		f.insert.Close()
	}
	f.write.Close()
	f.read.Close()
}

// The echo process's protocol: a request of echoRequest bytes is answered
// with echoReply bytes.
const (
	echoRequest = 256
	echoReply   = 1024
	echoLine    = "muster bench echo listening on "
)

// floorClientTLS is a target's TLS configuration towards the echo process:
// the CA in dir verifies the server, and a target certificate it signs is
// presented, as a target presents its own to its master.
func floorClientTLS(dir string) (*tls.Config, error) {
	ca, _, err := pki.LoadOrCreateCA(dir, time.Now())
	if err != nil {
		return nil, err
	}
	key, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	cc, err := ca.SignTargetKey(&key.PublicKey, "floor", "floor", time.Now(), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{cc.DER}, PrivateKey: key}
	return pki.ClientTLSConfig(ca.Pool(), &cert), nil
}

// ServeEcho is the far end of the floor's TLS round trip (`muster bench
// serve-echo`): a listener on 127.0.0.1 configured as the master's is, with
// a server certificate from the CA in dir (made there when there is none),
// that answers each request of 256 bytes with 1,024. It
// announces its address on the first line of out and serves until ctx
// ends.
func ServeEcho(ctx context.Context, out io.Writer, dir string) error {
	ca, _, err := pki.LoadOrCreateCA(dir, time.Now())
	if err != nil {
		return err
	}
	cert, err := pki.LoadOrIssueServerCert(dir, ca, []string{"127.0.0.1"}, time.Now())
	if err != nil {
		return err
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", pki.ServerTLSConfig(cert, ca))
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	fmt.Fprintf(out, "%s%s\n", echoLine, l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go echo(ctx, c)
	}
}

func echo(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	req, reply := make([]byte, echoRequest), make([]byte, echoReply)
	for {
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		if _, err := c.Write(reply); err != nil {
			return
		}
	}
}

// waitLine waits for d to print a line starting with prefix in its log and
// returns the rest of it.
func waitLine(ctx context.Context, d *daemon, prefix string) (string, error) {
	var found string
	err := waitUntil(ctx, prefix, 30*time.Second, 10*time.Millisecond, func() (bool, error) {
		if !d.Running() {
			return false, errors.New(d.exe + " exited at start:\n" + d.Log())
		}
		for line := range strings.Lines(d.Log()) {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				found = strings.TrimSpace(v)
				return true, nil
			}
		}
		return false, nil
	})
	return found, err
}
