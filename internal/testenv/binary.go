package testenv

import (
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The muster command, built once per test process for tests that run it as
// real processes (to kill -9 them, to measure them).
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// MusterBinary returns the path of the muster command built from this
// module, building it the first time (with the race detector when the
// tests have it). Call RemoveBinaries from TestMain to delete it.
func MusterBinary(tb testing.TB) string {
	tb.Helper()
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "muster-bin-")
		if binary.err != nil {
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(build.Default.GOROOT, "bin", "go")
		}
		path := filepath.Join(binary.dir, "muster")
		args := []string{"build", "-o", path}
		if Race {
			args = append(args, "-race")
		}
		cmd := exec.Command(goTool, append(args, "github.com/musterhq/muster/cmd/muster")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("go build muster: %v\n%s", err, out)
			return
		}
		binary.path = path
		// The command's own files are not dependencies of the test binary,
		// so go test's cache would not see them change: reading them here
		// records them as inputs of the test.
		out, err := exec.Command(goTool, "list", "-f", "{{.Dir}}", "github.com/musterhq/muster/cmd/muster").Output()
		if err != nil {
			binary.err = fmt.Errorf("go list cmd/muster: %v", err)
			return
		}
		sources, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "*.go"))
		for _, src := range sources {
			if f, err := os.Open(src); err == nil {
				f.Close()
			}
		}
	})
	if binary.err != nil {
		tb.Fatal(binary.err)
	}
	return binary.path
}

// RemoveBinaries deletes what MusterBinary built.
func RemoveBinaries() {
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
}
