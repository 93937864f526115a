package console_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testenv"
)

// signInWithKey signs a new browser in through the sign-in form with an
// API key.
func signInWithKey(t *testing.T, env *testenv.Env, key string) context.Context {
	t.Helper()
	b := newBrowser(t, 1280, 800)
	do(t, b, "sign in with a key", chromedp.Navigate(env.Master.URL+"/login"), chromedp.WaitVisible(`#key`),
		chromedp.SetValue(`#key`, key), chromedp.Click(`.signin button[type="submit"]`), chromedp.WaitVisible(`tr[data-target]`))
	return b
}

// TestConsoleLiveInBrowser follows what a page open in a browser does as
// things change behind it: its session ending, its master going away.
func TestConsoleLiveInBrowser(t *testing.T) {
	chromium(t)
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	bg := context.Background()

	t.Run("a page whose session ends goes to the sign-in form", func(t *testing.T) {
		k, err := env.Client.CreateAPIKey(bg, httpapi.KeyRequest{Name: "alice", Role: "operator"})
		if err != nil {
			t.Fatal(err)
		}
		b := signInWithKey(t, env, k.Key)
		do(t, b, "the target's page", chromedp.Navigate(env.Master.URL+"/targets/web1"), chromedp.WaitVisible(`#live .facts`))
		if _, err := env.Client.RevokeAPIKey(bg, "alice"); err != nil {
			t.Fatal(err)
		}
		// The next live refresh finds the session gone: the page goes to
		// the sign-in form, which will come back to it.
		do(t, b, "the sign-in form", chromedp.WaitVisible(`#key`))
		loc := get(t, b, "location", chromedp.Location())
		if want := env.Master.URL + "/login?next=%2Ftargets%2Fweb1"; loc != want {
			t.Fatalf("after the key was revoked the page went to %s, want %s", loc, want)
		}
	})

	t.Run("a page that cannot refresh says so, and why", func(t *testing.T) {
		ctx := newBrowser(t, 1280, 800)
		do(t, ctx, "sign in", signInWith(loginLink(t, env)), chromedp.WaitVisible(`main h1`))
		if _, err := env.Client.Apply(bg, httpapi.ApplyRequest{Jobs: []muster.Job{shellJob("gone", "true", "web1")}}); err != nil {
			t.Fatal(err)
		}
		do(t, ctx, "the job's page", chromedp.Navigate(env.Master.URL+"/jobs/gone"), chromedp.WaitVisible(`#live`))
		if _, err := env.Client.DeleteJob(bg, "gone"); err != nil {
			t.Fatal(err)
		}
		do(t, ctx, "the page says it is not up to date", chromedp.WaitVisible(`#stale`))
		if text := get(t, ctx, "notice", chromedp.TextContent(`#stale`)); !strings.Contains(text, `no job named "gone"`) {
			t.Errorf("the notice says %q, want why: no job named \"gone\"", text)
		}

		do(t, ctx, "the target's page", chromedp.Navigate(env.Master.URL+"/targets/web1"), chromedp.WaitVisible(`#live .facts`))
		env.StopMaster()
		do(t, ctx, "the page says the master does not answer", chromedp.WaitVisible(`#stale`))
		if text := get(t, ctx, "notice", chromedp.TextContent(`#stale`)); !strings.Contains(text, "does not answer") {
			t.Errorf("with the master stopped the notice says %q, want that it does not answer", text)
		}
		env.RestartMaster()
		do(t, ctx, "the page refreshes again", chromedp.WaitNotVisible(`#stale`), chromedp.WaitVisible(`#live .facts`))
	})

	t.Run("a running step's output keeps its place as it grows", func(t *testing.T) {
		ctx := newBrowser(t, 1280, 800)
		do(t, ctx, "sign in", signInWith(loginLink(t, env)), chromedp.WaitVisible(`main h1`))
		flag := filepath.Join(t.TempDir(), "go")
		job := shellJob("follow", "seq 1 400; while [ ! -e "+flag+" ]; do sleep 0.1; done; echo end", "web1")
		if _, err := env.Client.Apply(bg, httpapi.ApplyRequest{Jobs: []muster.Job{job}}); err != nil {
			t.Fatal(err)
		}
		do(t, ctx, "start it", chromedp.Navigate(env.Master.URL+"/jobs/follow"),
			chromedp.Click(`form.start button[type="submit"]`), chromedp.WaitVisible(`#run-status.r-running`))
		testenv.Eventually(t, wait, "the output to overflow its box", func() bool {
			long, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const p = document.querySelector("pre.output"); return p !== null && p.scrollHeight > 3 * p.clientHeight; })()`))
			return err == nil && long
		})
		// nextRefresh scrolls the output as set, waits for the live region's
		// next refresh, and returns where the output then is.
		nextRefresh := func(set string) string {
			return get(t, ctx, "the next refresh", chromedp.Evaluate[string](`new Promise(done => {
				const p = document.querySelector("pre.output");
				`+set+`;
				document.addEventListener("htmx:beforeRequest", () => {
					document.addEventListener("htmx:afterSettle", () => {
						const p = document.querySelector("pre.output");
						done(p.scrollTop + p.clientHeight >= p.scrollHeight - 2 ? "end" : String(p.scrollTop));
					}, {once: true});
				}, {once: true});
			})`, chromedp.EvalAwaitPromise))
		}
		if at := nextRefresh(`p.scrollTop = 200`); at != "200" {
			t.Errorf("the output scrolled to 200 is at %s after a refresh, want 200", at)
		}
		if at := nextRefresh(`p.scrollTop = p.scrollHeight`); at != "end" {
			t.Errorf("the output scrolled to its end is at %s after a refresh, want still at its end", at)
		}
		if err := os.WriteFile(flag, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		do(t, ctx, "the run ends", chromedp.WaitVisible(`#run-status.r-succeeded`))
		if at := get(t, ctx, "where", chromedp.Evaluate[bool](`(() => { const p = document.querySelector("pre.output"); return p.scrollTop + p.clientHeight >= p.scrollHeight - 2; })()`)); !at {
			t.Error("the output followed to its end is not at its end when the run ends")
		}
	})
}

