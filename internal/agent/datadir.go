package agent

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/musterhq/muster"
)

// checkEnlisted says why the daemon cannot run from dir, before anything
// is made in it: it does not exist or holds no target's store (a mistyped
// --data is not made into an empty target), the store was lost beside the
// enlistment's certificate, or the daemon may not write there.
func checkEnlisted(dir string) error {
	if err := checkWritable(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return notEnlisted(dir)
		}
		return err
	}
	store := filepath.Join(dir, StoreFile)
	fi, err := os.Stat(store)
	lost := "is missing"
	switch {
	case err == nil && fi.IsDir():
		return muster.Errorf(muster.EINVALID, "%s is a directory, not the target's store: move it away and put back a copy of %s taken while the daemon was stopped", store, StoreFile)
	case err == nil && fi.Size() == 0:
		// Emptied, by hand or by a crash on a full disk: with the
		// certificate beside it, the target is still enlisted.
		lost = "is empty"
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, CertFile)); err == nil {
		return muster.Errorf(muster.ENOTFOUND, "%s %s: this directory holds a target's certificate (%s) without its store "+
			"(its jobs, its place in the download list, its runs not yet sent). Put back a copy of %s taken while the daemon was stopped, "+
			"or enlist this server again: `muster target delete NAME --force` on the master, then `muster enlist` with a new data directory",
			store, lost, CertFile, StoreFile)
	}
	return notEnlisted(dir)
}

// checkWritable says why this process may not use dir as a target's data
// directory: it is not a directory, it is on a read-only file system, it
// (or a file of the target's in it) is another user's, or other users may
// write it (checkPrivate). It wraps
// os.ErrNotExist when dir does not exist.
func checkWritable(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return muster.Errorf(muster.EINVALID, "--data: %s is not a directory", dir)
	}
	if err := access(dir, dir, fi, unix.W_OK|unix.X_OK); err != nil { // it makes files there
		return err
	}
	if err := checkPrivate(dir); err != nil {
		return err
	}
	for _, f := range []string{LockFile, StoreFile, StoreFile + "-wal", StoreFile + "-shm", KeyFile, CertFile, CAFile} {
		path := filepath.Join(dir, f)
		if fi, err := os.Stat(path); err == nil {
			if err := access(dir, path, fi, unix.R_OK|unix.W_OK); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkPrivate says why no other user than dir's owner may be let near
// it: it, or a directory above it that is not sticky (as /tmp is), may be
// written by its group or by others, or it, or a directory above it, is
// owned by another user than root and this process's (the owner of a
// directory may rename what is in it, sticky or not, and change its mode),
// who could then rename the target's files away and put their own in
// their place: a store of theirs is jobs the daemon runs, as root; a key, a
// certificate or a control socket of theirs speaks for the target. A step
// run as a proxy is such a user. The directories the path names on its way
// to a symbolic link are checked as well as those it leads through, and a
// link's own owner: whoever may replace a link redirects the path.
func checkPrivate(dir string) error {
	return checkGuarded(dir, "data directory", "could put files of their own in place of the target's store, key or control socket")
}

// checkGuarded is checkPrivate for path, a data directory or a file, named
// in messages as noun; threat says what another user who may write it
// could do ("could put ...").
func checkGuarded(path, noun, threat string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", noun, path, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("%s %s: %w", noun, path, err)
	}
	self := uint32(os.Geteuid())
	checked := map[string]bool{}
	for _, top := range []string{real, abs} {
		for p := top; ; p = filepath.Dir(p) {
			if !checked[p] {
				checked[p] = true
				what, fix := noun+" "+path, path
				if p != top {
					what, fix = p+", above "+noun+" "+path+",", p
				}
				fi, err := os.Stat(p)
				if err != nil {
					return fmt.Errorf("%s %s: %w", noun, path, err)
				}
				if fi.Mode().Perm()&0o022 != 0 && (p == top || fi.Mode()&os.ModeSticky == 0) {
					return muster.Errorf(muster.EFORBIDDEN, "%s may be written by others than its owner (mode %s): they %s, and a step run as a proxy is such another user: chmod go-w %s", what, fi.Mode(), threat, fix)
				}
				if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && st.Uid != self {
					flag := ""
					if p == top && fi.IsDir() {
						flag = "-R "
					}
					return notOwned(what, threat, st.Uid, self, flag, fix)
				}
				if li, err := os.Lstat(p); err == nil && li.Mode()&os.ModeSymlink != 0 {
					if st, ok := li.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && st.Uid != self {
						return notOwned("the link "+p+", on the way to "+noun+" "+path+",", threat, st.Uid, self, "-h ", p)
					}
				}
			}
			if p == filepath.Dir(p) {
				break
			}
		}
	}
	return nil
}

// notOwned is checkGuarded's refusal of what another user owns.
func notOwned(what, threat string, owner, self uint32, flag, path string) error {
	return muster.Errorf(muster.EFORBIDDEN, "%s belongs to %s, not to %s, who runs the target, nor to root: its owner %s: chown %s%s %s",
		what, userName(int(owner)), userName(int(self)), threat, flag, userArg(int(self)), path)
}

// access checks that this process may use path (dir, or a file in it) as
// mode asks (access(2)), and says how to set it right when it may not.
func access(dir, path string, fi os.FileInfo, mode uint32) error {
	err := unix.Access(path, mode)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EROFS):
		return muster.Errorf(muster.EPRECONDITION, "data directory %s is on a read-only file system; the target writes its store there: mount it read-write, or enlist with a data directory that is", dir)
	case !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EPERM):
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	what := "data directory " + dir
	if path != dir {
		what = path
	}
	self := os.Geteuid()
	owner := -1
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		owner = int(st.Uid)
	}
	if owner == self {
		return muster.Errorf(muster.EFORBIDDEN, "%s is not readable and writable by its owner, %s, who runs this process (mode %s): chmod -R u+rwX %s", what, userName(self), fi.Mode(), dir)
	}
	return muster.Errorf(muster.EFORBIDDEN, "%s belongs to %s, and this process runs as %s: run the target as its owner, or give the directory to this user: chown -R %s %s",
		what, userName(owner), userName(self), userArg(self), dir)
}

// userName is a uid as a message names it: "user root (uid 0)", or
// "uid 1234" for a uid without a name.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("user %s (uid %d)", u.Username, uid)
	}
	return "uid " + strconv.Itoa(uid)
}

// userArg is a uid as chown takes it: its name, or its number.
func userArg(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}
