package e2e_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testdb"
	"github.com/musterhq/muster/internal/testenv"
)

func steps(s ...muster.Step) muster.Job {
	j := muster.NewJob()
	j.Name, j.Targets, j.Steps = "flow", []string{"web1"}, s
	return j
}

func sh(name, script string) muster.Step { return muster.Step{Name: name, Shell: script} }

// attempts lists a run's attempts as "name:status".
func attempts(r muster.Run) string {
	var out []string
	for _, a := range r.Steps {
		out = append(out, a.Name+":"+string(a.Status))
	}
	return strings.Join(out, " ")
}

// Each flow action, on success and on failure, as SQL Server Agent runs them.
func TestStepFlow(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	with := func(s muster.Step, onSuccess, onFailure string) muster.Step {
		s.OnSuccess, s.OnFailure = onSuccess, onFailure
		return s
	}
	for _, tc := range []struct {
		name     string
		job      muster.Job
		status   muster.RunStatus
		attempts string
	}{
		{"defaults: all succeed", steps(sh("a", "true"), sh("b", "true")), muster.RunSucceeded, "a:succeeded b:succeeded"},
		{"defaults: failure quits", steps(sh("a", "false"), sh("b", "true")), muster.RunFailed, "a:failed"},
		{"failure goes next", steps(with(sh("a", "false"), "", "next"), sh("b", "true")), muster.RunSucceeded, "a:failed b:succeeded"},
		{"next after a failed last step", steps(sh("a", "true"), with(sh("b", "false"), "", "next")), muster.RunFailed, "a:succeeded b:failed"},
		{"quit_success on failure", steps(with(sh("a", "false"), "", "quit_success"), sh("b", "true")), muster.RunSucceeded, "a:failed"},
		{"quit_failure on success", steps(with(sh("a", "true"), "quit_failure", ""), sh("b", "true")), muster.RunFailed, "a:succeeded"},
		{"quit_success skips the rest", steps(with(sh("a", "true"), "quit_success", ""), sh("b", "false")), muster.RunSucceeded, "a:succeeded"},
		{"goto on failure", steps(with(sh("a", "false"), "", "goto:c"), sh("b", "false"), sh("c", "true")), muster.RunSucceeded, "a:failed c:succeeded"},
		{"goto back, bounded", steps(with(sh("a", "true"), "goto:a", "")), muster.RunFailed, strings.TrimSpace(strings.Repeat("a:succeeded ", 10))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			apply(t, env, tc.job)
			settled(t, env)
			r := startAndWait(t, env, "flow")[0]
			if r.Status != tc.status || attempts(r) != tc.attempts {
				t.Errorf("got %s [%s] %q, want %s [%s]", r.Status, attempts(r), r.Message, tc.status, tc.attempts)
			}
		})
	}
}

// A failed step is retried; every attempt is a row, the failed ones that
// were retried with status retry.
func TestStepRetries(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	dir := t.TempDir()
	// Fails twice, then succeeds: a counter file in a directory the test owns.
	script := fmt.Sprintf(`n=$(cat %[1]s/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > %[1]s/n; [ $n -ge 3 ]`, dir)
	j := steps(muster.Step{Name: "flaky", Shell: script, Retry: &muster.Retry{Attempts: 3, Interval: muster.Duration(10 * time.Millisecond)}})
	apply(t, env, j)
	settled(t, env)
	r := startAndWait(t, env, "flow")[0]
	if r.Status != muster.RunSucceeded || attempts(r) != "flaky:retry flaky:retry flaky:succeeded" {
		t.Errorf("got %s [%s], want succeeded after two retries", r.Status, attempts(r))
	}
	for i, a := range r.Steps {
		if a.Attempt != i+1 {
			t.Errorf("attempt %d numbered %d", i+1, a.Attempt)
		}
	}
	// Out of retries: the last attempt's failure stands.
	os.WriteFile(filepath.Join(dir, "n"), []byte("-10\n"), 0o644)
	j.Steps[0].Retry.Attempts = 1
	apply(t, env, j)
	settled(t, env)
	r = startAndWait(t, env, "flow")[0]
	if r.Status != muster.RunFailed || attempts(r) != "flaky:retry flaky:failed" {
		t.Errorf("got %s [%s], want failed after one retry", r.Status, attempts(r))
	}
}