// TestConsoleKeysInBrowser makes an API key in the form: its secret is
// shown once, and going back to the page sends nothing again.
func TestConsoleKeysInBrowser(t *testing.T) {
	chromium(t)
	env := testenv.New(t, testenv.Options{})
	ctx := newBrowser(t, 1280, 800)
	do(t, ctx, "the keys page", signInWith(loginLink(t, env)), chromedp.WaitVisible(`main h1`),
		chromedp.Navigate(env.Master.URL+"/keys"), chromedp.WaitVisible(`input[name="name"]`))
	// The form checks a name as the master does, before it is sent.
	for name, want := range map[string]bool{"Alice": true, "db.backup-2": true, "alice-": false, "bad name": false} {
		valid := get(t, ctx, "check "+name, chromedp.Evaluate[bool](`(() => { const i = document.querySelector("input[name=name]"); i.value = `+strconv.Quote(name)+`; return i.checkValidity(); })()`))
		if valid != want {
			t.Errorf("the form takes the name %q: %v, want %v", name, valid, want)
		}
	}
	do(t, ctx, "create a key", chromedp.SetValue(`input[name="name"]`, "Alice"), chromedp.Click(`form.inline button[type="submit"]`),
		chromedp.WaitVisible(`section.created pre`))
	secret := get(t, ctx, "the secret", chromedp.TextContent(`section.created pre`))
	if !strings.HasPrefix(secret, "mat_") {
		t.Fatalf("the page shows %q, want the key's secret", secret)
	}
	do(t, ctx, "go elsewhere and back", chromedp.Navigate(env.Master.URL+"/fleet"), chromedp.WaitVisible(`main h1`),
		// The browser may show the page again from its back-forward cache,
		// without asking the master.
		chromedp.Evaluate[chromedp.Void](`history.back()`))
	testenv.Eventually(t, wait, "back on the keys page", func() bool {
		back, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`location.pathname === "/keys" && document.readyState === "complete" && document.querySelector("input[name=name]") !== null`))
		return err == nil && back
	})
	if loc := get(t, ctx, "location", chromedp.Location()); loc != env.Master.URL+"/keys" {
		t.Fatalf("back went to %s, want %s/keys", loc, env.Master.URL)
	}
	if shown := get(t, ctx, "the secret again", chromedp.Evaluate[bool](`document.querySelector("section.created") !== null`)); shown {
		t.Error("going back shows the secret again")
	}
	keys, err := env.Client.APIKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(keys); n != 2 {
		t.Errorf("%d keys after making one, want 2 (the admin's and Alice)", n)
	}
}

// TestConsoleStartAgainAfterBack starts a job, goes back to its page and
// starts it again: a second start, not the first one's replay.
func TestConsoleStartAgainAfterBack(t *testing.T) {
	chromium(t)
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	if _, err := env.Client.Apply(context.Background(), httpapi.ApplyRequest{Jobs: []muster.Job{shellJob("again", "echo hi", "web1")}}); err != nil {
		t.Fatal(err)
	}
	ctx := newBrowser(t, 1280, 800)
	do(t, ctx, "sign in", signInWith(loginLink(t, env)), chromedp.WaitVisible(`main h1`))
	do(t, ctx, "start it", chromedp.Navigate(env.Master.URL+"/jobs/again"), chromedp.WaitVisible(`form.start`),
		chromedp.Evaluate[chromedp.Void](`window.startedFromHere = true`),
		chromedp.Click(`form.start button[type="submit"]`), chromedp.WaitVisible(`#run-status.r-succeeded`))
	first := get(t, ctx, "the first run", chromedp.Location())
	// Back: the browser may bring the page back from its back-forward
	// cache, form, idempotency key and all; the page loads itself again.
	do(t, ctx, "back", chromedp.Evaluate[chromedp.Void](`history.back()`))
	testenv.Eventually(t, wait, "the job's page, loaded again", func() bool {
		back, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`location.pathname === "/jobs/again" && document.readyState === "complete" && !window.startedFromHere && document.querySelector("form.start") !== null`))
		return err == nil && back
	})
	do(t, ctx, "start it again", chromedp.Click(`form.start button[type="submit"]`), chromedp.WaitVisible(`#run-status.r-succeeded`))
	if second := get(t, ctx, "the second run", chromedp.Location()); second == first {
		t.Errorf("starting again after going back went to the first run, %s", first)
	}
	runs, err := env.Client.History(context.Background(), "again", "web1", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Fatalf("%d runs of again, want 2", len(runs))
	}
}
