package agent

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/musterhq/muster"
)

// ErrDefected is returned by Run when the target has defected: its
// enlistment is gone and the daemon has nothing left to do.
var ErrDefected = errors.New("the target has defected from its master")

// ControlSocket is the Unix socket in the data directory through which
// `muster defect` reaches a running daemon. Only the directory's owner can
// use it.
const ControlSocket = "control.sock"

// defectRequest asks the running daemon to defect.
type defectRequest struct {
	force bool              // defect locally even if the master cannot be told
	by    string            // who asked: the operator, or the master's DEFECT
	done  chan DefectResult // receives the result; nil when nobody waits (the master's DEFECT)
}

// Who asks for a defect.
const (
	byOperator = "operator"
	byMaster   = "master"
)

// defectAsked hands the master's DEFECT to Run, which defects once every
// loop has stopped. It never blocks: a DEFECT already handed over and not
// yet taken stands for this one too.
func (m *Main) defectAsked() {
	select {
	case m.masterDefect <- struct{}{}:
	default:
	}
}

// DefectResult says what a defect did.
type DefectResult struct {
	Master       string `json:"master"`
	Target       string `json:"target"` // the name it was enlisted under
	JobsDeleted  int    `json:"jobs_deleted"`
	RunsCanceled int    `json:"runs_canceled"`
	RunsLost     int    `json:"runs_lost"`   // spooled runs the master never received
	MasterTold   bool   `json:"master_told"` // false after a forced defect with the master unreachable
	Error        string `json:"error,omitempty"`
}

// requestDefect hands a defect request to Run and waits for the result.
func (m *Main) requestDefect(ctx context.Context, force bool, by string) DefectResult {
	req := defectRequest{force: force, by: by, done: make(chan DefectResult, 1)}
	select {
	case m.defectReq <- req:
	case <-ctx.Done():
		return DefectResult{Error: ctx.Err().Error()}
	}
	select {
	case res := <-req.done:
		return res
	case <-ctx.Done():
		return DefectResult{Error: ctx.Err().Error()}
	}
}

// defectNow leaves the master. Every loop is stopped and running runs have
// been canceled and recorded before it is called. It sends owed acks and
// the spool, tells the master, then deletes the master's jobs, the spool
// and the enlistment. Without force, a master that cannot be told aborts
// the defect and changes nothing locally.
func (m *Main) defectNow(ctx context.Context, force, byMaster bool) DefectResult {
	res := DefectResult{Master: m.Master(), Target: m.Name()}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := m.flushAcks(ctx); err != nil && !force {
		res.Error = fmt.Sprintf("the master at %s cannot be reached: %v; run again with --force to defect anyway", res.Master, err)
		return res
	}
	// A deleted target's uploads are refused; its runs are lost either way.
	if err := m.uploadOnce(ctx); err != nil && !force && muster.ErrorCode(err) != muster.EGONE {
		res.Error = fmt.Sprintf("the spool could not be sent to the master at %s: %v; run again with --force to defect anyway (its runs are then lost)", res.Master, err)
		return res
	}
	// A DEFECT from the master was acknowledged above: the master knows.
	if byMaster {
		res.MasterTold = true
	} else if err := m.client.defect(ctx); err != nil {
		if !force {
			res.Error = fmt.Sprintf("the master at %s cannot be told: %v; run again with --force to defect anyway", res.Master, err)
			return res
		}
		m.log.Warn("defecting without telling the master; run `muster target delete "+m.Name()+" --force` there", muster.LogErr, err)
	} else {
		res.MasterTold = true
	}
	jobs, lost, err := m.store.wipe(ctx)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.JobsDeleted, res.RunsLost = jobs, lost
	for _, f := range []string{KeyFile, CertFile, CAFile, nextKeyFile, nextCertFile} {
		if err := os.Remove(filepath.Join(m.cfg.DataDir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			res.Error = err.Error()
			return res
		}
	}
	m.log.Info("defected", muster.LogMaster, res.Master, "jobs_deleted", jobs, "runs_lost", lost)
	return res
}

// wipe deletes everything the master gave this target, and the enlistment,
// in one transaction. It returns how many jobs were deleted and how many
// spooled runs the master never received.
func (s *store) wipe(ctx context.Context) (jobs, lost int, err error) {
	err = s.update(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM jobs`).Scan(&jobs); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs WHERE revision > uploaded_revision`).Scan(&lost); err != nil {
			return err
		}
		for _, table := range []string{"jobs", "output", "runs", "acks", "schedule_state", "state"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table); err != nil {
				return err
			}
		}
		return nil
	})
	return jobs, lost, err
}

