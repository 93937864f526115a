package httpapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// Client calls the operator API.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
	// roots and caFrom say which CA the master is verified against, and
	// where it came from, to explain a master that cannot be verified.
	roots  *x509.CertPool
	caFrom string
}

// NewClient returns a client for the master at addr (https://host:port),
// authenticating with token and verifying the master against roots. An
// addr it cannot use is an EINVALID error whose message the caller prefixes
// with where addr came from (a flag, a variable).
func NewClient(addr, token string, roots *x509.CertPool) (*Client, error) {
	if !strings.Contains(addr, "://") {
		addr = "https://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return nil, muster.Errorf(muster.EINVALID, "%q is not a master address such as https://127.0.0.1:7070", addr)
	}
	if u.Scheme != "https" {
		return nil, muster.Errorf(muster.EINVALID, "the master speaks HTTPS only; use https://%s", u.Host)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	return &Client{base: u, token: token, http: &http.Client{Transport: tr}, roots: roots}, nil
}

// SetCASource names where the client's CA came from (a flag, a variable),
// in the error for a master its certificate does not verify.
func (c *Client) SetCASource(from string) { c.caFrom = from }

// URL is the master's address as the client reaches it, with its scheme
// (https://127.0.0.1:7070 when it was given as 127.0.0.1:7070).
func (c *Client) URL() string { return c.base.String() }

// do sends a request and decodes a JSON reply into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	return c.send(ctx, method, path, query, body, out, nil)
}

// send is do, keeping the reply's header in reply when it is not nil.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body, out any, reply http.Header) error {
	if strings.Contains(path, "//") || strings.HasSuffix(path, "/") {
		// An empty name, which the joining below would drop, sending the
		// request to another route.
		return muster.Errorf(muster.EINVALID, "a name is required: %s %s names none", method, path)
	}
	u := c.base.JoinPath(path)
	u.RawQuery = query.Encode()
	err := jsonhttp.Do(ctx, c.http, jsonhttp.Request{Method: method, URL: u.String(), In: body, Out: out,
		Header: http.Header{"Authorization": {"Bearer " + c.token}}, ReplyHeader: reply})
	return c.explain(err)
}

// segment escapes a name as one segment of a path. A name of dots alone
// ("." or "..") is escaped too: as it is, it would be read as a dot
// segment of the path and take the request to another route.
func segment(name string) string {
	if strings.Trim(name, ".") == "" {
		return strings.Repeat("%2E", len(name))
	}
	return url.PathEscape(name)
}

// explain turns a request that got no answer, or a reply the connection
// cut short (the master stopping as it answered), into advice: the master
// is unavailable, and a command that waits carries on.
func (c *Client) explain(err error) error {
	var te *jsonhttp.TransportError
	if errors.As(err, &te) {
		return c.explainTransport(te.Err)
	}
	var re *jsonhttp.ReplyError
	var netErr net.Error
	if errors.As(err, &re) && muster.ErrorCode(err) == muster.EINTERNAL &&
		(errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &netErr) || errors.Is(err, syscall.ECONNRESET)) {
		return muster.Wrap(muster.EUNAVAILABLE, err, "cannot reach the master at %s: its reply was cut short; is `muster master` running there?", c.base.Host)
	}
	return err
}

// page reads a page of a list into out, and returns the cursor of the
// next page: empty on the last.
func (c *Client) page(ctx context.Context, path string, query url.Values, out any) (string, error) {
	h := http.Header{}
	err := c.send(ctx, http.MethodGet, path, query, nil, out, h)
	return nextCursor(h), err
}

