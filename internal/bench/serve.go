package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"

	"github.com/musterhq/muster/internal/master"
)

// Profile file names written by ServeMaster.
const (
	MasterCPUProfile       = "master.cpu.pprof"
	MasterWindowCPUProfile = "master.window.cpu.pprof"
	MasterHeapProfile      = "master.heap.pprof"
)

// ServeMaster runs a master as `muster master` does, with a CPU profile
// taken for its whole life, and a heap profile written at each SIGUSR1 (so
// the fleet scenario can take one under load) or, if none was asked for,
// when it stops, both in profileDir. A first SIGUSR2 ends the life's CPU
// profile and begins a window's (MasterWindowCPUProfile), a second ends
// that: the fleet scenario profiles its fan-out apart from the hour of
// enlistment before it. It announces its URL on the first line of out, as
// `muster master` does.
func ServeMaster(ctx context.Context, out io.Writer, cfg master.Config, profileDir string) (err error) {
	if err := os.MkdirAll(profileDir, 0o755); err != nil {
		return err
	}
	m, err := master.New(cfg)
	if err != nil {
		return err
	}
	if err := m.Open(ctx); err != nil {
		return err
	}
	defer m.Close()
	cpu, err := startCPUProfiles(profileDir)
	if err != nil {
		return err
	}
	usr1, usr2 := make(chan os.Signal, 1), make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr1)
	defer signal.Stop(usr2)
	heapPath := filepath.Join(profileDir, MasterHeapProfile)
	go func() {
		for range usr1 {
			writeHeapProfile(heapPath)
		}
	}()
	go func() {
		for range usr2 {
			if err := cpu.toggle(); err != nil {
				fmt.Fprintf(os.Stderr, "muster bench: the CPU profile: %v\n", err)
			}
		}
	}()
	fmt.Fprintf(out, "%s%s\n", urlLine, m.URL)
	err = m.Run(ctx)
	err = errors.Join(err, cpu.stop())
	if _, serr := os.Stat(heapPath); serr != nil {
		err = errors.Join(err, writeHeapProfile(heapPath))
	}
	return err
}

// cpuProfiles writes the CPU profile of a master's life into
// MasterCPUProfile, and of one window of it, begun and ended by toggle,
// into MasterWindowCPUProfile: the life's ends where the window begins.
type cpuProfiles struct {
	dir     string
	mu      sync.Mutex
	file    *os.File // of the profile being written; nil once the window's has ended
	windows int      // toggles so far
}

// startCPUProfiles begins the life's profile in dir.
func startCPUProfiles(dir string) (*cpuProfiles, error) {
	p := &cpuProfiles{dir: dir}
	return p, p.begin(MasterCPUProfile)
}

func (p *cpuProfiles) begin(name string) error {
	f, err := os.Create(filepath.Join(p.dir, name))
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return errors.Join(err, f.Close())
	}
	p.file = f
	return nil
}

func (p *cpuProfiles) end() error {
	if p.file == nil {
		return nil
	}
	pprof.StopCPUProfile()
	err := p.file.Close()
	p.file = nil
	return err
}

// toggle ends the profile being written, and at the first toggle begins
// the window's. Later toggles do nothing.
func (p *cpuProfiles) toggle() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.windows++; p.windows > 2 {
		return nil
	}
	err := p.end()
	if p.windows == 1 {
		err = errors.Join(err, p.begin(MasterWindowCPUProfile))
	}
	return err
}

// stop ends the profile being written, if any.
func (p *cpuProfiles) stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.end()
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	return errors.Join(pprof.WriteHeapProfile(f), f.Close())
}
