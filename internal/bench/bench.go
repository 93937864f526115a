// Package bench measures a muster fleet built on this machine: a master in
// its own process, targets as real `muster target` processes or as
// lightweight simulated targets that speak the real agent protocol, all
// over mutual TLS on loopback. Each scenario prints its figures beside the
// budgets of the design's performance table; `muster bench` is its
// command line.
//
// The process harness (Master, TargetProcess) is also what the fault
// suite (internal/faults) kills and restarts.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/musterhq/muster/internal/catalog/pgstore"
	"github.com/musterhq/muster/internal/master"
)

// Scenarios are the benchmark scenarios, in the order of the budget table.
var Scenarios = []string{"dispatch", "fanout", "schedule", "fleet", "ingest", "upload", "agent", "output", "console"}

// Target modes.
const (
	// ModeProcess runs each target as a real `muster target` process.
	ModeProcess = "process"
	// ModeSim runs simulated targets: in the benchmark's own process, or,
	// for fleet and fanout, in sim processes of up to SimsPerProcess each.
	ModeSim = "sim"
)

// Options configure a benchmark run. Zero values take the scenario's
// defaults.
type Options struct {
	// Exe is the muster executable that daemons are started from; this
	// process's own executable when "".
	Exe string
	// Dir holds the data directories; a temporary directory, removed at
	// the end, when "".
	Dir string
	// Targets is the size of the fleet.
	Targets int
	// Runs is how many starts (dispatch), fan-outs (fanout), uploaded runs
	// (ingest) or uploads (upload) are measured, or the steps of the run
	// (output).
	Runs int
	// Size is how many bytes each step prints (output).
	Size int64
	// Jobs is how many jobs the schedule scenario runs, the agent
	// scenario's target holds, and the console scenario aims at its targets.
	Jobs int
	// Duration is the measuring window of schedule, fleet and agent.
	Duration time.Duration
	// Mode is ModeProcess or ModeSim; each scenario has a default.
	Mode string
	// ProfileDir, when set, runs the master under a CPU profile and takes
	// a heap profile, written there; with several masters, the second's in
	// its subdirectory master2, and so on.
	ProfileDir string
	// Store is a PostgreSQL database (postgres://…) to put the catalog in,
	// in a new schema dropped at the end; "" is SQLite in the master's data
	// directory.
	Store string
	// Masters is how many masters serve the catalog (more than one needs a
	// PostgreSQL Store); fleet spreads its targets' polls over them.
	Masters int
	// SimsPerProcess is how many simulated targets each sim process holds
	// in the fleet and fanout scenarios (10,000 when 0), at most what the
	// open-file limit leaves room for.
	SimsPerProcess int
	// Progress receives progress lines; nothing when nil.
	Progress io.Writer
}

// Result is what a scenario measured. Its JSON form is the machine-readable
// report (`-o json`); Table writes it for people.
type Result interface {
	Table(w io.Writer) error
	// limits are the bounds of the scenario's budget, with what was
	// measured against each.
	limits() []limit
	verdictOf() *Verdict
}