// explainTransport turns a connection failure into advice.
func (c *Client) explainTransport(err error) error {
	host := c.base.Host
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var opErr *net.OpError
	switch {
	case errors.As(err, &unknownAuth) && c.roots == nil:
		return muster.Errorf(muster.EUNAVAILABLE, "cannot verify the master at %s: no CA was given, and its certificate is not signed by one this system trusts; set MUSTER_CACERT (or --cacert) to the master's ca.pem", host)
	case errors.As(err, &unknownAuth):
		ca := "the CA given"
		if c.caFrom != "" {
			ca = "the CA in " + c.caFrom
		}
		return muster.Errorf(muster.EUNAVAILABLE, "cannot verify the master at %s: its certificate is not signed by %s; set MUSTER_CACERT (or --cacert) to this master's ca.pem", host, ca)
	case errors.As(err, &hostErr):
		return muster.Errorf(muster.EUNAVAILABLE, "the master's certificate does not cover %s; start the master with --host %s, or use an address it covers", host, hostErr.Host)
	case errors.As(err, &opErr):
		return muster.Errorf(muster.EUNAVAILABLE, "cannot reach the master at %s: %v; is `muster master` running there?", host, opErr.Err)
	}
	return muster.Errorf(muster.EUNAVAILABLE, "request to the master at %s failed: %v", host, err)
}

// Targets lists enlisted targets, optionally only those with a status flag.
func (c *Client) Targets(ctx context.Context, status string) ([]muster.Target, error) {
	var out []muster.Target
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	return out, c.do(ctx, http.MethodGet, "/api/v1/targets", q, nil, &out)
}

// Target returns one target.
func (c *Client) Target(ctx context.Context, name string) (muster.Target, error) {
	var out muster.Target
	return out, c.do(ctx, http.MethodGet, "/api/v1/targets/"+segment(name), nil, nil, &out)
}

// UpdateTarget changes a target's location or description, and returns
// the target as it is after.
func (c *Client) UpdateTarget(ctx context.Context, name string, u TargetUpdate) (muster.Target, error) {
	var out muster.Target
	return out, c.do(ctx, http.MethodPatch, "/api/v1/targets/"+segment(name), nil, u, &out)
}

// DeleteTarget deletes a target: with force, at once; otherwise it becomes
// a tombstone until it collects the DEFECT posted to it.
func (c *Client) DeleteTarget(ctx context.Context, name string, force bool) error {
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	return c.do(ctx, http.MethodDelete, "/api/v1/targets/"+segment(name), q, nil, nil)
}

// CreateToken makes a single-use enlistment token for a target name.
func (c *Client) CreateToken(ctx context.Context, target string, ttl time.Duration) (TokenResponse, error) {
	var out TokenResponse
	return out, c.do(ctx, http.MethodPost, "/api/v1/tokens", nil, TokenRequest{Target: target, TTLSeconds: int(ttl / time.Second)}, &out)
}

// Jobs lists jobs.
func (c *Client) Jobs(ctx context.Context) ([]muster.JobStatus, error) {
	return c.JobsInCategory(ctx, "")
}

// JobsInCategory lists the jobs of one category (any case), or every job
// for "".
func (c *Client) JobsInCategory(ctx context.Context, category string) ([]muster.JobStatus, error) {
	q := url.Values{}
	if category != "" {
		q.Set("category", category)
	}
	var out []muster.JobStatus
	return out, c.do(ctx, http.MethodGet, "/api/v1/jobs", q, nil, &out)
}

// Job returns one job.
func (c *Client) Job(ctx context.Context, name string) (muster.JobStatus, error) {
	var out muster.JobStatus
	return out, c.do(ctx, http.MethodGet, "/api/v1/jobs/"+segment(name), nil, nil, &out)
}

// Apply creates or updates jobs.
func (c *Client) Apply(ctx context.Context, req ApplyRequest) (muster.ApplyResult, error) {
	var out muster.ApplyResult
	return out, c.do(ctx, http.MethodPost, "/api/v1/apply", nil, req, &out)
}

// DeleteJob deletes a job.
func (c *Client) DeleteJob(ctx context.Context, name string) (muster.JobChange, error) {
	var out muster.JobChange
	return out, c.do(ctx, http.MethodDelete, "/api/v1/jobs/"+segment(name), nil, nil, &out)
}

