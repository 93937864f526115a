package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/httpapi"
)

// ConsoleResult is the console scenario's report: how long each page of
// the web console takes to answer, signed in, on a master with a fleet of
// simulated targets, jobs aimed at groups of them, and a run of every job
// on every target.
type ConsoleResult struct {
	Scenario   string `json:"scenario"`
	Backend    string `json:"backend"`
	Targets    int    `json:"targets"`
	TargetMode string `json:"target_mode"`
	Jobs       int    `json:"jobs"`
	Runs       int    `json:"runs"` // runs recorded on the master
	// Pages are the pages timed, each fetched Samples times in turn.
	Pages   []PageTiming `json:"pages"`
	Samples int          `json:"samples"`
	// BudgetMS is the budget of every page's p99.
	BudgetMS float64 `json:"budget_ms"`
	Verdict
}

// consoleBudgetTargets is the fleet the console's page budget is set for.
const consoleBudgetTargets = 1000

func (r *ConsoleResult) limits() []limit {
	full := r.Targets >= consoleBudgetTargets
	var l []limit
	for i, p := range r.Pages {
		l = append(l, atMost(fmt.Sprintf("pages[%d].latency.p99_ms", i), "GET "+p.Page+" p99", p.Latency.P99, r.BudgetMS, "ms").
			at(full, "1,000 targets and 100 jobs"))
	}
	return l
}

// PageTiming is one page's response times (the whole body read).
type PageTiming struct {
	Page    string  `json:"page"`
	Bytes   int     `json:"bytes"`
	Latency Summary `json:"latency"`
	// MasterCPUMS is the master's CPU time per fetch, in milliseconds:
	// steadier than the latency on a machine shared with other work.
	MasterCPUMS float64 `json:"master_cpu_ms"`
}

// budgetConsolePage is the most a console page may take, at p99.
const budgetConsolePage = 200.0

// consoleGroups is how many groups the console scenario's targets are in;
// each job is aimed at one of them.
const consoleGroups = 10

func consolePages(ctx context.Context, e *env) (Result, error) {
	if e.o.Mode == ModeProcess {
		return nil, fmt.Errorf("--mode process: the console scenario's fleet is simulated targets")
	}
	n, jobs, samples := or(e.o.Targets, 1000), or(e.o.Jobs, 100), or(e.o.Runs, 30)
	if n < consoleGroups {
		return nil, fmt.Errorf("--targets: at least %d, one a group", consoleGroups)
	}
	m, err := e.startMaster(ctx)
	if err != nil {
		return nil, err
	}
	sims, err := e.startSimTargets(ctx, m, n, newRecorder())
	if err != nil {
		return nil, err
	}
	names := targetNames(n)
	e.progress("%d groups, %d jobs aimed at them", consoleGroups, jobs)
	groupOf := func(i int) string { return fmt.Sprintf("group-%02d", i%consoleGroups) }
	members := map[string][]string{}
	for i, name := range names {
		members[groupOf(i)] = append(members[groupOf(i)], name)
	}
	for g, targets := range members {
		if err := m.Client.CreateGroup(ctx, g); err != nil {
			return nil, err
		}
		if _, err := m.Client.GroupMembers(ctx, g, targets, false); err != nil {
			return nil, err
		}
	}
	var defs []muster.Job
	for j := range jobs {
		job := shellJob(fmt.Sprintf("job-%03d", j), "echo done", nil)
		job.Groups = []string{groupOf(j)}
		job.Schedules = []muster.Schedule{{Name: "nightly", Cron: fmt.Sprintf("%d 2 * * *", j%60)}}
		defs = append(defs, job)
	}
	if err := applyJobs(ctx, m, defs...); err != nil {
		return nil, err
	}
	// Every target reports a run of each of its jobs; one in ten failed.
	e.progress("each target uploads a run of each of its jobs")
	at := time.Now().Add(-time.Minute)
	runs := 0
	for i := range names {
		for j := i % consoleGroups; j < jobs; j += consoleGroups {
			runs++
		}
	}
	err = parallel(ctx, n, 32, func(ctx context.Context, i int) error {
		var batch []agentproto.RunReport
		for j := i % consoleGroups; j < jobs; j += consoleGroups {
			status := muster.RunSucceeded
			if (i+j)%10 == 0 {
				status = muster.RunFailed
			}
			batch = append(batch, consoleRun(names[i], fmt.Sprintf("job-%03d", j), status, at))
		}
		err := sims[i].upload(ctx, batch)
		// The upload's connection is not needed again: a fleet of 10,000
		// keeps only its polls open.
		sims[i].hc.CloseIdleConnections()
		return err
	})
	if err != nil {
		return nil, err
	}
	c, err := signIn(ctx, m)
	if err != nil {
		return nil, err
	}
	first := url.PathEscape(names[0])
	pages := []string{"/fleet", "/fleet?page=5", "/fleet?status=normal&group=group-03", "/fleet?q=" + url.QueryEscape(names[n/2]),
		"/targets/" + first, "/jobs", "/jobs?failed=1", "/jobs?group=group-03&page=2", "/jobs/job-000",
		"/runs/" + first + "/" + url.PathEscape(consoleRunID(names[0], "job-000")), "/events", "/audit", "/alerts", "/keys"}
	res := &ConsoleResult{Scenario: "console", Backend: storeName(e.o.Store), Targets: n, TargetMode: ModeSim, Jobs: jobs, Runs: runs,
		Samples: samples, BudgetMS: budgetConsolePage}
	e.progress("timing %d pages, %d times each", len(pages), samples)
	for _, page := range pages {
		var lat []time.Duration
		size := 0
		before, err := ReadProc(m.Pid())
		if err != nil {
			return nil, err
		}
		for range samples {
			t := time.Now()
			b, err := fetch(ctx, c, m.URL+page)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", page, err)
			}
			lat = append(lat, time.Since(t))
			size = b
		}
		after, err := ReadProc(m.Pid())
		if err != nil {
			return nil, err
		}
		cpu := float64((after.CPU-before.CPU)/time.Microsecond) / 1e3 / float64(samples)
		res.Pages = append(res.Pages, PageTiming{Page: page, Bytes: size, Latency: Summarize(lat), MasterCPUMS: cpu})
	}
	return res, nil
}

