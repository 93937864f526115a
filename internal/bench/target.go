package bench

import (
	"context"
	"path/filepath"
	"time"

	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/httpapi"
)

// TargetProcess is a target daemon in its own process: `muster target
// --data DIR`, real in every way (its store, its step processes).
type TargetProcess struct {
	daemon
	Name string
	Dir  string
	// UID is the enlistment id, part of every run id the target makes.
	UID string
	// TraceFile, when set, receives the target's dispatch trace
	// (`muster target --trace`) from its next start.
	TraceFile string
}

// EnlistTarget enlists data directory dir as target name in the master
// reached at masterURL, as `muster enlist` does, with a token from c. The
// target is not started.
func EnlistTarget(ctx context.Context, exe string, c *httpapi.Client, masterURL, name, dir string) (*TargetProcess, error) {
	tok, err := c.CreateToken(ctx, name, 15*time.Minute)
	if err != nil {
		return nil, err
	}
	e, err := agent.Enlist(ctx, agent.EnlistOptions{MasterURL: masterURL, Token: tok.Token, Name: name, DataDir: dir})
	if err != nil {
		return nil, err
	}
	t := &TargetProcess{Name: e.Name, Dir: dir, UID: e.UID}
	t.exe, t.log = exe, filepath.Join(dir, "daemon.log")
	return t, nil
}

// Start starts the target daemon.
func (t *TargetProcess) Start() error {
	t.args = []string{"target", "--data", t.Dir, "--log-level", "warn"}
	if t.TraceFile != "" {
		t.args = append(t.args, "--trace", t.TraceFile)
	}
	return t.start()
}