// serveControl answers `muster defect` on the control socket until ctx is
// done.
func (m *Main) serveControl(ctx context.Context) {
	path := filepath.Join(m.cfg.DataDir, ControlSocket)
	os.Remove(path) // a stale socket from a process that died
	ln, err := net.Listen("unix", path)
	if err != nil {
		m.log.Warn("no control socket; `muster defect` needs the daemon stopped", muster.LogErr, err)
		return
	}
	os.Chmod(path, 0o600)
	// One route, matched by hand: a ServeMux records where each of its
	// patterns was registered, which reads the binary's line tables into
	// memory in every target process for an endpoint seldom called.
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/defect" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "only POST", http.StatusMethodNotAllowed)
			return
		}
		force, _ := strconv.ParseBool(r.URL.Query().Get("force"))
		res := m.requestDefect(r.Context(), force, byOperator)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(res)
	})}
	go func() {
		<-ctx.Done()
		// Shutdown, not Close: the answer to a defect is written after
		// Run has begun to stop.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	srv.Serve(ownersOnly{ln})
	os.Remove(path)
}

// ownersOnly accepts connections from root and from the daemon's own
// user only, as the kernel reports them (SO_PEERCRED): the socket's mode
// says as much once it is set, and this holds from the moment it listens,
// whatever the umask made it before.
type ownersOnly struct{ net.Listener }

func (l ownersOnly) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if uid, ok := peerUID(c); ok && (uid == 0 || uid == os.Geteuid()) {
			return c, nil
		}
		c.Close()
	}
}

// peerUID is the user of the process at the other end of a Unix socket.
func peerUID(c net.Conn) (int, bool) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return 0, false
	}
	return int(cred.Uid), true
}

// Defect makes the target in cfg.DataDir leave its master. If the daemon is
// running, it is asked through its control socket and stops once defected;
// otherwise the defect is done here. With force, it defects locally even
// when the master cannot be told (the master must then be told with
// `muster target delete NAME --force`).
func Defect(ctx context.Context, cfg Config, force bool) (DefectResult, error) {
	m, err := New(cfg)
	if err != nil {
		return DefectResult{}, err
	}
	// A directory without a target's store (missing, mistyped, or never
	// enlisted) has nothing to defect; nothing is made in it (SQL
	// Server's 14298).
	if _, err := os.Stat(filepath.Join(cfg.DataDir, StoreFile)); errors.Is(err, os.ErrNotExist) {
		return DefectResult{}, notEnlisted(cfg.DataDir)
	}
	if lock, err := lockDir(cfg.DataDir); err != nil {
		// The daemon holds the directory: ask it.
		return defectRunning(ctx, cfg.DataDir, force, err)
	} else {
		unlockDir(lock)
	}
	if err := m.Open(ctx); err != nil {
		return DefectResult{}, err
	}
	defer m.Close()
	res := m.defectNow(ctx, force, false)
	if res.Error != "" {
		return res, errors.New(res.Error)
	}
	return res, nil
}

// How long, and how often, `muster defect` asks again a daemon that holds
// its data directory but does not answer on its control socket yet.
const (
	controlWait       = 30 * time.Second
	controlRetryEvery = 50 * time.Millisecond
)

// controlRetried is called, when set (by tests), each time the control
// socket is found not listening, before it is asked again.
var controlRetried func()

// notListening reports whether err says nothing listens on the control
// socket: it is missing, or left by a daemon that died.
func notListening(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED)
}

// defectRunning asks a running daemon to defect.
func defectRunning(ctx context.Context, dir string, force bool, lockErr error) (DefectResult, error) {
	path := filepath.Join(dir, ControlSocket)
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://muster/defect?force="+strconv.FormatBool(force), nil)
	if err != nil {
		return DefectResult{}, err
	}
	resp, err := hc.Do(req)
	// A daemon that is starting holds the directory before it listens on
	// the socket (its store is opened first, its migrations applied): the
	// socket is missing, or a dead daemon's is left that nobody answers.
	// It is asked again until it listens, for as long as a start takes at
	// most and while the directory stays held.
	for wait := time.Now().Add(controlWait); err != nil && notListening(err) && time.Now().Before(wait); {
		if controlRetried != nil {
			controlRetried()
		}
		if !sleep(ctx, controlRetryEvery) {
			return DefectResult{}, context.Cause(ctx)
		}
		if holderGone(dir) {
			return DefectResult{}, fmt.Errorf("the daemon that held data directory %s stopped before its control socket answered; run the command again", dir)
		}
		resp, err = hc.Do(req)
	}
	if err != nil {
		return DefectResult{}, fmt.Errorf("%v, and its control socket does not answer (%v)", lockErr, err)
	}
	defer resp.Body.Close()
	var res DefectResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return res, err
	}
	if res.Error != "" {
		return res, errors.New(res.Error)
	}
	return res, nil
}