// consoleRunID is the id of the console scenario's run of job on target.
func consoleRunID(target, job string) string { return "console-" + target + "-" + job }

// consoleRun is a finished run of job on target, with a little output.
func consoleRun(target, job string, status muster.RunStatus, at time.Time) agentproto.RunReport {
	code, attempt := 0, muster.AttemptSucceeded
	if status == muster.RunFailed {
		code, attempt = 1, muster.AttemptFailed
	}
	done := at.Add(40 * time.Millisecond)
	return agentproto.RunReport{Revision: 1, Run: agentproto.Run{
		Job: job, Target: target, RunID: consoleRunID(target, job), Status: status,
		Trigger: muster.TriggerSchedule + ":nightly", StartedAt: at, FinishedAt: &done, DurationMS: 40,
		Steps: []agentproto.StepAttempt{{Name: "main", Attempt: 1, Status: attempt, ExitCode: &code, StartedAt: at, DurationMS: 38}},
	}, Output: []agentproto.OutputChunk{{Data: "done\n"}}}
}

// signIn opens a login link as a browser would, and returns a client that
// carries the session's cookie.
func signIn(ctx context.Context, m *Master) (*http.Client, error) {
	link, err := m.Client.CreateLoginLink(ctx, httpapi.LoginLinkRequest{})
	if err != nil {
		return nil, err
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: time.Minute,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: m.Roots}, MaxIdleConnsPerHost: 4}}
	// The link shows a page whose button signs in: its form is sent as
	// the browser sends it.
	page, _, err := get(ctx, c, m.URL+link.Path)
	if err != nil {
		return nil, fmt.Errorf("open the login link: %w", err)
	}
	token := linkToken.FindSubmatch(page)
	if token == nil {
		return nil, fmt.Errorf("open the login link: its page has no form to sign in with")
	}
	secret, _ := url.Parse(link.Path)
	form := url.Values{"csrf": {string(token[1])}, "secret": {secret.Query().Get("secret")}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL+httpapi.LoginPath, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sign in with the login link: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/fleet" {
		return nil, fmt.Errorf("sign in with the login link: %s (at %s)", resp.Status, resp.Request.URL.Path)
	}
	return c, nil
}

// linkToken finds the double-submit token in the login link's page.
var linkToken = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// get fetches a page, following redirects, and returns its body and the
// path it was answered at; a status other than 200 is an error.
func get(ctx context.Context, c *http.Client, u string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("%s answered %s (at %s)", u, resp.Status, resp.Request.URL.Path)
	}
	return b, resp.Request.URL.Path, nil
}

// fetch gets a page, following redirects, and returns its size; a status
// other than 200, or the sign-in form, is an error.
func fetch(ctx context.Context, c *http.Client, u string) (int, error) {
	b, at, err := get(ctx, c, u)
	if err == nil && at == "/login" {
		err = fmt.Errorf("%s answered with the sign-in form", u)
	}
	return len(b), err
}

// Table writes each page's times beside the budget.
func (r *ConsoleResult) Table(w io.Writer) error {
	var figures []figure
	limits := r.limits()
	for i, p := range r.Pages {
		figures = append(figures, figure{name: "GET " + p.Page, measured: fmt.Sprintf("%s; %s ms CPU; %d KiB", dist(p.Latency), ms3(p.MasterCPUMS), p.Bytes/1024),
			budget: fmt.Sprintf("p99 ≤ %s ms", num(r.BudgetMS)), result: verdict(limits[i])})
	}
	return writeTable(w, []string{
		fmt.Sprintf("muster bench console: each page of the web console, signed in, fetched %d times in turn", r.Samples),
		fmt.Sprintf("fleet: master process (catalog: %s); %s in %d groups; %d jobs, each on a group; %d runs recorded; TLS on 127.0.0.1",
			r.Backend, describeMode(r.TargetMode, r.Targets), consoleGroups, r.Jobs, r.Runs),
		machine(),
	}, figures)
}
