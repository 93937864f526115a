package e2e_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/testenv"
)

// smallDisk mounts a tmpfs of size bytes on a new directory, unmounted when
// the test ends. It skips, saying why, where the test may not mount.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: mounting a small filesystem needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("skipping: cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes to path until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// A master whose disk fills says so, to operators and in /readyz, instead of
// "internal error"; it takes changes again once space is freed.
func TestMasterDiskFull(t *testing.T) {
	disk := smallDisk(t, "16m")
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Master: func(c *master.Config) {
		c.DataDir = filepath.Join(disk, "master")
	}})
	ctx := context.Background()
	apply(t, env, shellJob("hello", "echo hello", "web1"))
	settled(t, env)

	filler := filepath.Join(disk, "filler")
	fill(t, filler)
	j := shellJob("more", "echo more", "web1")
	j.Description = strings.Repeat("x", 1000)
	var err error
	for i := range 50 { // the WAL may hold a little room: write until it is gone
		j.Name = "more" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if _, err = env.Client.Apply(ctx, applyRequest(j)); err != nil {
			break
		}
	}
	if code := muster.ErrorCode(err); code != muster.EUNAVAILABLE || !strings.Contains(err.Error(), "disk is full") {
		t.Fatalf("apply on a full disk: code %q (%v), want %q saying the disk is full", code, err, muster.EUNAVAILABLE)
	}
	code, body := readyz(t, env)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "disk is full") {
		t.Fatalf("/readyz on a full disk: %d %q, want 503 saying the disk is full", code, body)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "the master to take changes again", func() bool {
		_, err := env.Client.Apply(ctx, applyRequest(shellJob("after", "echo after", "web1")))
		return err == nil
	})
	if code, body := readyz(t, env); code != http.StatusOK {
		t.Fatalf("/readyz once space is back: %d %q", code, body)
	}
}

func applyRequest(jobs ...muster.Job) httpapi.ApplyRequest { return httpapi.ApplyRequest{Jobs: jobs} }

// A master whose catalog file is deleted under it (a careless cleanup)
// says so, to operators and in /readyz, rather than taking changes into a
// file no one will find again: the next start would begin on an empty
// catalog.
func TestMasterCatalogFileDeleted(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	apply(t, env, shellJob("hello", "echo hello", "web1"))
	settled(t, env)

	path := filepath.Join(env.Dir, "master", master.CatalogFile)
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	_, err := env.Client.Apply(ctx, applyRequest(shellJob("more", "echo more", "web1")))
	if code := muster.ErrorCode(err); code != muster.EUNAVAILABLE || !strings.Contains(err.Error(), "was deleted") {
		t.Errorf("apply with the catalog file deleted: code %q (%v), want %q saying the file was deleted", code, err, muster.EUNAVAILABLE)
	}
	code, body := readyz(t, env)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "was deleted") {
		t.Errorf("/readyz with the catalog file deleted: %d %q, want 503 saying the file was deleted", code, body)
	}
}
