package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/musterhq/muster/internal/catalog"
)

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
	}
	keys, err := s.db.FindAPIKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Errorf("keys after refused creations: %d, want the 3 the test began with", len(keys))
	}
}
