package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/testenv"
)

func TestMain(m *testing.M) {
	// Process tests re-execute this binary as the CLI.
	if os.Getenv("MUSTER_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	testscript.Main(m, map[string]func(){
		"muster": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScript runs the CLI scenarios in testdata/script. Each script gets its
// own master with two enlisted, running targets (web1 and web2), and the
// MUSTER_ADDR, MUSTER_TOKEN and MUSTER_CACERT that point the CLI at it.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}})
			e.Defer(env.Close)
			e.Setenv("MUSTER_ADDR", env.Master.URL)
			e.Setenv("MUSTER_TOKEN", env.Master.AdminToken)
			e.Setenv("MUSTER_CACERT", filepath.Join(env.Dir, "master", pki.CACertFile))
			e.Setenv("MASTER_DATA", filepath.Join(env.Dir, "master"))
			e.Setenv("ADMIN_TOKEN_FILE", filepath.Join(env.Dir, "master", master.AdminTokenFile))
			setupAlertScript(t, e)
			return nil
		},
		Cmds: scriptCmds,
		Condition: func(cond string) (bool, error) {
			return false, nil
		},
		RequireExplicitExec: true,
	})
}
