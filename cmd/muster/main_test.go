package main

import (
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"go.uber.org/goleak"

	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/testenv"
)

func TestMain(m *testing.M) {
	// Process tests re-execute this binary as the CLI.
	if os.Getenv("MUSTER_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	testscript.Main(leakChecked{m}, map[string]func(){
		"muster": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// leakChecked runs the tests, and fails them if they leave goroutines
// running: the masters and targets the tests start in this process, and
// their clients, are all stopped by the tests.
type leakChecked struct{ m *testing.M }

func (l leakChecked) Run() int {
	code := l.m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	return code
}

// TestScript runs the CLI scenarios in testdata/script. Each script gets its
// own master with two enlisted, running targets (web1 and web2), and the
// MUSTER_ADDR, MUSTER_TOKEN and MUSTER_CACERT that point the CLI at it.
func TestScript(t *testing.T) {
	files, err := filepath.Glob("testdata/script/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			t.Parallel()
			testscript.Run(t, scriptParams(t, file))
		})
	}
}

// scriptParams runs one script against an environment owned by t.
func scriptParams(t *testing.T, file string) testscript.Params {
	return testscript.Params{
		Files: []string{file},
		Setup: func(e *testscript.Env) error {
			// Each target has a SQLite connection, "local", for SQL steps.
			env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}, Target: func(c *agent.Config) {
				c.Settings.Connections = map[string]agent.Connection{
					"local": {Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "local.db")},
				}
			}})
			e.Values["env"] = env
			e.Setenv("MUSTER_ADDR", env.Master.URL)
			e.Setenv("MASTER_HOSTPORT", strings.TrimPrefix(env.Master.URL, "https://"))
			e.Setenv("MUSTER_TOKEN", env.Master.AdminToken)
			e.Setenv("MUSTER_CACERT", filepath.Join(env.Dir, "master", pki.CACertFile))
			e.Setenv("MASTER_DATA", filepath.Join(env.Dir, "master"))
			e.Setenv("ADMIN_TOKEN_FILE", filepath.Join(env.Dir, "master", master.AdminTokenFile))
			setupAlertScript(t, e)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// stop-target NAME stops a target's daemon (gracefully: its
			// data stays); start-target NAME starts it again.
			"stop-target": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: stop-target NAME")
				}
				tg := ts.Value("env").(*testenv.Env).Target(args[0])
				if tg == nil {
					ts.Fatalf("no target %s is running", args[0])
				}
				tg.Stop(t)
			},
			"start-target": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: start-target NAME")
				}
				ts.Value("env").(*testenv.Env).StartTarget(args[0])
			},
			// stop-master stops the master (gracefully); start-master starts
			// it again on the same address and data directory.
			"stop-master": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 0 {
					ts.Fatalf("usage: stop-master")
				}
				ts.Value("env").(*testenv.Env).StopMaster()
			},
			"start-master": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 0 {
					ts.Fatalf("usage: start-master")
				}
				env := ts.Value("env").(*testenv.Env)
				env.StartMaster(strings.TrimPrefix(env.Master.URL, "https://"))
			},
			// eventually CMD ARGS... runs a command until it succeeds, for
			// at most 20 seconds: for states that settle (a target polling).
			"eventually": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) == 0 {
					ts.Fatalf("usage: eventually command args...")
				}
				deadline := time.Now().Add(20 * time.Second)
				for {
					err := ts.Exec(args[0], args[1:]...)
					if err == nil {
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("%s did not succeed within 20s: %v", strings.Join(args, " "), err)
					}
					time.Sleep(100 * time.Millisecond)
				}
			},
			// eventually-stdout REGEXP CMD ARGS... runs a command until it
			// succeeds with a line of its output matching REGEXP, for at
			// most 20 seconds.
			"eventually-stdout": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: eventually-stdout regexp command args...")
				}
				re, err := regexp.Compile("(?m)" + args[0])
				ts.Check(err)
				deadline := time.Now().Add(20 * time.Second)
				for {
					err := ts.Exec(args[1], args[2:]...)
					if err == nil && re.MatchString(ts.ReadFile("stdout")) {
						return
					}
					if time.Now().After(deadline) {
						ts.Fatalf("%s did not print a line matching %q within 20s (last: %v)", strings.Join(args[1:], " "), args[0], err)
					}
					time.Sleep(100 * time.Millisecond)
				}
			},
		},
		RequireExplicitExec: true,
	}
}

