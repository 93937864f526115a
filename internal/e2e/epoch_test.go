package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/testenv"
)

// resynced waits until web1 has asked for a resync (the master posted it a
// DELETE of every job) and applied what the resync posted.
func resynced(t *testing.T, env *testenv.Env) {
	t.Helper()
	testenv.Eventually(t, wait, "web1 to resync", func() bool {
		list, err := env.Client.DownloadList(context.Background(), httpapi.DownloadListFilter{Target: "web1"})
		return err == nil && slices.ContainsFunc(list, func(in muster.Instruction) bool {
			return in.Operation == muster.OpDelete && in.Job == "" && in.Status == muster.InstructionDownloaded
		})
	})
	settled(t, env)
}

// A master started with a new epoch (its catalog restored from a backup)
// makes each target ask for a resync by itself, at its next poll: it is
// sent every job again.
func TestNewEpochMakesTargetsResync(t *testing.T) {
	newEpoch := false
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Master: func(c *master.Config) { c.NewEpoch = newEpoch }})
	apply(t, env, shellJob("a", "true", "web1"), shellJob("b", "true", "web1"))
	settled(t, env)
	before := env.Master.Catalog.Epoch()
	newEpoch = true
	env.RestartMaster()
	if env.Master.Catalog.Epoch() == before {
		t.Fatal("the restarted master kept its epoch")
	}
	resynced(t, env)
	if !holds(t, env, "web1", "a") || !holds(t, env, "web1", "b") {
		t.Error("after the resync web1 does not hold both jobs")
	}
	// The resync is in the audit log, under the target that asked.
	if got := auditActions(t, env, httpapi.AuditFilter{Job: "b", Limit: 1}); !slices.Equal(got, []string{muster.AuditTargetResync + " by target web1"}) {
		t.Errorf("the newest audit entry on job b: %q, want the resync web1 asked for", got)
	}
	if runs := startAndWait(t, env, "a"); runs[0].Status != muster.RunSucceeded {
		t.Errorf("a run after the resync: %s", runs[0].Status)
	}
}

// A catalog restored from an older backup has not posted what the target
// has already applied: the target's cursor is ahead of it, and it asks for
// a resync, which deletes the job the backup does not know.
func TestRestoredCatalogMakesTargetsResync(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	apply(t, env, shellJob("a", "true", "web1"))
	settled(t, env)
	dir := filepath.Join(env.Dir, "master")
	backup := t.TempDir()
	env.StopMaster()
	copyDir(t, dir, backup)
	env.RestartMaster()
	apply(t, env, shellJob("b", "true", "web1"), shellJob("c", "true", "web1"))
	settled(t, env)

	env.StopMaster()
	for _, f := range []string{master.CatalogFile, master.CatalogFile + "-wal", master.CatalogFile + "-shm"} {
		os.Remove(filepath.Join(dir, f))
	}
	copyDir(t, backup, dir)
	env.RestartMaster()
	resynced(t, env)
	if !holds(t, env, "web1", "a") || holds(t, env, "web1", "b") || holds(t, env, "web1", "c") {
		t.Error("after the resync web1 holds other jobs than the restored catalog's one")
	}
}

// copyDir copies the regular files of src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
