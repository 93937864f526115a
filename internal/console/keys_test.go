package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/pki"
)

var secretShown = regexp.MustCompile(`<pre>(mat_[^<]+)</pre>`)

// Creating a key answers with a redirect, so that going back to the page or
// reloading it sends nothing again; the page it goes to shows the secret
// once.
func TestCreatedKeyShownOnceAfterARedirect(t *testing.T) {
	s := newSite(t)
	c, token := s.signIn(catalog.RoleAdmin)
	status, body := s.post(c, "/keys", url.Values{"csrf": {token}, "name": {"alice"}, "role": {"reader"}, "ttl_days": {"90"}})
	if status != http.StatusSeeOther {
		t.Fatalf("create a key: %d, want 303 to the keys page\n%s", status, body)
	}
	status, body = s.get(c, "/keys")
	m := secretShown.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil || !strings.Contains(body, "Key <strong>alice</strong> (reader) created") {
		t.Fatalf("the keys page after creating alice: %d, does not show its secret\n%s", status, body)
	}
	if _, err := s.db.AuthenticateAPIKey(context.Background(), pki.HashSecret(m[1])); err != nil {
		t.Fatalf("the secret shown does not authenticate: %v", err)
	}
	if _, body = s.get(c, "/keys"); secretShown.MatchString(body) {
		t.Fatalf("the keys page shows the secret a second time\n%s", body)
	}
	// Another browser signed in as the same admin never sees it.
	other, otherToken := s.signIn(catalog.RoleAdmin)
	if status, _ := s.post(other, "/keys", url.Values{"csrf": {otherToken}, "name": {"bob"}, "role": {"reader"}}); status != http.StatusSeeOther {
		t.Fatalf("create bob: %d", status)
	}
	if _, body = s.get(c, "/keys"); secretShown.MatchString(body) {
		t.Fatalf("a key made in another browser shows its secret here\n%s", body)
	}
}

// A key's lifetime in days is checked before it is turned into a duration,
// which would overflow: 213504 days came out as 25 minutes.
func TestKeyLifetimeInDays(t *testing.T) {
	s := newSite(t)
	c, token := s.signIn(catalog.RoleAdmin)
	for _, days := range []string{"213504", "3651", "-1", "2.5"} {
		status, body := s.post(c, "/keys", url.Values{"csrf": {token}, "name": {"k" + strings.ReplaceAll(days, ".", "")}, "role": {"reader"}, "ttl_days": {days}})
		if status != http.StatusBadRequest || !strings.Contains(body, "ttl_days: ") {
			t.Errorf("ttl_days=%s: %d, want 400 naming ttl_days\n%s", days, status, body)
		}
		if !strings.Contains(body, "data-history-back>Back to the form</a>") {
			t.Errorf("ttl_days=%s: the refusal offers no way back to the form\n%s", days, body)
		}
	}
	keys, err := s.db.FindAPIKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Errorf("keys after refused creations: %d, want the 3 the test began with", len(keys))
	}
}

// The keys page says what `muster apikey list` says of each key: a key
// without an expiry expires never, one never used was last used never,
// and a revoked key says by whom, where the page left the cells empty.
func TestKeysPageSaysNeverAndByWhom(t *testing.T) {
	s := newSite(t)
	c, token := s.signIn(catalog.RoleAdmin)
	for _, name := range []string{"alice", "bob"} {
		if status, _ := s.post(c, "/keys", url.Values{"csrf": {token}, "name": {name}, "role": {"reader"}, "ttl_days": {"0"}}); status != http.StatusSeeOther {
			t.Fatalf("create %s: %d", name, status)
		}
	}
	if status, _ := s.post(c, "/keys/bob/revoke", url.Values{"csrf": {token}}); status != http.StatusSeeOther {
		t.Fatalf("revoke bob: %d", status)
	}
	_, body := s.get(c, "/keys")
	for _, want := range []string{
		`<th scope="row">alice</th><td>reader</td><td>all</td><td>active</td>`,
		`<th scope="row">bob</th><td>reader</td><td>all</td><td>revoked by admin-key</td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the keys page does not say %q", want)
		}
	}
	row := body[strings.Index(body, `<th scope="row">alice</th>`):]
	row = row[:strings.Index(row, "</tr>")]
	if n := strings.Count(row, "<td>never</td>"); n != 2 {
		t.Errorf("alice's row says never %d times, want 2 (expires, last used): %s", n, row)
	}
}