// Step and job timeouts kill the whole process tree, including a child in
// a session of its own, and record timed_out; STOP does the same and
// records canceled.
func TestTimeoutsAndStopKillTheWholeTree(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	tree := "setsid sleep 300 & sleep 300 & sleep 300"

	stepTimeout := steps(muster.Step{Name: "slow", Shell: tree, Timeout: muster.Duration(500 * time.Millisecond)}, sh("after", "true"))
	apply(t, env, stepTimeout)
	settled(t, env)
	r := startAndWait(t, env, "flow")[0]
	if r.Status != muster.RunTimedOut || attempts(r) != "slow:timed_out" || r.Steps[0].Message != "timed out after 500ms" {
		t.Errorf("step timeout: got %s [%s] %q", r.Status, attempts(r), r.Steps[0].Message)
	}
	if l := testenv.RunProcesses(r.RunID); len(l) > 0 {
		t.Errorf("step timeout left processes %v", l)
	}

	jobTimeout := steps(sh("quick", "true"), sh("slow", tree))
	jobTimeout.Timeout = muster.Duration(500 * time.Millisecond)
	apply(t, env, jobTimeout)
	settled(t, env)
	r = startAndWait(t, env, "flow")[0]
	if r.Status != muster.RunTimedOut || !strings.Contains(r.Message, "the job timed out after 500ms") {
		t.Errorf("job timeout: got %s %q", r.Status, r.Message)
	}
	if l := testenv.RunProcesses(r.RunID); len(l) > 0 {
		t.Errorf("job timeout left processes %v", l)
	}

	apply(t, env, steps(sh("slow", tree)))
	settled(t, env)
	res, err := env.Client.StartJob(ctx, "flow", httpapi.StartBody{})
	if err != nil {
		t.Fatal(err)
	}
	id := res.Runs[0].RunID
	testenv.Eventually(t, wait, "the run and its tree to be running", func() bool { return len(testenv.RunProcesses(id)) >= 3 })
	if _, err := env.Client.StopJob(ctx, "flow", nil); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, "the run to be canceled", func() bool {
		runs, _ := env.Client.Runs(ctx, []muster.RunRef{{RunID: id}}, 0)
		return len(runs) == 1 && runs[0].Status == muster.RunCanceled
	})
	if l := testenv.RunProcesses(id); len(l) > 0 {
		t.Errorf("STOP left processes %v", l)
	}
}

// --env overrides the job's and steps' env for one start, --step begins at
// a step, and a step's environment holds nothing of the daemon's.
func TestStartOverridesAndCleanEnvironment(t *testing.T) {
	t.Setenv("MUSTER_TOKEN", "operator-secret")
	t.Setenv("DAEMON_ONLY", "leak")
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	ctx := context.Background()
	j := steps(sh("first", "echo first"), muster.Step{Name: "show", Shell: "env | sort", Env: map[string]string{"COLOR": "blue"}})
	j.Env = map[string]string{"COLOR": "red", "SIZE": "large"}
	apply(t, env, j)
	settled(t, env)

	res, err := env.Client.StartJob(ctx, "flow", httpapi.StartBody{Env: map[string]string{"SIZE": "small"}, Step: "show"})
	if err != nil {
		t.Fatal(err)
	}
	var r muster.Run
	testenv.Eventually(t, wait, "the run to finish", func() bool {
		runs, _ := env.Client.Runs(ctx, res.Refs()[:1], 0)
		if len(runs) == 1 && runs[0].Status.Finished() {
			r = runs[0]
			return true
		}
		return false
	})
	if attempts(r) != "show:succeeded" {
		t.Fatalf("attempts [%s], want only show", attempts(r))
	}
	out := r.Steps[0].Output
	for _, want := range []string{"COLOR=blue\n", "SIZE=small\n", "MUSTER_JOB=flow\n", "MUSTER_TARGET=web1\n", "MUSTER_STEP=show\n",
		"MUSTER_RUN_ID=" + r.RunID + "\n", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the step's environment lacks %q:\n%s", want, out)
		}
	}
	for _, leak := range []string{"operator-secret", "DAEMON_ONLY"} {
		if strings.Contains(out, leak) {
			t.Errorf("the daemon's environment leaked into the step (%s):\n%s", leak, out)
		}
	}
	if _, err := env.Client.StartJob(ctx, "flow", httpapi.StartBody{Step: "nope"}); muster.ErrorCode(err) != muster.EINVALID {
		t.Errorf("--step of a step that does not exist: %v, want invalid", err)
	}
	if _, err := env.Client.StartJob(ctx, "flow", httpapi.StartBody{Env: map[string]string{"MUSTER_JOB": "x"}}); muster.ErrorCode(err) != muster.EINVALID {
		t.Errorf("--env MUSTER_JOB: %v, want invalid", err)
	}
}