// Each entry of commands is called by the name it is listed under, so that
// a command line naming it builds that command alone.
func TestCommandNames(t *testing.T) {
	for _, c := range commands {
		if got := c.new().Name(); got != c.name {
			t.Errorf("command listed as %q is called %q", c.name, got)
		}
	}
}

// A command line that names a subcommand builds it alone; any other
// builds them all.
func TestRootBuildsTheCommandNamed(t *testing.T) {
	if got := len(newRoot(io.Discard, io.Discard, []string{"target", "--data", "/nonexistent"}).Commands()); got != 1 {
		t.Errorf("muster target …: %d subcommands built, want 1", got)
	}
	if got := len(newRoot(io.Discard, io.Discard, []string{"--help"}).Commands()); got != len(commands) {
		t.Errorf("muster --help: %d subcommands built, want %d", got, len(commands))
	}
}

// A mistyped subcommand of a command group is an error, as a mistyped
// command is, not the group's help and exit status 0: a script that calls
// "muster job strat backup" must not go on as though the job started.
func TestUnknownSubcommandFails(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    string
		suggest string
	}{
		{[]string{"job", "strat", "backup"}, `unknown command "strat" for "muster job"`, "start"},
		{[]string{"group", "lst"}, `unknown command "lst" for "muster group"`, "list"},
		{[]string{"store", "migrat"}, `unknown command "migrat" for "muster store"`, "migrate"},
		{[]string{"import", "sqlagen", "jobs.sql"}, `unknown command "sqlagen" for "muster import"`, "sqlagent"},
		{[]string{"apikey", "revoke-all"}, `unknown command "revoke-all" for "muster apikey"`, ""},
	} {
		var stdout, stderr strings.Builder
		code := run(tc.args, &stdout, &stderr)
		if code != 1 {
			t.Errorf("muster %s: exit %d, want 1 (stdout %q)", strings.Join(tc.args, " "), code, stdout.String())
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("muster %s: stderr %q, want %q", strings.Join(tc.args, " "), stderr.String(), tc.want)
		}
		if tc.suggest != "" && !strings.Contains(stderr.String(), "Did you mean this?\n\t"+tc.suggest) {
			t.Errorf("muster %s: stderr %q does not suggest %q", strings.Join(tc.args, " "), stderr.String(), tc.suggest)
		}
	}
	// The group alone still shows its help, successfully.
	var stdout, stderr strings.Builder
	if code := run([]string{"job"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "Available Commands:") {
		t.Errorf("muster job: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

// A command given too few or too many arguments says which it takes, by
// the names its usage gives them, and shows that usage: cobra's own
// "accepts 1 arg(s), received 0" names neither.
func TestWrongArgumentCount(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "start"},
			"job start: NAME is missing; usage: muster job start NAME [--target T]... [--env K=V]... [--step NAME] [--wait [--timeout 10m]] [flags]"},
		{[]string{"job", "show", "nightly", "backup"},
			`job show takes NAME, not 2 arguments ("nightly", "backup"); usage: muster job show NAME [--next N] [flags]`},
		{[]string{"group", "add", "web"},
			`group add takes GROUP TARGET..., not 1 argument ("web"); usage: muster group add GROUP TARGET... [flags]`},
		{[]string{"group", "rename"},
			"group rename: NAME NEW-NAME is missing; usage: muster group rename NAME NEW-NAME [flags]"},
		{[]string{"job", "logs"},
			"job logs: RUN-ID is missing; usage: muster job logs RUN-ID [-f] [flags]"},
		{[]string{"job", "list", "backup"},
			`job list takes no arguments, not 1 ("backup"); usage: muster job list [--category C] [flags]`},
		{[]string{"import", "sqlagent"},
			"import sqlagent: FILE... is missing; usage: muster import sqlagent FILE... [--dry-run]"},
	} {
		var stdout, stderr strings.Builder
		code := run(tc.args, &stdout, &stderr)
		if code != 1 {
			t.Errorf("muster %s: exit %d, want 1", strings.Join(tc.args, " "), code)
		}
		if got := stderr.String(); !strings.HasPrefix(got, "muster: "+tc.want) || strings.Count(got, "\n") != 1 {
			t.Errorf("muster %s: stderr\n%q\nwant one line starting\n%q", strings.Join(tc.args, " "), got, "muster: "+tc.want)
		}
	}
}