// SetJobEnabled enables or disables a job.
func (c *Client) SetJobEnabled(ctx context.Context, name string, enabled bool) (muster.JobChange, error) {
	verb := "disable"
	if enabled {
		verb = "enable"
	}
	var out muster.JobChange
	return out, c.do(ctx, http.MethodPost, "/api/v1/jobs/"+segment(name)+"/"+verb, nil, struct{}{}, &out)
}

// StartJob starts a job. The request carries an idempotency key; network
// failures are retried with the same key, so a lost reply never starts the
// job twice.
func (c *Client) StartJob(ctx context.Context, name string, body StartBody) (muster.StartResult, error) {
	if body.IdempotencyKey == "" {
		body.IdempotencyKey = NewIdempotencyKey()
	}
	var out muster.StartResult
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = c.do(ctx, http.MethodPost, "/api/v1/jobs/"+segment(name)+"/start", nil, body, &out)
		if muster.ErrorCode(err) != muster.EUNAVAILABLE {
			return out, err
		}
		select {
		case <-ctx.Done():
			return out, err
		case <-time.After(time.Duration(200*(attempt+1)) * time.Millisecond):
		}
	}
	return out, err
}

// StopJob stops a job's running runs on its targets (all, or those named).
func (c *Client) StopJob(ctx context.Context, name string, targets []string) (muster.JobChange, error) {
	var out muster.JobChange
	return out, c.do(ctx, http.MethodPost, "/api/v1/jobs/"+segment(name)+"/stop", nil, StopBody{Targets: targets}, &out)
}

// NextFires previews a job's next fires on each of its targets.
func (c *Client) NextFires(ctx context.Context, name string, count int) ([]muster.TargetFires, error) {
	var out []muster.TargetFires
	return out, c.do(ctx, http.MethodGet, "/api/v1/jobs/"+segment(name)+"/next", url.Values{"count": {strconv.Itoa(count)}}, nil, &out)
}

// Rollouts returns a job's rollouts, newest first.
func (c *Client) Rollouts(ctx context.Context, job string) ([]muster.Rollout, error) {
	var out []muster.Rollout
	return out, c.do(ctx, http.MethodGet, "/api/v1/jobs/"+segment(job)+"/rollouts", nil, nil, &out)
}

// Rollout returns one of a job's rollouts.
func (c *Client) Rollout(ctx context.Context, job string, id int64) (muster.Rollout, error) {
	var out muster.Rollout
	return out, c.do(ctx, http.MethodGet, "/api/v1/jobs/"+segment(job)+"/rollouts/"+strconv.FormatInt(id, 10), nil, nil, &out)
}

// PurgeHistory deletes runs.
func (c *Client) PurgeHistory(ctx context.Context, body PurgeBody) (muster.PurgeResult, error) {
	var out muster.PurgeResult
	return out, c.do(ctx, http.MethodPost, "/api/v1/history/purge", nil, body, &out)
}

// History returns a job's runs, newest first.
func (c *Client) History(ctx context.Context, job, target string, limit int) ([]muster.Run, error) {
	out, _, err := c.HistoryPage(ctx, job, target, limit, "")
	return out, err
}

// HistoryPage returns a page of a job's runs, newest first, from cursor
// on (the first page when it is empty), and the cursor of the next page:
// empty on the last.
func (c *Client) HistoryPage(ctx context.Context, job, target string, limit int, cursor string) ([]muster.Run, string, error) {
	q := filterQuery(map[string]string{"target": target, "cursor": cursor}, limit)
	var out []muster.Run
	next, err := c.page(ctx, "/api/v1/jobs/"+segment(job)+"/history", q, &out)
	return out, next, err
}

// Runs returns the named runs; with wait > 0 the master holds the reply
// until all are finished or wait passes. A ref without a target finds its
// run id on every target.
func (c *Client) Runs(ctx context.Context, refs []muster.RunRef, wait time.Duration) ([]muster.Run, error) {
	q := runQuery(refs)
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var out []muster.Run
	return out, c.do(ctx, http.MethodGet, "/api/v1/runs", q, nil, &out)
}

