package console_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/testenv"
)

// wait bounds each wait for the browser to see something.
const wait = 30 * time.Second

// chromium returns Debian's chromium, or skips the test saying so (fails
// it when MUSTER_TEST_REQUIRE_SERVICES=1, as in CI).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("MUSTER_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatal("chromium is not installed (apt-get install chromium), and MUSTER_TEST_REQUIRE_SERVICES=1 requires it")
	}
	t.Skip("chromium is not installed (apt-get install chromium): skipping the console's browser tests")
	return ""
}

// newBrowser starts a headless chromium with a window of width × height,
// stopped when the test ends. The master's certificate is signed by its
// own CA, which the browser does not know: it is told not to check.
func newBrowser(t *testing.T, width, height int) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox,
		chromedp.IgnoreCertErrors, chromedp.WindowSize(width, height), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// do runs browser actions, each bounded by wait.
func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one browser action that returns a value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// loginLink runs `muster login-link` as an operator would, against env's
// master, and returns the URL it prints.
func loginLink(t *testing.T, env *testenv.Env, args ...string) string {
	t.Helper()
	cmd := exec.Command(testenv.MusterBinary(t), append([]string{"login-link"}, args...)...)
	cmd.Env = append(os.Environ(), "MUSTER_ADDR="+env.Master.URL, "MUSTER_TOKEN="+env.Master.AdminToken,
		"MUSTER_CACERT="+filepath.Join(env.Dir, "master", pki.CACertFile))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("muster login-link: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// signInWith opens a login link as its person does: the page it shows,
// then its Sign in button, until the console's page replaces it.
func signInWith(link string) chromedp.Action[chromedp.Void] {
	const form = `form[action="/login/link"]`
	return chromedp.Steps(chromedp.Navigate(link), chromedp.Click(form+` button`), chromedp.WaitNotPresent(form))
}

// screenshot saves the page as docs/console/NAME.png when
// MUSTER_SCREENSHOTS names the directory to write them to.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("MUSTER_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := get(t, ctx, "screenshot "+name, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func shellJob(name, script string, targets ...string) muster.Job {
	j := muster.NewJob()
	j.Name, j.Targets = name, targets
	j.Steps = []muster.Step{{Name: "main", Shell: script}}
	return j
}

// TestConsoleInBrowser drives the console in headless chromium against a
// real master with two real targets, as an operator would.
func TestConsoleInBrowser(t *testing.T) {
	chromium(t)
	env := testenv.New(t, testenv.Options{Targets: []string{"web1", "web2"}})
	ctx := newBrowser(t, 1280, 800)
	bg := context.Background()
	flag := filepath.Join(t.TempDir(), "fail")
	nightly := shellJob("nightly", `printf '\033[32mdumping\033[0m\n'; sleep 1; echo done`, "web1", "web2")
	nightly.Description = "Dump the database every night"
	nightly.Schedules = []muster.Schedule{{Name: "weekdays", Cron: "30 2 * * 1-5"}}
	nightly.Steps = append(nightly.Steps, muster.Step{Name: "prune", Shell: "echo pruned", Retry: &muster.Retry{Attempts: 2, Interval: muster.Duration(time.Second)}})
	check := shellJob("check", "test ! -e "+flag+" && echo fine", "web1")
	if _, err := env.Client.Apply(bg, httpapi.ApplyRequest{Jobs: []muster.Job{nightly, check}}); err != nil {
		t.Fatal(err)
	}

	t.Run("a login link shows the fleet with both targets", func(t *testing.T) {
		link := loginLink(t, env)
		do(t, ctx, "open the link", signInWith(link),
			chromedp.WaitVisible(`tr[data-target="web1"]`), chromedp.WaitVisible(`tr[data-target="web2"]`))
		if loc := get(t, ctx, "location", chromedp.Location()); loc != env.Master.URL+"/fleet" {
			t.Fatalf("the link went to %s, want %s/fleet", loc, env.Master.URL)
		}
		names := get(t, ctx, "target names", chromedp.Evaluate[[]string](`[...document.querySelectorAll("tr[data-target] th a")].map(a => a.textContent)`))
		if !slices.Equal(names, []string{"web1", "web2"}) {
			t.Fatalf("the fleet lists %v, want [web1 web2]", names)
		}
		screenshot(t, ctx, "fleet")
		// Every control is reachable from the keyboard: Tab, from the top
		// of the page, reaches the first target's Poll button.
		const poll = `document.activeElement === document.querySelector('tr[data-target="web1"] td.actions button')`
		tabs := 0
		for ; tabs < 40 && !get(t, ctx, "focus", chromedp.Evaluate[bool](poll)); tabs++ {
			do(t, ctx, "press Tab", chromedp.KeyEvent(kb.Tab))
		}
		if tabs == 40 {
			t.Fatal("40 presses of Tab did not reach web1's Poll button")
		}
		t.Logf("Tab reaches web1's Poll button in %d presses", tabs)
	})

	t.Run("start a job and watch its run and output", func(t *testing.T) {
		do(t, ctx, "start nightly on web1", chromedp.Navigate(env.Master.URL+"/jobs/nightly"),
			chromedp.Click(`input[name="target"][value="web1"]`), chromedp.Click(`form.start button[type="submit"]`),
			chromedp.WaitVisible(`#run-status`))
		// The page follows the run until it ends, without a reload.
		do(t, ctx, "the run succeeds", chromedp.WaitVisible(`#run-status.r-succeeded`))
		output := get(t, ctx, "output", chromedp.TextContent(`pre.output`))
		if output != "dumping\ndone\n" {
			t.Fatalf("the run page shows output %q, want dumping and done", output)
		}
		// The step's terminal colour shows as a colour, not as an escape.
		if c := get(t, ctx, "the colour of dumping", chromedp.Evaluate[string](`getComputedStyle(document.querySelector("pre.output span.t-f2")).color`)); c != "rgb(16, 124, 16)" {
			t.Errorf("dumping, printed green, shows in %q, want rgb(16, 124, 16)", c)
		}
		screenshot(t, ctx, "run")
		do(t, ctx, "the job page", chromedp.Navigate(env.Master.URL+"/jobs/nightly"), chromedp.WaitVisible(`table.runs`))
		text := get(t, ctx, "job page", chromedp.Text(`main`))
		for _, want := range []string{"Dump the database every night", "every weekday at 02:30", "retries: 2 every 1s", "listed in the job", "succeeded", "02:30 UTC there"} {
			if !strings.Contains(text, want) {
				t.Errorf("the job page does not say %q:\n%s", want, text)
			}
		}
		screenshot(t, ctx, "job")
		entries, err := env.Client.Audit(bg, httpapi.AuditFilter{Job: "nightly"})
		if err != nil {
			t.Fatal(err)
		}
		if entries[0].Action != muster.AuditJobStart || entries[0].Actor.Name != "admin" {
			t.Fatalf("newest audit entry of nightly: %+v, want its start by the admin key", entries[0])
		}
	})

	t.Run("start a job in waves and watch the rollout to done", func(t *testing.T) {
		do(t, ctx, "start nightly in waves of one", chromedp.Navigate(env.Master.URL+"/jobs/nightly"),
			chromedp.SetValue(`input[name="batch"]`, "1"), chromedp.SetValue(`input[name="max_failures"]`, "0"),
			chromedp.Click(`form.start button[type="submit"]`), chromedp.WaitVisible(`section.rollout[data-state="running"]`))
		// The first wave's run takes a second: the page shows web2 waiting
		// for it, then follows the rollout to its end without a reload.
		do(t, ctx, "web2 waits for the first wave", chromedp.WaitVisible(`section.rollout .badge.r-waiting[data-target="web2"]`))
		do(t, ctx, "the rollout is done", chromedp.WaitVisible(`section.rollout[data-state="done"]`))
		text := get(t, ctx, "the rollout", chromedp.Text(`section.rollout`))
		for _, want := range []string{"wave 2 of 2", "2 started, 2 succeeded, 0 failed of 2", "web1: succeeded", "web2: succeeded"} {
			if !strings.Contains(text, want) {
				t.Errorf("the rollout does not say %q:\n%s", want, text)
			}
		}
		screenshot(t, ctx, "rollout")
		ros, err := env.Client.Rollouts(bg, "nightly")
		if err != nil || len(ros) != 1 || ros[0].State != muster.RolloutDone || ros[0].CreatedBy != "admin" {
			t.Fatalf("the API's rollouts of nightly: %+v %v, want one done, by admin", ros, err)
		}
	})

	t.Run("the matrix turns red when a run fails", func(t *testing.T) {
		runAndWait(t, env, "check")
		cell := `td.cell[data-job="check"][data-target="web1"]`
		do(t, ctx, "the matrix", chromedp.Navigate(env.Master.URL+"/jobs"), chromedp.WaitVisible(cell+`.s-succeeded`))
		title := get(t, ctx, "hover", chromedp.AttributeValue(cell+` a`, "title"))
		if !title.Exists || !strings.Contains(title.Value, "succeeded, started") {
			t.Fatalf("the cell's title is %q, want its outcome and time", title.Value)
		}
		if err := os.WriteFile(flag, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		runAndWait(t, env, "check")
		do(t, ctx, "the cell turns red without a reload", chromedp.WaitVisible(cell+`.s-failed`))
		screenshot(t, ctx, "matrix")
		// htmx adds no style the policy would refuse.
		if n := get(t, ctx, "styles", chromedp.Evaluate[int](`document.querySelectorAll("style, [style]").length`)); n != 0 {
			t.Errorf("the page has %d inline styles after live refreshes, which its policy refuses", n)
		}
		do(t, ctx, "failed only", chromedp.Navigate(env.Master.URL+"/jobs?failed=1"), chromedp.WaitVisible(cell+`.s-failed`))
		jobs := get(t, ctx, "rows", chromedp.Evaluate[[]string](`[...document.querySelectorAll("table.matrix tbody th a")].map(a => a.textContent)`))
		if !slices.Equal(jobs, []string{"check"}) {
			t.Fatalf("failed only lists %v, want [check]", jobs)
		}
		do(t, ctx, "click through to the run", chromedp.Click(cell+` a`), chromedp.WaitVisible(`#run-status.r-failed`))
	})

	t.Run("a blocked instruction is seen and cleared", func(t *testing.T) {
		bad := shellJob("as-proxy", "true", "web2")
		bad.Steps[0].RunAs = "no-such-proxy"
		if _, err := env.Client.Apply(bg, httpapi.ApplyRequest{Jobs: []muster.Job{bad}}); err != nil {
			t.Fatal(err)
		}
		do(t, ctx, "web2 is blocked", chromedp.Navigate(env.Master.URL+"/fleet?status=blocked"),
			chromedp.WaitVisible(`tr[data-target="web2"] .b-blocked`), chromedp.Click(`tr[data-target="web2"] th a`),
			chromedp.WaitVisible(`tr[data-status="failed"]`))
		errText := get(t, ctx, "the error", chromedp.Text(`tr[data-status="failed"] td.error`))
		if !strings.Contains(errText, "no-such-proxy") {
			t.Fatalf("the failed instruction says %q, want the proxy named", errText)
		}
		do(t, ctx, "delete it", chromedp.Click(`tr[data-status="failed"] button.danger`),
			chromedp.WaitNotPresent(`tr[data-status="failed"]`), chromedp.WaitVisible(`.badge.b-normal`))
		tg, err := env.Client.Target(bg, "web2")
		if err != nil {
			t.Fatal(err)
		}
		if tg.Status != muster.StatusNormal {
			t.Fatalf("web2 is %s after the console cleared its failed instruction, want normal", tg.Status)
		}
	})

	t.Run("a reader has no buttons and its forged POST is refused", func(t *testing.T) {
		reader := newBrowser(t, 390, 844) // a phone's width
		link := loginLink(t, env, "--role", "reader")
		do(t, reader, "open the reader's link", signInWith(link), chromedp.WaitVisible(`tr[data-target="web1"]`))
		for _, page := range []string{"/fleet", "/targets/web1", "/jobs", "/jobs/nightly"} {
			do(t, reader, "open "+page, chromedp.Navigate(env.Master.URL+page), chromedp.WaitVisible(`main h1`))
			forms := get(t, reader, "forms", chromedp.Evaluate[[]string](`[...document.querySelectorAll("form[method=post]")].map(f => f.getAttribute("action"))`))
			if !slices.Equal(forms, []string{"/logout"}) {
				t.Errorf("a reader's %s has forms %v, want only /logout", page, forms)
			}
		}
		// At a phone's width the fleet fits: nothing scrolls sideways.
		do(t, reader, "the fleet on a phone", chromedp.Navigate(env.Master.URL+"/fleet"), chromedp.WaitVisible(`tr[data-target="web2"]`))
		if wide := get(t, reader, "page width", chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`)); wide {
			t.Error("the fleet page is wider than a phone's screen")
		}
		status := get(t, reader, "forged POST", chromedp.Evaluate[int](`fetch("/targets/web1/pause", {method: "POST",
			body: new URLSearchParams({csrf: document.querySelector("form[action='/logout'] input[name=csrf]").value})}).then(r => r.status)`,
			chromedp.EvalAwaitPromise))
		if status != 403 {
			t.Fatalf("a reader's forged pause: %d, want 403", status)
		}
		tg, err := env.Client.Target(bg, "web1")
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(tg.Flags, muster.FlagPaused) {
			t.Fatal("the reader's forged POST paused web1")
		}
	})
}

// runAndWait starts job through the API and waits for its runs to end.
func runAndWait(t *testing.T, env *testenv.Env, job string) {
	t.Helper()
	ctx := context.Background()
	res, err := env.Client.StartJob(ctx, job, httpapi.StartBody{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, job+" finished", func() bool {
		runs, err := env.Client.Runs(ctx, res.Refs(), 5*time.Second)
		if err != nil || len(runs) != len(res.Runs) {
			return false
		}
		for _, r := range runs {
			if !r.Status.Finished() {
				return false
			}
		}
		return true
	})
}