// A word given to a command that is also a group of commands, and takes no
// arguments itself, is taken for a mistyped subcommand.
func TestMistypedSubcommandOfARunnableGroup(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    string
		suggest string
	}{
		{[]string{"target", "lst"}, `unknown command "lst" for "muster target"`, "list"},
		{[]string{"downloadlist", "retyr", "4"}, `unknown command "retyr" for "muster downloadlist"`, "retry"},
	} {
		var stdout, stderr strings.Builder
		if code := run(tc.args, &stdout, &stderr); code != 1 {
			t.Errorf("muster %s: exit %d, want 1", strings.Join(tc.args, " "), code)
		}
		if got := stderr.String(); !strings.Contains(got, tc.want) || !strings.Contains(got, "Did you mean this?\n\t"+tc.suggest) {
			t.Errorf("muster %s: stderr %q, want %q suggesting %q", strings.Join(tc.args, " "), got, tc.want, tc.suggest)
		}
	}
}

// A client setting that is wrong is named as it was given: the flag, or
// the environment variable an operator's profile set, which no flag on the
// command line would lead them to.
func TestClientSettingErrorsNameTheirSource(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"MUSTER_ADDR": "http://127.0.0.1:7070"}, nil,
			"MUSTER_ADDR: the master speaks HTTPS only; use https://127.0.0.1:7070"},
		{nil, []string{"--addr", "http://127.0.0.1:7070"},
			"--addr: the master speaks HTTPS only; use https://127.0.0.1:7070"},
		{map[string]string{"MUSTER_ADDR": "https://"}, nil,
			`MUSTER_ADDR: "https://" is not a master address such as https://127.0.0.1:7070`},
		{map[string]string{"MUSTER_CACERT": "/nonexistent/ca.pem"}, nil,
			"MUSTER_CACERT: open /nonexistent/ca.pem: no such file or directory"},
		{nil, []string{"--cacert", "/nonexistent/ca.pem"},
			"--cacert: open /nonexistent/ca.pem: no such file or directory"},
		{map[string]string{"MUSTER_TOKEN": "@/nonexistent/token"}, nil,
			"MUSTER_TOKEN: open /nonexistent/token: no such file or directory"},
		{nil, []string{"--token", "@/nonexistent/token"},
			"--token: open /nonexistent/token: no such file or directory"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			t.Setenv("MUSTER_ADDR", "")
			t.Setenv("MUSTER_CACERT", "")
			t.Setenv("MUSTER_TOKEN", "mat_x")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr strings.Builder
			if code := run(append([]string{"job", "list"}, tc.args...), &stdout, &stderr); code != 1 || stderr.String() != "muster: "+tc.want+"\n" {
				t.Errorf("exit %d, stderr %q; want 1, %q", code, stderr.String(), "muster: "+tc.want+"\n")
			}
		})
	}
}

// A master whose certificate the client cannot verify is explained by what
// the client was given: another CA (the wrong ca.pem), or none at all.
func TestUnverifiedMasterNamesTheCAUsed(t *testing.T) {
	env := testenv.New(t, testenv.Options{})
	other := testenv.New(t, testenv.Options{})
	t.Setenv("MUSTER_TOKEN", env.Master.AdminToken)
	t.Setenv("MUSTER_ADDR", env.Master.URL)
	host := strings.TrimPrefix(env.Master.URL, "https://")
	for _, tc := range []struct {
		cacert, want string
	}{
		{filepath.Join(other.Dir, "master", pki.CACertFile),
			"cannot verify the master at " + host + ": its certificate is not signed by the CA in MUSTER_CACERT; set MUSTER_CACERT (or --cacert) to this master's ca.pem"},
		{"", "cannot verify the master at " + host + ": no CA was given, and its certificate is not signed by one this system trusts; set MUSTER_CACERT (or --cacert) to the master's ca.pem"},
	} {
		t.Setenv("MUSTER_CACERT", tc.cacert)
		var stdout, stderr strings.Builder
		if code := run([]string{"job", "list"}, &stdout, &stderr); code != 1 || stderr.String() != "muster: "+tc.want+"\n" {
			t.Errorf("MUSTER_CACERT=%q: exit %d, stderr %q; want 1, %q", tc.cacert, code, stderr.String(), "muster: "+tc.want+"\n")
		}
	}
}

