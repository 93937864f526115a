package console_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/testenv"
)

// The audit page shows the newest entries and links to older ones, page
// after page, down to the first entry: with hundreds of entries a person
// reaches every one, each once, in a real browser; the last page links to
// none, and each page links back to the newest.
func TestConsoleAuditPagesInBrowser(t *testing.T) {
	chromium(t)
	env := testenv.New(t, testenv.Options{})
	ctx := newBrowser(t, 1280, 800)
	bg := context.Background()
	for i := range 230 {
		if err := env.Master.Catalog.CreateGroup(bg, fmt.Sprintf("g%03d", i), env.Master.Self()); err != nil {
			t.Fatal(err)
		}
	}
	link := loginLink(t, env)
	do(t, ctx, "sign in", signInWith(link), chromedp.WaitVisible(`main`))
	// Every entry, the login link's too.
	all, err := env.Master.Catalog.FindAudit(bg, catalog.AuditFilter{Limit: catalog.MaxAuditList})
	if err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "the audit page", chromedp.Navigate(env.Master.URL+"/audit"), chromedp.WaitVisible(`tr[data-entry]`))
	seen := map[string]bool{}
	var order []string
	for pages := 1; ; pages++ {
		if pages > 10 {
			t.Fatalf("still a link to older entries after %d pages", pages)
		}
		ids := get(t, ctx, "entries", chromedp.Evaluate[[]string](`[...document.querySelectorAll("tr[data-entry]")].map(r => r.dataset.entry)`))
		if len(ids) == 0 {
			t.Fatalf("page %d shows no entry", pages)
		}
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("entry %s shown twice", id)
			}
			seen[id] = true
			order = append(order, id)
		}
		if pages > 1 {
			newest := get(t, ctx, "link to the newest", chromedp.Evaluate[string](`document.querySelector('nav.pages a[rel="first"]')?.getAttribute("href") ?? ""`))
			if newest != "/audit" {
				t.Errorf("page %d links to the newest at %q, want /audit", pages, newest)
			}
		}
		older := get(t, ctx, "link to older", chromedp.Evaluate[bool](`document.querySelector('nav.pages a[rel="next"]') !== null`))
		if !older {
			break
		}
		// The next page is read by its link, as a person clicks it.
		do(t, ctx, "older entries", chromedp.Click(`nav.pages a[rel="next"]`), chromedp.WaitNotPresent(`tr[data-entry="`+ids[0]+`"]`),
			chromedp.WaitVisible(`tr[data-entry]`))
	}
	if len(order) != len(all) {
		t.Fatalf("the pages showed %d entries, want %d", len(order), len(all))
	}
	for i, e := range all {
		if order[i] != fmt.Sprint(e.ID) {
			t.Fatalf("entry %d shown is %s, want %d (newest first)", i, order[i], e.ID)
		}
	}
}