// With max_concurrent_runs, the excess queues and runs in start order.
func TestMaxConcurrentRunsQueues(t *testing.T) {
	env := testenv.New(t, testenv.Options{
		Targets: []string{"web1"},
		Target:  func(c *targetConfig) { c.Settings.MaxConcurrentRuns = 1 },
	})
	ctx := context.Background()
	var jobs []muster.Job
	for _, name := range []string{"a", "b", "c"} {
		jobs = append(jobs, shellJob(name, "date +%s.%N; sleep 0.3", "web1"))
	}
	apply(t, env, jobs...)
	settled(t, env)
	var ids []muster.RunRef
	for _, name := range []string{"a", "b", "c"} {
		res, err := env.Client.StartJob(ctx, name, httpapi.StartBody{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Refs()[0])
	}
	var runs []muster.Run
	testenv.Eventually(t, wait, "all three runs", func() bool {
		runs, _ = env.Client.Runs(ctx, ids, 0)
		return len(runs) == 3 && allDone(runs)
	})
	byJob := map[string]muster.Run{}
	for _, r := range runs {
		byJob[r.Job] = r
	}
	// One at a time, in start order: each starts after the previous ended.
	for _, pair := range [][2]string{{"a", "b"}, {"b", "c"}} {
		prev, next := byJob[pair[0]], byJob[pair[1]]
		if prev.FinishedAt == nil || next.Steps[0].StartedAt.Before(*prev.FinishedAt) {
			t.Errorf("%s started its step at %s, before %s finished at %v", pair[1], next.Steps[0].StartedAt, pair[0], prev.FinishedAt)
		}
	}
}

// Fires due together beyond max_concurrent_runs are recorded together,
// before any is launched; the ones that must wait still say so.
func TestFiresDueTogetherQueue(t *testing.T) {
	env := testenv.New(t, testenv.Options{
		Targets: []string{"web1"},
		Target:  func(c *targetConfig) { c.Settings.MaxConcurrentRuns = 1 },
	})
	var jobs []muster.Job
	for _, name := range []string{"a", "b"} {
		j := shellJob(name, "sleep 1", "web1")
		j.Schedules = []muster.Schedule{{Name: "tick", Cron: "*/3 * * * * *"}}
		jobs = append(jobs, j)
	}
	apply(t, env, jobs...)
	testenv.Eventually(t, wait, "a fire queued, saying why", func() bool {
		for _, name := range []string{"a", "b"} {
			for _, r := range scheduledRuns(t, env, name) {
				if strings.HasPrefix(r.Message, "queued: max_concurrent_runs (1)") {
					return true
				}
			}
		}
		return false
	})
}

func allDone(runs []muster.Run) bool {
	for _, r := range runs {
		if !r.Status.Finished() {
			return false
		}
	}
	return true
}

// SQL steps run against connections defined on the target: the real
// PostgreSQL, MariaDB and SQLite, with muster's variables bound as
// parameters, never substituted.
func TestSQLSteps(t *testing.T) {
	pg := testdb.Postgres(t)
	my := testdb.MySQL(t)
	lite := filepath.Join(t.TempDir(), "lite.db")
	env := testenv.New(t, testenv.Options{
		Targets: []string{"web1"},
		Target: func(c *targetConfig) {
			c.Settings.Connections = map[string]agent.Connection{
				"pg": {Driver: "postgres", DSN: pg}, "my": {Driver: "mysql", DSN: my}, "lite": {Driver: "sqlite", DSN: lite},
			}
		},
	})
	table := fmt.Sprintf("muster_e2e_%d", time.Now().UnixNano())
	cleanup := func(driver, dsn string) {
		if db, err := sql.Open(driver, dsn); err == nil {
			db.Exec("DROP TABLE IF EXISTS " + table)
			db.Close()
		}
	}
	t.Cleanup(func() { cleanup("pgx", pg); cleanup("mysql", my) })

	for _, tc := range []struct{ conn, placeholder string }{{"pg", "$1"}, {"my", "?"}, {"lite", "?"}} {
		t.Run(tc.conn, func(t *testing.T) {
			j := muster.NewJob()
			j.Name, j.Targets = "sql-"+tc.conn, []string{"web1"}
			j.Steps = []muster.Step{
				{Name: "create", SQL: "CREATE TABLE " + table + " (run_id VARCHAR(64), note VARCHAR(64))", Connection: tc.conn},
				{Name: "insert", SQL: "INSERT INTO " + table + " (run_id, note) VALUES (" + tc.placeholder + ", 'x'';DROP TABLE t;--')", Connection: tc.conn, Params: []string{"MUSTER_RUN_ID"}},
				{Name: "select", SQL: "SELECT run_id, note FROM " + table, Connection: tc.conn},
				{Name: "fail", SQL: "SELECT * FROM no_such_table_here", Connection: tc.conn, OnFailure: "quit_success"},
			}
			apply(t, env, j)
			settled(t, env)
			r := startAndWait(t, env, j.Name)[0]
			if r.Status != muster.RunSucceeded || attempts(r) != "create:succeeded insert:succeeded select:succeeded fail:failed" {
				t.Fatalf("got %s [%s] %q", r.Status, attempts(r), r.Message)
			}
			if got := r.Steps[1].Output; got != "1 row affected\n" {
				t.Errorf("insert output %q", got)
			}
			want := "run_id\tnote\n" + r.RunID + "\tx';DROP TABLE t;--\n(1 row returned)\n"
			if got := r.Steps[2].Output; got != want {
				t.Errorf("select output %q, want %q", got, want)
			}
			// A statement has no exit code; its outcome in words stands for it.
			for i, want := range []string{"0 rows affected", "1 row affected", "1 row returned"} {
				if got := r.Steps[i].Message; got != want || r.Steps[i].ExitCode != nil {
					t.Errorf("step %s: message %q, exit code %v; want %q and none", r.Steps[i].Name, got, r.Steps[i].ExitCode, want)
				}
			}
			if r.Steps[3].Message == "" || r.Steps[3].ExitCode != nil {
				t.Errorf("a failed SQL statement: message %q, exit code %v", r.Steps[3].Message, r.Steps[3].ExitCode)
			}
		})
	}

	t.Run("timeout cancels the statement", func(t *testing.T) {
		j := muster.NewJob()
		j.Name, j.Targets = "sql-slow", []string{"web1"}
		j.Steps = []muster.Step{{Name: "sleep", SQL: "SELECT pg_sleep(30)", Connection: "pg", Timeout: muster.Duration(300 * time.Millisecond)}}
		apply(t, env, j)
		settled(t, env)
		r := startAndWait(t, env, j.Name)[0]
		if r.Status != muster.RunTimedOut || r.DurationMS > 20000 {
			t.Errorf("got %s after %dms, want timed_out", r.Status, r.DurationMS)
		}
	})
}

// A step that names a proxy fails its INSERT when proxy matching is off, or
// the proxy is unknown, or a connection is missing; with matching on and
// the proxy defined, it runs as that user.
func TestProxiesAndConnectionsOnTheTarget(t *testing.T) {
	env := testenv.New(t, testenv.Options{
		Targets: []string{"web1", "web2"},
		Target: func(c *targetConfig) {
			if strings.HasSuffix(c.DataDir, "web2") {
				c.Settings.AllowDownloadedJobsToMatchProxyName = true
				c.Settings.Proxies = map[string]agent.Proxy{"backup": {User: "nobody"}}
			}
		},
	})
	ctx := context.Background()
	whoami := muster.NewJob()
	whoami.Name, whoami.Targets = "whoami", []string{"web1", "web2"}
	whoami.Steps = []muster.Step{{Name: "id", Command: []string{"id", "-un"}, RunAs: "backup"}}
	other := shellJob("other", "true", "web2")
	other.Steps[0].RunAs = "nosuch"
	db := shellJob("db", "true", "web2")
	db.Steps = []muster.Step{{Name: "q", SQL: "select 1", Connection: "warehouse"}}
	apply(t, env, whoami, other, db)
	settled(t, env)

	failed, err := env.Client.DownloadList(ctx, httpapi.DownloadListFilter{Errors: true})
	if err != nil {
		t.Fatal(err)
	}
	errs := map[string]string{}
	for _, in := range failed {
		errs[in.Target+"/"+in.Job] = in.Error
	}
	for key, want := range map[string]string{
		"web1/whoami": "the job step requires a proxy, but proxy matching is disabled on the target",
		"web2/other":  `run_as "nosuch": proxy not found`,
		"web2/db":     `connection "warehouse" not found on the target`,
	} {
		if !strings.Contains(errs[key], want) {
			t.Errorf("%s: error %q, want it to say %q", key, errs[key], want)
		}
	}
	for _, name := range []string{"web1", "web2"} {
		if tg, _ := env.Client.Target(ctx, name); tg.Status != muster.StatusBlocked {
			t.Errorf("%s is %s, want blocked", name, tg.Status)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("running a step as another user needs root")
	}
	r := startAndWait(t, env, "whoami", "web2")[0]
	if r.Status != muster.RunSucceeded || r.Steps[0].Output != "nobody\n" {
		t.Errorf("run as proxy: %s %q %q", r.Status, r.Steps[0].Output, r.Message)
	}
}

// max_parallel_targets holds STARTs back and posts them as runs end, so no
// more than that many targets run the job at once.
func TestMaxParallelTargets(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2", "web3"}})
	ctx := context.Background()
	j := shellJob("capped", "sleep 0.3", "web1", "web2", "web3")
	j.MaxParallelTargets = 1
	apply(t, env, j)
	settled(t, env)
	res, err := env.Client.StartJob(ctx, "capped", httpapi.StartBody{})
	if err != nil {
		t.Fatal(err)
	}
	queued := 0
	for _, r := range res.Runs {
		if r.Queued {
			queued++
		}
	}
	ids := res.Refs()
	if queued != 2 {
		t.Fatalf("%d STARTs queued, want 2 of 3", queued)
	}
	var runs []muster.Run
	testenv.Eventually(t, wait, "all three runs", func() bool {
		runs, _ = env.Client.Runs(ctx, ids, 5*time.Second)
		return len(runs) == 3 && allDone(runs)
	})
	// No two overlap.
	for i, a := range runs {
		for _, b := range runs[i+1:] {
			if a.StartedAt.Before(*b.FinishedAt) && b.StartedAt.Before(*a.FinishedAt) {
				t.Errorf("runs on %s and %s overlapped", a.Target, b.Target)
			}
		}
		if a.Status != muster.RunSucceeded {
			t.Errorf("%s: %s %q", a.Target, a.Status, a.Message)
		}
	}
}