// MUSTER_STORE is the master's catalog when --store is not given, and its
// value, which may hold a database password, is not printed as the flag's
// default in muster master --help.
func TestMasterStoreFromTheEnvironment(t *testing.T) {
	t.Setenv("MUSTER_STORE", "postgres://muster:s3cret@db.example.com/muster")
	var stdout, stderr strings.Builder
	if code := run([]string{"master", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("master --help: exit %d, stderr %s", code, stderr.String())
	}
	if strings.Contains(stdout.String(), "s3cret") {
		t.Errorf("master --help prints MUSTER_STORE's password:\n%s", stdout.String())
	}
	if !strings.Contains(stdout.String(), "(default $MUSTER_STORE, else catalog.db in the data directory)\n") {
		t.Errorf("master --help does not say where --store's default comes from:\n%s", stdout.String())
	}

	// The master opens the catalog MUSTER_STORE names (then fails to
	// listen where it cannot).
	catalog := filepath.Join(t.TempDir(), "elsewhere.db")
	t.Setenv("MUSTER_STORE", "sqlite:"+catalog)
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"master", "--data", t.TempDir(), "--listen", "256.0.0.1:0", "--log-level", "error"}, &stdout, &stderr); code != 1 {
		t.Fatalf("master: exit %d, want 1; stderr %s", code, stderr.String())
	}
	if _, err := os.Stat(catalog); err != nil {
		t.Errorf("the master did not open the catalog MUSTER_STORE names: %v", err)
	}
}

// A required flag left out is named as it is typed, with the command's
// usage, where cobra said `required flag(s) "file" not set`.
func TestRequiredFlagsMissing(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apply"}, "apply: -f/--file is required; usage: muster apply -f FILE [--dry-run] [--prune] [--wait [--timeout 5m]] [flags]"},
		{[]string{"enlist", "--name", "web1"}, "enlist: --data and --master are required; usage: muster enlist --master URL[,URL...] --token TOKEN --name NAME --data DIR [--location TEXT] [flags]"},
		{[]string{"alert", "create", "late", "--on", "any"}, "alert create: --notify is required; usage: muster alert create NAME --on EVENT [--job J] [--target T] [--min-severity N] [--window 26h] --notify OPERATOR [flags]"},
		{[]string{"store", "backup"}, "store backup: --from and --to are required; usage: muster store backup --from sqlite:PATH --to FILE [flags]"},
	} {
		var stdout, stderr strings.Builder
		if code := run(tc.args, &stdout, &stderr); code != 1 || stderr.String() != "muster: "+tc.want+"\n" {
			t.Errorf("muster %s: exit %d, stderr\n%q\nwant\n%q", strings.Join(tc.args, " "), code, stderr.String(), "muster: "+tc.want+"\n")
		}
	}
}

// An address where something other than a master answers (a path after
// the port, another server) gets one line naming the URL that answered and
// what it said, where it got the other server's page across two lines.
func TestAddressAnsweredByAnotherServer(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	code := run([]string{"job", "list", "--addr", srv.URL + "/console", "--cacert", ca, "--token", "mat_x"}, &stdout, &stderr)
	want := "muster: GET " + srv.URL + "/console/api/v1/jobs answered 404 Not Found, not as muster does (\"404 page not found\")\n"
	if code != 1 || stderr.String() != want {
		t.Errorf("exit %d, stderr %q; want 1, %q", code, stderr.String(), want)
	}
}

// A job file muster apply cannot read is named with the flag that gave it.
func TestApplyFileUnreadable(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		file, want string
	}{
		{filepath.Join(dir, "missing.yaml"), "-f: open " + filepath.Join(dir, "missing.yaml") + ": no such file or directory"},
		{dir, "-f: " + dir + " is a directory, not a job file"},
	} {
		var stdout, stderr strings.Builder
		code := run([]string{"apply", "-f", tc.file, "--addr", "https://127.0.0.1:1", "--token", "mat_x"}, &stdout, &stderr)
		if want := "muster: " + tc.want + "\n"; code != 1 || stderr.String() != want {
			t.Errorf("-f %s: exit %d, stderr %q; want 1, %q", tc.file, code, stderr.String(), want)
		}
	}
}

// A client flag given empty (--token "$KEY" with KEY unset) is refused,
// not taken for a flag left out: that would act with the environment's
// key, or reach the environment's master, instead of the one meant.
func TestEmptyClientFlagIsRefused(t *testing.T) {
	checked := 0
	for _, flag := range []string{"--token", "--addr", "--cacert"} {
		t.Run(flag, func(t *testing.T) {
			t.Setenv("MUSTER_ADDR", "https://127.0.0.1:1")
			t.Setenv("MUSTER_CACERT", "")
			t.Setenv("MUSTER_TOKEN", "mat_x")
			var stdout, stderr strings.Builder
			code := run([]string{"job", "list", flag, ""}, &stdout, &stderr)
			if want := `invalid argument "" for "` + flag + `" flag: empty`; code != 1 || !strings.Contains(stderr.String(), want) {
				t.Errorf("exit %d, stderr %q; want 1, saying %q", code, stderr.String(), want)
			}
			checked++
		})
	}
	if checked != 3 {
		t.Fatalf("checked %d flags, want 3", checked)
	}
}

