package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// An admin sees the enlistment tokens that can still enlist a target, as
// `muster token list` shows them, and revokes one from the page; --all's
// list is the page's ?all=true. Readers and operators see no link to the
// page, and the page and a revocation they send anyway are refused.
func TestEnlistTokensPage(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	admin := muster.Actor{Kind: muster.ActorKey, Name: "admin-key", Role: catalog.RoleAdmin}
	if _, err := s.db.CreateEnlistToken(ctx, "hash-db1", "db1", 15*time.Minute, admin); err != nil {
		t.Fatal(err)
	}
	toks, err := s.db.FindEnlistTokens(ctx, false)
	if err != nil || len(toks) != 1 {
		t.Fatalf("the live tokens: %v %v, want db1's", toks, err)
	}
	id := strconv.FormatInt(toks[0].ID, 10)
	for _, role := range []string{catalog.RoleReader, catalog.RoleOperator} {
		c, token := s.signIn(role)
		if _, body := s.get(c, "/fleet"); strings.Contains(body, `href="/tokens"`) {
			t.Errorf("the %s's fleet page links to the enlistment tokens", role)
		}
		if status, _ := s.get(c, "/tokens"); status != http.StatusForbidden {
			t.Errorf("the %s's /tokens: %d, want 403", role, status)
		}
		if status, body := s.post(c, "/tokens/"+id+"/revoke", url.Values{"csrf": {token}}); status != http.StatusForbidden ||
			!strings.Contains(body, "POST /api/v1/tokens/{id}/revoke needs the admin role") {
			t.Errorf("the %s's revocation: %d, want 403 naming the role it needs\n%s", role, status, body)
		}
	}
	c, token := s.signIn(catalog.RoleAdmin)
	if _, body := s.get(c, "/fleet"); !strings.Contains(body, `href="/tokens"`) {
		t.Errorf("the admin's fleet page does not link to the enlistment tokens")
	}
	status, body := s.get(c, "/tokens")
	row := `<tr data-token="` + id + `"><td>` + id + `</td><td>db1</td><td>active</td>`
	if status != http.StatusOK || !strings.Contains(body, row) || !strings.Contains(body, `action="/tokens/`+id+`/revoke"`) {
		t.Fatalf("the admin's /tokens: %d, want db1's token, active, with Revoke\n%s", status, body)
	}
	if status, body := s.post(c, "/tokens/"+id+"/revoke", url.Values{"csrf": {token}}); status != http.StatusSeeOther {
		t.Fatalf("revoke: %d, want 303\n%s", status, body)
	}
	if _, body := s.get(c, "/tokens"); strings.Contains(body, `data-token="`+id+`"`) {
		t.Errorf("a revoked token is still listed among those that can enlist")
	}
	if _, body := s.get(c, "/tokens?all=true"); !strings.Contains(body, `<td>db1</td><td>revoked by admin-key</td>`) {
		t.Errorf("?all=true does not show db1's token revoked by admin-key:\n%s", body)
	}
	for path, want := range map[string]string{
		"/tokens?all=maybe":         "all: true or false, not &#34;maybe&#34;",
		"/tokens/abc/revoke":        "id: an enlistment token&#39;s id is a positive number",
		"/tokens/" + id + "/revoke": "revoked",
	} {
		var status int
		var body string
		if strings.HasSuffix(path, "/revoke") {
			status, body = s.post(c, path, url.Values{"csrf": {token}})
		} else {
			status, body = s.get(c, path)
		}
		if status < 400 || !strings.Contains(body, want) {
			t.Errorf("%s: %d, want a refusal saying %q\n%s", path, status, want, body)
		}
	}
}
