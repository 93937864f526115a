package master

import (
	"net/http"
	"strings"
	"testing"

	"github.com/musterhq/muster"
)

// /readyz answers 200 while the catalog answers, and 503 saying why when
// it cannot be reached; /healthz answers while the process is up.
func TestReadyz(t *testing.T) {
	m := testMaster(t, nil)
	if w := serve(m, nil, http.MethodGet, "/readyz", nil); w.Code != http.StatusOK || w.Body.String() != "ok\n" {
		t.Errorf("ready: %d %q, want 200 ok", w.Code, w.Body)
	}
	m.Catalog.Close() // the catalog is gone; Main.Close closes it again, harmlessly
	w := serve(m, nil, http.MethodGet, "/readyz", nil)
	if w.Code != http.StatusServiceUnavailable || errorCode(t, w) != muster.EUNAVAILABLE || !strings.Contains(w.Body.String(), "not ready: the catalog database does not answer") {
		t.Errorf("the catalog closed: %d %s, want 503 saying the catalog does not answer", w.Code, w.Body)
	}
	if w := serve(m, nil, http.MethodGet, "/healthz", nil); w.Code != http.StatusOK {
		t.Errorf("healthz with the catalog closed: %d, want 200 (the process is up)", w.Code)
	}
}
