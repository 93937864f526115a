package agent

import (
	"context"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/musterhq/muster"
)

// openTargetDir opens the target daemon of dir as `muster target` does.
func openTargetDir(dir string) error {
	cfg := DefaultConfig()
	cfg.DataDir = dir
	m, err := New(cfg)
	if err != nil {
		return err
	}
	if err := m.Open(context.Background()); err != nil {
		return err
	}
	return m.Close()
}

// enlistedCopy returns a data directory holding an enlisted target's files,
// made from a real enlistment, for a test to damage.
func enlistedCopy(t *testing.T) string {
	t.Helper()
	tm := startTestMaster(t)
	dir := filepath.Join(t.TempDir(), "target")
	m := tm.enlistIn(t, "web1", dir)
	m.Close()
	return dir
}

// A data directory the daemon cannot use is refused with an error naming
// it, what is wrong, and what to do, and nothing is made in it.
func TestOpenRefusesADataDirectoryItCannotUse(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "muster-targt")
		err := openTargetDir(dir)
		if muster.ErrorCode(err) != muster.ENOTFOUND || !strings.Contains(err.Error(), dir+" is not enlisted in a master; run `muster enlist --data "+dir) {
			t.Errorf("got %v (%s), want %s: not enlisted", err, muster.ErrorCode(err), muster.ENOTFOUND)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("the directory was made: %v", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		dir := t.TempDir()
		err := openTargetDir(dir)
		if muster.ErrorCode(err) != muster.ENOTFOUND || !strings.Contains(err.Error(), dir+" is not enlisted in a master") {
			t.Errorf("got %v (%s), want %s: not enlisted", err, muster.ErrorCode(err), muster.ENOTFOUND)
		}
		if left, _ := os.ReadDir(dir); len(left) > 0 {
			t.Errorf("made in the directory: %v", left)
		}
	})
	t.Run("store lost", func(t *testing.T) {
		dir := enlistedCopy(t)
		for _, f := range []string{StoreFile, StoreFile + "-wal", StoreFile + "-shm"} {
			os.Remove(filepath.Join(dir, f))
		}
		err := openTargetDir(dir)
		want := filepath.Join(dir, StoreFile) + " is missing: this directory holds a target's certificate (cert.pem) without its store"
		if muster.ErrorCode(err) != muster.ENOTFOUND || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "muster target delete NAME --force") {
			t.Errorf("got %v (%s), want %s: %s, and how to enlist again", err, muster.ErrorCode(err), muster.ENOTFOUND, want)
		}
		if _, err := os.Stat(filepath.Join(dir, StoreFile)); !os.IsNotExist(err) {
			t.Errorf("an empty store was made: %v", err)
		}
	})
	// A store emptied (truncated by hand, or by a crash on a full disk) is
	// the store lost: the target is still enlisted on its master, so
	// enlisting again, as "not enlisted" said, fails under its name or
	// strands it under another; and no empty store is made in its place.
	t.Run("store emptied", func(t *testing.T) {
		dir := enlistedCopy(t)
		for _, f := range []string{StoreFile + "-wal", StoreFile + "-shm"} {
			os.Remove(filepath.Join(dir, f))
		}
		store := filepath.Join(dir, StoreFile)
		if err := os.Truncate(store, 0); err != nil {
			t.Fatal(err)
		}
		err := openTargetDir(dir)
		want := store + " is empty: this directory holds a target's certificate (cert.pem) without its store"
		if muster.ErrorCode(err) != muster.ENOTFOUND || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "muster target delete NAME --force") {
			t.Errorf("got %v (%s), want %s: %s, and how to enlist again", err, muster.ErrorCode(err), muster.ENOTFOUND, want)
		}
		if fi, err := os.Stat(store); err != nil || fi.Size() != 0 {
			t.Errorf("the emptied store was written: %v, %v", fi, err)
		}
	})
	t.Run("store replaced by a directory", func(t *testing.T) {
		dir := enlistedCopy(t)
		store := filepath.Join(dir, StoreFile)
		if err := os.Remove(store); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(store, 0o700); err != nil {
			t.Fatal(err)
		}
		err := openTargetDir(dir)
		want := store + " is a directory, not the target's store"
		if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v (%s), want %s: %s", err, muster.ErrorCode(err), muster.EINVALID, want)
		}
	})
	t.Run("certificate damaged", func(t *testing.T) {
		dir := enlistedCopy(t)
		os.WriteFile(filepath.Join(dir, CertFile), []byte("junk\n"), 0o600)
		err := openTargetDir(dir)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, CertFile)) {
			t.Errorf("got %v, want an error naming %s", err, filepath.Join(dir, CertFile))
		}
	})
	t.Run("store damaged", func(t *testing.T) {
		dir := enlistedCopy(t)
		for _, f := range []string{StoreFile + "-wal", StoreFile + "-shm"} {
			os.Remove(filepath.Join(dir, f))
		}
		os.WriteFile(filepath.Join(dir, StoreFile), []byte(strings.Repeat("junk", 1024)), 0o600)
		err := openTargetDir(dir)
		if muster.ErrorCode(err) != muster.EPRECONDITION || !strings.Contains(err.Error(), filepath.Join(dir, StoreFile)+": the target's store is damaged") {
			t.Errorf("got %v (%s), want %s: damaged, naming the store", err, muster.ErrorCode(err), muster.EPRECONDITION)
		}
	})
	// Another user who may write the directory (a step run as a proxy
	// among them) could put a store of its own in place of the target's,
	// whose jobs the daemon would then run as root, or replace its key or
	// its control socket.
	for _, tc := range []struct {
		name string
		mode os.FileMode
	}{{"writable by others", 0o777}, {"writable by its group", 0o770}, {"writable by others, sticky", os.ModeSticky | 0o777}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := enlistedCopy(t)
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			err := openTargetDir(dir)
			want := "data directory " + dir + " may be written by others than its owner (mode " + (os.ModeDir | tc.mode).String()
			if muster.ErrorCode(err) != muster.EFORBIDDEN || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "chmod go-w "+dir) {
				t.Errorf("got %v (%s), want %s: %s, and the chmod that mends it", err, muster.ErrorCode(err), muster.EFORBIDDEN, want)
			}
		})
	}
	t.Run("enlisting into a directory others may write", func(t *testing.T) {
		tm := startTestMaster(t)
		dir := filepath.Join(t.TempDir(), "target")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		_, err := Enlist(context.Background(), EnlistOptions{MasterURL: tm.URL, Token: tm.token(t, "web1"), Name: "web1", DataDir: dir})
		if muster.ErrorCode(err) != muster.EFORBIDDEN || !strings.Contains(err.Error(), "chmod go-w "+dir) {
			t.Errorf("got %v (%s), want %s, and the chmod that mends it", err, muster.ErrorCode(err), muster.EFORBIDDEN)
		}
		if left, _ := os.ReadDir(dir); len(left) > 0 {
			t.Errorf("made in the directory: %v", left)
		}
	})
	t.Run("in a directory others may write", func(t *testing.T) {
		dir := enlistedCopy(t)
		parent := filepath.Dir(dir)
		if err := os.Chmod(parent, 0o777); err != nil {
			t.Fatal(err)
		}
		err := openTargetDir(dir)
		want := parent + ", above data directory " + dir + ", may be written by others than its owner (mode drwxrwxrwx)"
		if muster.ErrorCode(err) != muster.EFORBIDDEN || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "chmod go-w "+parent) {
			t.Errorf("got %v (%s), want %s: %s, and the chmod that mends it", err, muster.ErrorCode(err), muster.EFORBIDDEN, want)
		}
		// A sticky directory (/tmp) lets no one rename what is another's.
		if err := os.Chmod(parent, os.ModeSticky|0o777); err != nil {
			t.Fatal(err)
		}
		if err := openTargetDir(dir); err != nil {
			t.Errorf("in a sticky directory: %v", err)
		}
	})
	// A directory's owner may rename what is in it whatever its mode, and
	// one that owns the data directory may put files of its own in it:
	// the daemon's user and root are the only owners let near it.
	t.Run("in a directory another user owns", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root, to give a directory to another user")
		}
		dir := enlistedCopy(t)
		parent := filepath.Dir(dir)
		if err := os.Chown(parent, 1, 1); err != nil {
			t.Fatal(err)
		}
		err := openTargetDir(dir)
		want := parent + ", above data directory " + dir + ", belongs to " + userName(1)
		if muster.ErrorCode(err) != muster.EFORBIDDEN || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "chown root "+parent) {
			t.Errorf("got %v (%s), want %s: %s, and the chown that mends it", err, muster.ErrorCode(err), muster.EFORBIDDEN, want)
		}
		// Under /tmp too: a sticky directory's owner may rename anything in it.
		if err := os.Chown(parent, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(parent, os.ModeSticky|0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(parent, 1, 1); err != nil {
			t.Fatal(err)
		}
		if err := openTargetDir(dir); muster.ErrorCode(err) != muster.EFORBIDDEN || !strings.Contains(err.Error(), want) {
			t.Errorf("in a sticky directory of another user: got %v (%s), want %s: %s", err, muster.ErrorCode(err), muster.EFORBIDDEN, want)
		}
	})
	t.Run("another user's", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root, to give a directory to another user")
		}
		dir := enlistedCopy(t)
		if err := os.Chown(dir, 1, 1); err != nil {
			t.Fatal(err)
		}
		err := openTargetDir(dir)
		want := "data directory " + dir + " belongs to " + userName(1)
		if muster.ErrorCode(err) != muster.EFORBIDDEN || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "chown -R root "+dir) {
			t.Errorf("got %v (%s), want %s: %s, and the chown that mends it", err, muster.ErrorCode(err), muster.EFORBIDDEN, want)
		}
	})
	// The directories a path names on its way to a symbolic link count as
	// much as those the link leads through: whoever may write them may put
	// another link in its place.
	t.Run("through a link in a directory others may write", func(t *testing.T) {
		dir := enlistedCopy(t)
		open := filepath.Join(t.TempDir(), "open")
		if err := os.Mkdir(open, 0o755); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(open, "target")
		if err := os.Symlink(dir, link); err != nil {
			t.Fatal(err)
		}
		if err := openTargetDir(link); err != nil {
			t.Fatalf("through a link in a directory of its own: %v", err)
		}
		if os.Geteuid() == 0 { // a link another user owns, which they may replace
			if err := os.Lchown(link, 1, 1); err != nil {
				t.Fatal(err)
			}
			err := openTargetDir(link)
			want := "the link " + link + ", on the way to data directory " + link + ", belongs to " + userName(1)
			if muster.ErrorCode(err) != muster.EFORBIDDEN || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "chown -h root "+link) {
				t.Errorf("got %v (%s), want %s: %s, and the chown that mends it", err, muster.ErrorCode(err), muster.EFORBIDDEN, want)
			}
			if err := os.Lchown(link, 0, 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(open, 0o777); err != nil {
			t.Fatal(err)
		}
		err := openTargetDir(link)
		want := open + ", above data directory " + link + ", may be written by others than its owner (mode drwxrwxrwx)"
		if muster.ErrorCode(err) != muster.EFORBIDDEN || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "chmod go-w "+open) {
			t.Errorf("got %v (%s), want %s: %s, and the chmod that mends it", err, muster.ErrorCode(err), muster.EFORBIDDEN, want)
		}
	})
	t.Run("read-only", func(t *testing.T) {
		dir := enlistedCopy(t)
		if out, err := exec.Command("mount", "--bind", dir, dir).CombinedOutput(); err != nil {
			t.Skipf("cannot bind-mount here: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", dir).Run() })
		if out, err := exec.Command("mount", "-o", "remount,bind,ro", dir).CombinedOutput(); err != nil {
			t.Skipf("cannot remount read-only here: %v: %s", err, out)
		}
		err := openTargetDir(dir)
		if muster.ErrorCode(err) != muster.EPRECONDITION || !strings.Contains(err.Error(), "data directory "+dir+" is on a read-only file system") {
			t.Errorf("got %v (%s), want %s: read-only, naming the directory", err, muster.ErrorCode(err), muster.EPRECONDITION)
		}
	})
}

// A target started as a user who may not write its data directory (made
// by `muster enlist` as root, the daemon run as another user) is refused
// saying whose the directory is and how to set it right.
func TestOpenRefusesADataDirectoryOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the daemon as another user")
	}
	// A copy of this binary, and a data directory, that nobody can reach.
	open, err := os.MkdirTemp("", "muster-datadir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(open) })
	os.Chmod(open, 0o755)
	bin := filepath.Join(open, "agent.test")
	copyFile(t, os.Args[0], bin, 0o755)
	dir := filepath.Join(open, "target")
	tm := startTestMaster(t)
	tm.enlistIn(t, "web1", dir).Close()

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "MUSTER_AGENT_DAEMON="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
		t.Fatalf("exit code %d (%v), want 1; output:\n%s", code, err, out)
	}
	self, arg := "uid 65534", "65534"
	if u, err := user.LookupId("65534"); err == nil {
		self, arg = "user "+u.Username+" (uid 65534)", u.Username
	}
	want := "data directory " + dir + " belongs to user root (uid 0), and this process runs as " + self
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), "chown -R "+arg+" "+dir) {
		t.Errorf("got %s\nwant %q, and the chown that mends it", out, want)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
