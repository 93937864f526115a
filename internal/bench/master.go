package bench

import (
	"bufio"
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/pki"
)

// Master is a master daemon in its own process, with an operator client
// on it. It is `muster master`, or, when profiles are asked for, the same
// daemon under `muster bench serve-master`, which writes them.
type Master struct {
	daemon
	// Dir is the master's data directory.
	Dir string
	// URL is where it listens; a restart keeps it.
	URL string
	// Client is an admin client of the operator API.
	Client *httpapi.Client
	// Roots trusts the master's CA.
	Roots *x509.CertPool
	// Token is the admin API token.
	Token string

	profileDir string
	extra      []string // flags of the store, for restarts
}

// MasterOptions shape a master process.
type MasterOptions struct {
	// Listen is the listener's address; 127.0.0.1 on a free port when "".
	Listen string
	// ProfileDir, when set, receives the master's CPU profile
	// (master.cpu.pprof) and a heap profile at exit (master.heap.pprof).
	ProfileDir string
	// Store and SecretFile put the catalog in PostgreSQL (--store,
	// --secret-file); "" is SQLite in the data directory.
	Store, SecretFile string
	// Token is the admin token of a master joining a catalog whose first
	// master made it; "" reads the admin.token the master writes.
	Token string
}

// StartMaster starts a master process with data directory dir (created if
// need be) and waits until it listens.
func StartMaster(ctx context.Context, exe, dir string, o MasterOptions) (*Master, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	m := &Master{Dir: dir, profileDir: o.ProfileDir, Token: o.Token}
	if o.Store != "" {
		m.extra = []string{"--store", o.Store, "--secret-file", o.SecretFile}
	}
	m.exe, m.log = exe, filepath.Join(filepath.Dir(dir), filepath.Base(dir)+".log")
	listen := o.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	if err := m.startOn(ctx, listen); err != nil {
		return nil, err
	}
	if m.Token == "" {
		token, err := os.ReadFile(filepath.Join(dir, master.AdminTokenFile))
		if err != nil {
			m.Kill()
			return nil, err
		}
		m.Token = strings.TrimSpace(string(token))
	}
	var err error
	if m.Roots, err = pki.LoadPool(filepath.Join(dir, pki.CACertFile)); err != nil {
		m.Kill()
		return nil, err
	}
	if m.Client, err = httpapi.NewClient(m.URL, m.Token, m.Roots); err != nil {
		m.Kill()
		return nil, err
	}
	return m, nil
}

// urlLine is how a master announces where it listens, on its first line.
const urlLine = "muster master listening on "

func (m *Master) startOn(ctx context.Context, listen string) error {
	if m.profileDir != "" {
		m.args = []string{"bench", "serve-master", "--data", m.Dir, "--listen", listen, "--profile", m.profileDir}
	} else {
		m.args = []string{"master", "--data", m.Dir, "--listen", listen, "--log-level", "warn"}
	}
	m.args = append(m.args, m.extra...)
	offset := int64(0)
	if fi, err := os.Stat(m.log); err == nil {
		offset = fi.Size()
	}
	if err := m.start(); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if u := findURL(m.log, offset); u != "" {
			m.URL = u
			return nil
		}
		select {
		case <-m.Exited():
			return fmt.Errorf("the master exited at start:\n%s", m.Log())
		case <-ctx.Done():
			m.Kill()
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.Kill()
			return fmt.Errorf("the master printed no URL within 30s:\n%s", m.Log())
		}
	}
}

// findURL returns the URL a master announced in log after offset, or "".
func findURL(log string, offset int64) string {
	f, err := os.Open(log)
	if err != nil {
		return ""
	}
	defer f.Close()
	f.Seek(offset, 0)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), urlLine); ok {
			return strings.TrimSpace(u)
		}
	}
	return ""
}

// Restart starts the (stopped or killed) master again on the same address.
func (m *Master) Restart(ctx context.Context) error {
	if m.Running() {
		return fmt.Errorf("the master is running (pid %d)", m.Pid())
	}
	return m.startOn(ctx, strings.TrimPrefix(m.URL, "https://"))
}

// Metric reads one unlabelled sample from the master's /metrics.
func (m *Master) Metric(ctx context.Context, name string) (float64, error) {
	tr := &http.Transport{TLSClientConfig: pki.ClientTLSConfig(m.Roots, nil)}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+m.Token)
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("metric %s: not found", name)
}