// A flag that picks what a command acts on, given empty (--target "$T"
// with T unset), is refused, not taken for a flag left out: that would
// start, stop or post on every target of the job, or start them all at
// once instead of in waves, where a few were meant.
func TestEmptyChoiceFlagIsRefused(t *testing.T) {
	checked := 0
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "start", "deploy", "--target", ""}, `invalid argument "" for "--target" flag: empty; give a target's name, or leave the flag out to start the job on all its targets`},
		{[]string{"job", "start", "deploy", "--target", "web1,"}, `invalid argument "web1," for "--target" flag: empty; give a target's name, or leave the flag out to start the job on all its targets`},
		{[]string{"job", "start", "deploy", "--target", "web1", "--target", " "}, `invalid argument " " for "--target" flag: empty; give a target's name, or leave the flag out to start the job on all its targets`},
		{[]string{"job", "start", "deploy", "--group", ""}, `invalid argument "" for "--group" flag: empty; give a group's name, or leave the flag out to start the job on all its targets`},
		{[]string{"job", "start", "deploy", "--batch", ""}, `invalid argument "" for "--batch" flag: empty; give a number of targets or a percentage such as 25%, or leave the flag out to start them all at once`},
		{[]string{"job", "start", "deploy", "--step", ""}, `invalid argument "" for "--step" flag: empty; give a step's name, or leave the flag out to begin at the first step`},
		{[]string{"job", "stop", "deploy", "--target", ""}, `invalid argument "" for "--target" flag: empty; give a target's name, or leave the flag out to stop the job on all its targets`},
		{[]string{"post", "delete", "--job", "deploy", "--target", ""}, `invalid argument "" for "--target" flag: empty; give a target's name, or leave the flag out to post to all the targets`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Setenv("MUSTER_ADDR", "https://127.0.0.1:1")
			t.Setenv("MUSTER_CACERT", "")
			t.Setenv("MUSTER_TOKEN", "mat_x")
			var stdout, stderr strings.Builder
			code := run(tc.args, &stdout, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 1, saying %q", code, stderr.String(), tc.want)
			}
			checked++
		})
	}
	if checked != 8 {
		t.Fatalf("checked %d flags, want 8", checked)
	}
}

// Files applied together (-f A -f B) are one request: when each is within
// what one apply may send but together they are not, apply says so before
// sending them, rather than the master refusing a request over its limit.
func TestApplyFilesTooLargeTogether(t *testing.T) {
	dir := t.TempDir()
	// Each file: one list of 1,000 texts of 200 characters, anchored and
	// used by 45 jobs, 9 MB as sent.
	var words []string
	for i := range 1000 {
		words = append(words, fmt.Sprintf("%0200d", i))
	}
	var paths []string
	for _, f := range []string{"a", "b"} {
		var b strings.Builder
		b.WriteString("jobs:\n")
		for i := range 45 {
			fmt.Fprintf(&b, "  - name: %s%d\n    targets: [web1]\n    steps:\n      - name: s\n        command: ", f, i)
			if i == 0 {
				b.WriteString("&c [" + strings.Join(words, ", ") + "]\n")
			} else {
				b.WriteString("*c\n")
			}
		}
		path := filepath.Join(dir, f+".yaml")
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr strings.Builder
		if code := run([]string{"apply", "-f", path, "--addr", "https://127.0.0.1:1", "--token", "mat_x"}, &stdout, &stderr); strings.Contains(stderr.String(), "MiB") {
			t.Fatalf("-f %s alone: exit %d, %q; want it within the limit", path, code, stderr.String())
		}
		paths = append(paths, path)
	}
	var stdout, stderr strings.Builder
	code := run([]string{"apply", "-f", paths[0], "-f", paths[1], "--addr", "https://127.0.0.1:1", "--token", "mat_x"}, &stdout, &stderr)
	if want := "the files come to more than 16 MiB as sent to the master"; code != 1 || !strings.Contains(stderr.String(), want) {
		t.Errorf("exit %d, stderr %q; want 1, saying %q", code, stderr.String(), want)
	}
}