// Run runs one scenario.
func Run(ctx context.Context, scenario string, o Options) (Result, error) {
	run, ok := map[string]func(context.Context, *env) (Result, error){
		"dispatch": dispatch,
		"fanout":   fanout,
		"schedule": schedules,
		"fleet":    fleet,
		"ingest":   ingest,
		"upload":   uploads,
		"agent":    idleAgent,
		"output":   output,
		"console":  consolePages,
	}[scenario]
	if !ok {
		return nil, fmt.Errorf("no scenario %q; the scenarios are %s", scenario, strings.Join(Scenarios, ", "))
	}
	if o.Mode != "" && o.Mode != ModeProcess && o.Mode != ModeSim {
		return nil, fmt.Errorf("--mode: %q is not %s or %s", o.Mode, ModeProcess, ModeSim)
	}
	e, err := newEnv(o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	res, err := run(ctx, e)
	if err != nil {
		return nil, err
	}
	*res.verdictOf() = judge(res.limits())
	return res, nil
}

// env is the working state of one scenario run.
type env struct {
	o       Options
	dir     string
	cleanup func()
	closers []func()
}

func newEnv(o Options) (*env, error) {
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		o.Exe = exe
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if _, _, err := master.RaiseFileLimit(); err != nil {
		return nil, fmt.Errorf("raise the open-file limit: %w", err)
	}
	e := &env{o: o, dir: o.Dir, cleanup: func() {}}
	if e.dir != "" {
		if err := os.MkdirAll(e.dir, 0o700); err != nil {
			return nil, fmt.Errorf("--dir: %w", err)
		}
	} else {
		dir, err := os.MkdirTemp("", "muster-bench-")
		if err != nil {
			return nil, err
		}
		e.dir, e.cleanup = dir, func() { os.RemoveAll(dir) }
	}
	return e, nil
}

// onClose registers fn to run when the scenario ends, latest first.
func (e *env) onClose(fn func()) { e.closers = append(e.closers, fn) }

func (e *env) close() {
	for _, fn := range slices.Backward(e.closers) {
		fn()
	}
	e.cleanup()
}

func (e *env) progress(format string, args ...any) {
	fmt.Fprintf(e.o.Progress, "muster bench: "+format+"\n", args...)
}

// or returns v, or def when v is zero.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// startMaster starts the master process of the scenario.
func (e *env) startMaster(ctx context.Context) (*Master, error) {
	ms, err := e.startMasters(ctx, 1)
	if err != nil {
		return nil, err
	}
	return ms[0], nil
}

// startMasters starts n master processes on the scenario's catalog: one on
// SQLite, or n on a new schema of the PostgreSQL database of --store.
func (e *env) startMasters(ctx context.Context, n int) ([]*Master, error) {
	o := MasterOptions{ProfileDir: e.o.ProfileDir}
	if e.o.Store != "" {
		url, drop, err := pgstore.NewSchema(ctx, e.o.Store, "muster_bench_")
		if err != nil {
			return nil, fmt.Errorf("--store: %w", err)
		}
		e.onClose(func() { drop(context.WithoutCancel(ctx)) })
		o.Store, o.SecretFile = url, filepath.Join(e.dir, "secret")
		secret := make([]byte, 32)
		rand.Read(secret)
		if err := os.WriteFile(o.SecretFile, []byte(hex.EncodeToString(secret)), 0o600); err != nil {
			return nil, err
		}
	} else if n > 1 {
		return nil, fmt.Errorf("--masters %d: several masters share a catalog on PostgreSQL; give --store postgres://…", n)
	}
	var ms []*Master
	for i := range n {
		dir := filepath.Join(e.dir, "master")
		if i > 0 {
			dir = filepath.Join(e.dir, fmt.Sprintf("master%d", i+1))
			o.Token = ms[0].Token
			if e.o.ProfileDir != "" {
				// Each master's profiles in a directory of its own.
				o.ProfileDir = filepath.Join(e.o.ProfileDir, fmt.Sprintf("master%d", i+1))
			}
		}
		m, err := StartMaster(ctx, e.o.Exe, dir, o)
		if err != nil {
			return nil, err
		}
		e.onClose(func() {
			if err := m.Stop(); err != nil {
				e.progress("%v", err)
			}
		})
		ms = append(ms, m)
	}
	return ms, nil
}

// storeName names the catalog a --store gives, without its address.
func storeName(store string) string {
	if store == "" {
		return "sqlite"
	}
	return "postgres"
}

// figure is one line of a result table.
type figure struct {
	name     string
	measured string
	budget   string
	result   string
}

// writeTable writes a heading and figures.
func writeTable(w io.Writer, heading []string, figures []figure) error {
	for _, h := range heading {
		fmt.Fprintln(w, h)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tMEASURED\tBUDGET\tRESULT")
	for _, f := range figures {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.name, f.measured, or(f.budget, "-"), or(f.result, "-"))
	}
	return tw.Flush()
}

// machine describes where the benchmark ran, for table headings.
func machine() string {
	return fmt.Sprintf("machine: %d CPUs, %s, %s/%s", runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// dist renders a distribution.
func dist(s Summary) string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s ms (n=%d)", ms3(s.P50), ms3(s.P90), ms3(s.P99), ms3(s.Max), s.Count)
}

// ms3 renders milliseconds with three significant figures or so.
func ms3(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func num(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return ms3(v)
}

// errTimeout reports a wait that did not end.
var errTimeout = errors.New("timed out")

// waitUntil polls cond every interval until it holds, for at most timeout.
func waitUntil(ctx context.Context, what string, timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %s waiting for %s", errTimeout, timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
