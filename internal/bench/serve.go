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
	"syscall"

	"github.com/musterhq/muster/internal/master"
)

// Profile file names written by ServeMaster.
const (
	MasterCPUProfile  = "master.cpu.pprof"
	MasterHeapProfile = "master.heap.pprof"
)

// ServeMaster runs a master as `muster master` does, with a CPU profile
// taken for its whole life, and a heap profile written at each SIGUSR1 (so
// the fleet scenario can take one under load) or, if none was asked for,
// when it stops, both in profileDir. It announces its URL on the first line of out, as `muster
// master` does.
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
	cpu, err := os.Create(filepath.Join(profileDir, MasterCPUProfile))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, cpu.Close()) }()
	if err := pprof.StartCPUProfile(cpu); err != nil {
		return err
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	heapPath := filepath.Join(profileDir, MasterHeapProfile)
	go func() {
		for range usr1 {
			writeHeapProfile(heapPath)
		}
	}()
	fmt.Fprintf(out, "%s%s\n", urlLine, m.URL)
	err = m.Run(ctx)
	pprof.StopCPUProfile()
	if _, serr := os.Stat(heapPath); serr != nil {
		err = errors.Join(err, writeHeapProfile(heapPath))
	}
	return err
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	return errors.Join(pprof.WriteHeapProfile(f), f.Close())
}
