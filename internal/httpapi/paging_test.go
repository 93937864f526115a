package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/pki"
)

// nextLink is the link a reply names as its next page (Link: <…>;
// rel="next"), resolved against base; empty when the reply names none.
var nextLinkRE = regexp.MustCompile(`<([^>]*)>\s*;\s*rel="next"`)

func nextLink(t *testing.T, base string, h http.Header) string {
	t.Helper()
	m := nextLinkRE.FindStringSubmatch(h.Get("Link"))
	if m == nil {
		return ""
	}
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := url.Parse(m[1])
	if err != nil {
		t.Fatalf("Link %q: %v", h.Get("Link"), err)
	}
	return b.ResolveReference(ref).String()
}

// getPage reads one page of a list, and the link to the next.
func getPage[T any](t *testing.T, hc *http.Client, base, u, token string) ([]T, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error muster.Error `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		t.Fatalf("GET %s: %d %s: %s", u, resp.StatusCode, e.Error.Code, e.Error.Message)
	}
	var out []T
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out, nextLink(t, base, resp.Header)
}

// An auditor reads the whole audit log, page by page, following each
// reply's link to the next, while changes go on being recorded: every
// entry there was when the first page was read comes exactly once, newest
// first, and the last page links to none.
func TestAuditIsReadPageByPage(t *testing.T) {
	base, hc, db := apiServer(t)
	ctx := context.Background()
	const reader = "mat_reader-secret"
	self := muster.Actor{Kind: muster.ActorMaster, Name: "test"}
	if _, err := db.CreateAPIKey(ctx, catalog.NewAPIKey{Name: "ro", Role: catalog.RoleReader}, pki.HashSecret(reader), self); err != nil {
		t.Fatal(err)
	}
	for i := range 24 {
		if err := db.CreateGroup(ctx, fmt.Sprintf("g%02d", i), self); err != nil {
			t.Fatal(err)
		}
	}
	before, err := db.FindAudit(ctx, catalog.AuditFilter{Limit: catalog.MaxAuditList})
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 25 {
		t.Fatalf("the audit log holds %d entries, want 25", len(before))
	}

	var got []muster.AuditEntry
	next, pages := base+"/api/v1/audit?limit=10", 0
	for next != "" {
		var page []muster.AuditEntry
		page, next = getPage[muster.AuditEntry](t, hc, base, next, reader)
		got = append(got, page...)
		pages++
		if pages > 5 {
			t.Fatalf("still a next page after %d pages", pages)
		}
		// A change made between two reads is newer than every entry of
		// the walk: it neither shifts the pages nor comes in them.
		if err := db.CreateGroup(ctx, fmt.Sprintf("late%d", pages), self); err != nil {
			t.Fatal(err)
		}
	}
	if pages != 3 {
		t.Errorf("pages = %d, want 3 (10, 10 and 5 entries)", pages)
	}
	if len(got) != len(before) {
		t.Fatalf("read %d entries, want %d", len(got), len(before))
	}
	for i := range before {
		if got[i].ID != before[i].ID || got[i].Object != before[i].Object {
			t.Errorf("entry %d = %d %q, want %d %q", i, got[i].ID, got[i].Object, before[i].ID, before[i].Object)
		}
	}
}