// RunsFilter selects runs: by target and id, or a job's newest (on one
// target, if given; at most Limit, 20 by default).
type RunsFilter struct {
	Runs        []muster.RunRef
	Job, Target string
	Limit       int
}

// WatchRuns returns the runs f selects, with the ETag of the reply. Given
// the ETag of an earlier reply, it waits up to wait for them to differ from
// it (a new run, a new status, more output) and reports whether they did;
// when they did not, runs is nil.
func (c *Client) WatchRuns(ctx context.Context, f RunsFilter, etag string, wait time.Duration) (runs []muster.Run, newTag string, changed bool, err error) {
	q := runQuery(f.Runs)
	if f.Job != "" {
		q.Set("job", f.Job)
	}
	if f.Target != "" {
		q.Set("target", f.Target)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	u := c.base.JoinPath("/api/v1/runs")
	u.RawQuery = q.Encode()
	h := http.Header{"Authorization": {"Bearer " + c.token}}
	if etag != "" {
		h.Set("If-None-Match", etag)
	}
	reply := http.Header{}
	err = jsonhttp.Do(ctx, c.http, jsonhttp.Request{Method: http.MethodGet, URL: u.String(), Header: h, Out: &runs, ReplyHeader: reply})
	if err != nil {
		return nil, etag, false, c.explain(err)
	}
	newTag = reply.Get("ETag")
	return runs, newTag, newTag != etag, nil
}

// runQuery names runs in a query: TARGET:RUN_ID, or a bare RUN_ID.
func runQuery(refs []muster.RunRef) url.Values {
	q := url.Values{}
	for _, r := range refs {
		if r.Target == "" {
			q.Add("run", r.RunID)
		} else {
			q.Add("run", r.String())
		}
	}
	return q
}

// DownloadListFilter selects download-list entries. Seq, with Target,
// names one instruction.
type DownloadListFilter struct {
	Target, Job, Operation string
	Pending, Errors        bool
	Seq                    int64
	Limit                  int
	// Cursor reads on after the page that named it as its next.
	Cursor string
}

// DownloadList lists a page of instructions: the newest, by target then
// sequence number.
func (c *Client) DownloadList(ctx context.Context, f DownloadListFilter) ([]muster.Instruction, error) {
	out, _, err := c.DownloadListPage(ctx, f)
	return out, err
}

// DownloadListPage lists a page of instructions, the newest (after
// f.Cursor's page) by target then sequence number, and returns the
// cursor of the next page: empty on the last.
func (c *Client) DownloadListPage(ctx context.Context, f DownloadListFilter) ([]muster.Instruction, string, error) {
	q := url.Values{}
	for k, v := range map[string]string{"target": f.Target, "job": f.Job, "operation": f.Operation, "cursor": f.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Pending {
		q.Set("pending", "true")
	}
	if f.Errors {
		q.Set("errors", "true")
	}
	if f.Seq > 0 {
		q.Set("seq", strconv.FormatInt(f.Seq, 10))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out []muster.Instruction
	next, err := c.page(ctx, "/api/v1/downloadlist", q, &out)
	return out, next, err
}

// RetryInstruction reposts a failed instruction.
func (c *Client) RetryInstruction(ctx context.Context, target string, seq int64) (muster.Instruction, error) {
	var out muster.Instruction
	return out, c.do(ctx, http.MethodPost, fmt.Sprintf("/api/v1/downloadlist/%d/retry", seq), targetQuery(target), struct{}{}, &out)
}

// DeleteInstruction deletes a pending or failed instruction.
func (c *Client) DeleteInstruction(ctx context.Context, target string, seq int64) error {
	return c.do(ctx, http.MethodDelete, fmt.Sprintf("/api/v1/downloadlist/%d", seq), targetQuery(target), nil, nil)
}

func targetQuery(target string) url.Values {
	q := url.Values{}
	if target != "" {
		q.Set("target", target)
	}
	return q
}
