package console_test

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/testenv"
)

// hostile is what a careless or hostile user writes where text goes:
// markup and script, a right-to-left override, a word too long for any
// line.
const hostile = `<img src=x onerror="window.pwned=1"><script>window.pwned=1</script>` + "\u202eevil\u202c " + "x"

// TestConsoleHostileTextInBrowser crawls every page a link leads to, from
// every page, as each role, with markup and script in what jobs, steps and
// their output say: no page runs a script it did not bring, none is an
// error page, and the ones only an admin may read are not linked for the
// others; and once signed out, Back shows none of them again.
func TestConsoleHostileTextInBrowser(t *testing.T) {
	chromium(t)
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	bg := context.Background()
	j := shellJob("evil", `printf '%s\n' '`+strings.ReplaceAll(hostile, `'`, ``)+`'; printf '\033]0;title\007\033[2Jdone\n'`, "web1")
	j.Description = hostile + strings.Repeat("y", 400)
	j.Schedules = []muster.Schedule{{Name: "nightly", Cron: "0 2 * * *"}}
	if _, err := env.Client.Apply(bg, httpapi.ApplyRequest{Jobs: []muster.Job{j}}); err != nil {
		t.Fatal(err)
	}
	runAndWait(t, env, "evil")
	for _, role := range []string{"reader", "admin"} {
		t.Run(role, func(t *testing.T) {
			ctx := newBrowser(t, 1280, 800)
			do(t, ctx, "sign in", signInWith(loginLink(t, env, "--role", role)), chromedp.WaitVisible(`main h1`))
			seen := map[string]bool{}
			queue := []string{"/fleet"}
			for len(queue) > 0 {
				p := queue[0]
				queue = queue[1:]
				if seen[p] {
					continue
				}
				seen[p] = true
				if len(seen) > 200 {
					t.Fatalf("more than 200 pages linked from /fleet")
				}
				do(t, ctx, "open "+p, chromedp.Navigate(env.Master.URL+p), chromedp.WaitVisible(`main h1`))
				h1 := get(t, ctx, "title of "+p, chromedp.Text(`main h1`))
				if h1 == "Refused" {
					t.Errorf("%s (linked from a page) is an error page: %s", p, get(t, ctx, "error", chromedp.Text(`main`)))
				}
				if get(t, ctx, "pwned", chromedp.Evaluate[bool](`window.pwned === 1`)) {
					t.Fatalf("%s ran a script from what a job says", p)
				}
				links := get(t, ctx, "links of "+p, chromedp.Evaluate[[]string](`[...document.querySelectorAll("a[href]")].map(a => a.getAttribute("href")).filter(h => h.startsWith("/") && !h.startsWith("/assets/"))`))
				for _, l := range links {
					if l == "/keys" && role != "admin" {
						t.Errorf("%s links a %s to /keys", p, role)
					}
					queue = append(queue, l)
				}
			}
			t.Logf("%d pages crawled as %s", len(seen), role)
			// Signed out, Back shows the sign-in form, not the page the
			// session last saw.
			do(t, ctx, "sign out", chromedp.Navigate(env.Master.URL+"/jobs/evil"), chromedp.WaitVisible(`main h1`),
				chromedp.Click(`form.who button`), chromedp.WaitVisible(`#key`), chromedp.NavigateBack(), chromedp.WaitVisible(`main h1`))
			if text := get(t, ctx, "the page Back shows", chromedp.Text(`main`)); strings.Contains(text, "evil") || !strings.Contains(text, "Sign in") {
				t.Errorf("Back after signing out shows:\n%s", text)
			}
		})
	}
}
