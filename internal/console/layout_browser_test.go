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

// Names may be 128 characters long, with nowhere to break a line: at a
// phone's width every page still fits its screen, the filters included,
// and what does not fit (a wide table) scrolls sideways in its own box;
// at 1280 px the tables fit too, so that a long job name does not push a
// failed instruction's error out of sight.
func TestConsoleLongNamesFitAPhone(t *testing.T) {
	chromium(t)
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}})
	bg := context.Background()
	group := "g-" + strings.Repeat("b", muster.MaxNameLen-2)
	job := "j-" + strings.Repeat("a", muster.MaxNameLen-2)
	if err := env.Client.CreateGroup(bg, group); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.GroupMembers(bg, group, []string{"web1"}, false); err != nil {
		t.Fatal(err)
	}
	j := shellJob(job, "echo "+strings.Repeat("x", 300))
	j.Groups = []string{group}
	if _, err := env.Client.Apply(bg, httpapi.ApplyRequest{Jobs: []muster.Job{j}}); err != nil {
		t.Fatal(err)
	}
	res, err := env.Client.StartJob(bg, job, httpapi.StartBody{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.Runs(bg, res.Refs(), wait); err != nil {
		t.Fatal(err)
	}
	run := "/runs/web1/" + res.Runs[0].RunID
	ctx := newBrowser(t, 390, 844)
	// A desktop window is never narrower than about 500 px: the page is
	// shown as a phone would, 390 px wide.
	do(t, ctx, "sign in", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), signInWith(loginLink(t, env)), chromedp.WaitVisible(`tr[data-target="web1"]`))
	for _, page := range []string{"/fleet", "/jobs", "/jobs/" + job, "/targets/web1", "/events", "/audit", "/alerts", "/keys", run, "/jobs/" + job + "x"} {
		do(t, ctx, "open "+page, chromedp.Navigate(env.Master.URL+page), chromedp.WaitVisible(`main h1`))
		if wide := get(t, ctx, "page width", chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); wide > 390 {
			screenshot(t, ctx, "wide-"+strings.Trim(strings.ReplaceAll(page[:min(len(page), 12)], "/", "-"), "-"))
			culprits := get(t, ctx, "culprits", chromedp.Evaluate[[]string](`[...document.querySelectorAll("body *")].filter(e => !e.closest(".scroll") && e.getBoundingClientRect().right > 391 && ![...e.children].some(c => c.getBoundingClientRect().right > 391)).map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right))`))
			t.Errorf("%s is %d px wide on a 390 px screen: %v", page, wide, culprits)
		}
	}
	do(t, ctx, "a wide screen", chromedp.EmulateViewport(1280, 800))
	for _, page := range []string{"/targets/web1", "/audit"} {
		do(t, ctx, "open "+page, chromedp.Navigate(env.Master.URL+page), chromedp.WaitVisible(`main h1`))
		wide := get(t, ctx, "tables", chromedp.Evaluate[[]int](`[...document.querySelectorAll(".scroll")].filter(e => e.scrollWidth > e.clientWidth).map(e => e.scrollWidth)`))
		if len(wide) > 0 {
			t.Errorf("%s at 1280 px has tables %v px wide, wider than their boxes", page, wide)
		}
	}
}
