package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// A DEFECT applied while no Run takes it (the daemon is stopping) leaves
// no goroutine waiting behind: it is handed over without one, and a later
// Run defects.
func TestMasterDefectHasAnOwner(t *testing.T) {
	tm := startTestMaster(t)
	m := tm.enlist(t, "web1")
	ctx := context.Background()
	before := goleak.IgnoreCurrent()
	if _, err := m.apply(ctx, agentproto.Instruction{Seq: 1, Operation: muster.OpDefect}, time.Now()); !errors.Is(err, errDefecting) {
		t.Fatalf("apply DEFECT: %v, want errDefecting", err)
	}
	m.client.close() // the ack's keep-alive connection is not the daemon's goroutine
	goleak.VerifyNone(t, before)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := m.Run(rctx); !errors.Is(err, ErrDefected) {
		t.Errorf("Run after a DEFECT was applied: %v, want ErrDefected", err)
	}
}

// A target the master deletes collects its DEFECT and defects.
func TestDeletedTargetDefects(t *testing.T) {
	tm := startTestMaster(t)
	m := tm.enlist(t, "web1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	if err := tm.api.DeleteTarget(ctx, "web1", false); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrDefected) {
		t.Fatalf("Run: %v, want ErrDefected", err)
	}
	if _, ok, err := m.store.enlistment(ctx); err != nil || ok {
		t.Errorf("after the defect the enlistment is still there (%v)", err)
	}
}

// Defecting a directory that is not enlisted (SQL Server's 14298) says
// so, whether the directory is missing (a mistyped --data) or holds no
// target, and leaves nothing behind in it.
func TestDefectOfADirectoryNotEnlisted(t *testing.T) {
	empty := t.TempDir()
	for _, dir := range []string{filepath.Join(t.TempDir(), "no-such-dir"), empty} {
		cfg := DefaultConfig()
		cfg.DataDir = dir
		_, err := Defect(context.Background(), cfg, false)
		if muster.ErrorCode(err) != muster.ENOTFOUND || !strings.Contains(err.Error(), dir+" is not enlisted in a master") {
			t.Errorf("defect of %s: %v (code %q), want ENOTFOUND saying it is not enlisted", dir, err, muster.ErrorCode(err))
		}
	}
	if left, _ := os.ReadDir(empty); len(left) > 0 {
		t.Errorf("a defect that found nothing to defect left %v behind", left)
	}
}

// `muster defect` run while the daemon starts, after it took its data
// directory and before it listens on its control socket, waits for the
// socket rather than failing.
func TestDefectWaitsForAStartingDaemon(t *testing.T) {
	dir := t.TempDir()
	lock, err := lockDir(dir) // the starting daemon
	if err != nil {
		t.Fatal(err)
	}
	defer unlockDir(lock)
	_, lockErr := lockDir(dir)
	if lockErr == nil {
		t.Fatal("the directory could be locked twice")
	}
	tries := 0
	var srv *http.Server
	controlRetried = func() {
		if tries++; tries == 2 { // the daemon listens at last
			ln, err := net.Listen("unix", filepath.Join(dir, ControlSocket))
			if err != nil {
				t.Error(err)
				return
			}
			srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				json.NewEncoder(w).Encode(DefectResult{Target: "db1", MasterTold: true})
			})}
			go srv.Serve(ln)
		}
	}
	defer func() { controlRetried = nil }()
	res, err := defectRunning(context.Background(), dir, false, lockErr)
	if srv != nil {
		defer srv.Close()
	}
	if err != nil {
		t.Fatalf("defect while the daemon starts: %v", err)
	}
	if res.Target != "db1" || !res.MasterTold {
		t.Errorf("result %+v, want the daemon's answer", res)
	}
	if tries != 2 {
		t.Errorf("the socket was found not listening %d times, want 2", tries)
	}
}

// A daemon that stops before it listens leaves `muster defect` saying so,
// not waiting on.
func TestDefectStopsWaitingWhenTheDaemonStops(t *testing.T) {
	dir := t.TempDir()
	lock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, lockErr := lockDir(dir)
	if lockErr == nil {
		t.Fatal("the directory could be locked twice")
	}
	// The daemon's process, which exits: its pid stays in the lock file.
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	tries := 0
	controlRetried = func() {
		if tries++; tries == 1 {
			unlockDir(lock)
			if err := os.WriteFile(filepath.Join(dir, LockFile), []byte(strconv.Itoa(exited.Process.Pid)+"\n"), 0o600); err != nil {
				t.Error(err)
			}
		}
	}
	defer func() { controlRetried = nil }()
	_, err = defectRunning(context.Background(), dir, false, lockErr)
	if err == nil || !strings.Contains(err.Error(), "stopped before its control socket answered") {
		t.Fatalf("defect after the daemon stopped: %v, want it said to have stopped", err)
	}
	if tries != 1 {
		t.Errorf("the socket was found not listening %d times, want 1", tries)
	}
}

// The control socket answers root and the daemon's own user only, whatever
// its mode: another local user cannot make the target defect, even in the
// instant between the socket's creation and its chmod, under a permissive
// umask.
func TestControlSocketAnswersItsOwnersOnly(t *testing.T) {
	post := func(path string) (int, error) {
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
		resp, err := hc.Post("http://muster/defect", "", nil)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if path := os.Getenv("MUSTER_TEST_CONTROL_SOCKET"); path != "" { // as another user
		if status, err := post(path); err == nil {
			t.Errorf("another user's request was answered %d; want the connection refused", status)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("connecting as another user needs root")
	}
	if u, err := user.Lookup("daemon"); err != nil || u.Uid != "1" {
		t.Skipf("no user daemon (uid 1) here: %v", err)
	}
	dir := openDir(t)
	path := filepath.Join(dir, ControlSocket)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o777); err != nil { // as a umask of 0 leaves it, until the chmod
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ownersOnly{ln}) }()
	defer func() { srv.Close(); <-served }()
	if status, err := post(path); err != nil || status != http.StatusOK {
		t.Fatalf("root's request: %d, %v; want it answered", status, err)
	}
	bin := filepath.Join(dir, "agent.test")
	copyFile(t, os.Args[0], bin, 0o755)
	cmd := exec.Command(bin, "-test.run=^TestControlSocketAnswersItsOwnersOnly$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MUSTER_TEST_CONTROL_SOCKET="+path, "TMPDIR="+dir, "HOME="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1, Gid: 1}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("as the user daemon: %v\n%s", err, out)
	}
}
