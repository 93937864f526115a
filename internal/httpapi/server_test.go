package httpapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/catalog/sqlitestore"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/pki"
)

// apiServer serves the operator API over TLS on 127.0.0.1 with a catalog
// in a temporary directory, and returns its URL, a client of it, and the
// catalog.
func apiServer(t *testing.T) (string, *http.Client, *catalog.Catalog) {
	t.Helper()
	store, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := catalog.Open(context.Background(), store, catalog.Options{})
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := &httpapi.Server{DB: db, Log: slog.New(slog.DiscardHandler)}
	mux := http.NewServeMux()
	s.Routes(mux)
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	hc := srv.Client()
	t.Cleanup(hc.CloseIdleConnections)
	return srv.URL, hc, db
}

// routeURL fills a pattern's wildcards.
func routeURL(base, pattern string) (method, url string) {
	method, path, _ := strings.Cut(pattern, " ")
	for _, w := range []string{"{name}", "{seq}"} {
		path = strings.ReplaceAll(path, w, "1")
	}
	return method, base + path
}

// Every route of the operator API refuses a request without a valid token
// (401), and a reader's token can change nothing (403), before the request
// is read; the routes come from the server itself, so a new one is
// covered as soon as it is registered.
func TestEveryRouteChecksTheTokenAndRole(t *testing.T) {
	base, hc, db := apiServer(t)
	const reader = "mat_reader-secret"
	self := muster.Actor{Kind: muster.ActorMaster, Name: "test"}
	if _, err := db.CreateAPIKey(context.Background(), catalog.NewAPIKey{Name: "ro", Role: catalog.RoleReader}, pki.HashSecret(reader), self); err != nil {
		t.Fatal(err)
	}
	s := &httpapi.Server{}
	s.Routes(http.NewServeMux())
	tried := 0
	for _, pattern := range s.Patterns() {
		method, url := routeURL(base, pattern)
		for _, tc := range []struct {
			token string
			want  int
		}{
			{"", http.StatusUnauthorized},
			{"mat_not-a-token", http.StatusUnauthorized},
			{reader, http.StatusForbidden},
		} {
			if tc.token == reader && method == http.MethodGet {
				continue // a reader reads
			}
			req, err := http.NewRequest(method, url, strings.NewReader(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			code := muster.ErrorCode(jsonhttp.DecodeError(resp))
			resp.Body.Close()
			tried++
			if resp.StatusCode != tc.want || code != jsonhttp.ErrorCodeFromStatus(tc.want) {
				t.Errorf("%s with token %q: %d (%s), want %d", pattern, tc.token, resp.StatusCode, code, tc.want)
			}
		}
	}
	if tried < 2*len(s.Patterns()) {
		t.Errorf("%d requests for %d routes", tried, len(s.Patterns()))
	}
}
