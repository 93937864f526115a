package agent

import (
	"bytes"
	"context"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/jsonhttp"
)

func TestEventSettings(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       EventSettings
		err        string
	}{
		{"default", "spool_limit: 5\n", DefaultEventSettings(), ""},
		{"all at error", "events:\n  forward: all\n  min_severity: 3\n", EventSettings{Forward: "all", MinSeverity: 3}, ""},
		{"severity by name", "events: {forward: unhandled, min_severity: warning}\n", EventSettings{Forward: "unhandled", MinSeverity: 2}, ""},
		{"unknown mode", "events: {forward: some}\n", EventSettings{}, `events: forward: "some" is not all, unhandled or none`},
		{"severity off the scale", "events: {min_severity: 7}\n", EventSettings{}, `line 1: severity: "7" is not a severity`},
		{"unknown key", "events:\n  forward: all\n  to: master\n", EventSettings{}, "events.to: line 3: unknown setting; the settings here are forward, min_severity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "target.yaml")
			os.WriteFile(path, []byte(tc.yaml), 0o600)
			s, err := LoadSettings(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Events != tc.want {
				t.Errorf("got %+v, want %+v", s.Events, tc.want)
			}
		})
	}
}

func TestErrorLogsRaiseAgentError(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	q := newEvents(func() time.Time { return now })
	var out bytes.Buffer
	log := q.logger(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}))).With(muster.LogTarget, "web1")

	log.Info("not shown, not an event")
	log.Warn("shown, not an event")
	log.Error("record finished run", muster.LogJob, "backup", muster.LogRunID, "r1", muster.LogErr, "disk I/O error")

	got := q.take()
	if len(got) != 1 {
		t.Fatalf("%d events, want 1", len(got))
	}
	e := got[0]
	if e.name != muster.EventAgentError || e.job != "backup" || e.runID != "r1" || !e.at.Equal(now) ||
		e.message != "record finished run target=web1 err=disk I/O error" || e.handled {
		t.Errorf("event %+v", e)
	}
	if s := out.String(); !strings.Contains(s, "shown, not an event") || strings.Contains(s, "not shown") || !strings.Contains(s, "record finished run") {
		t.Errorf("the log is not passed on as it was:\n%s", s)
	}
}

func TestQueueIsBounded(t *testing.T) {
	q := newEvents(time.Now)
	for range maxQueuedEvents + 10 {
		q.queue(localEvent{name: muster.EventAgentError})
	}
	if n := len(q.take()); n != maxQueuedEvents {
		t.Errorf("%d queued, want %d", n, maxQueuedEvents)
	}
}

// A poll reply read late (a target frozen while its reply waited, a slow
// network) carries the master's time from when it was sent, and looks
// like a clock far ahead. A poll that suggests a skew has it measured as
// SYNC-TIME does before clock_skew is raised: a clock in time raises
// nothing however late the reply was read, a clock truly off raises it
// once.
func TestClockSkewAtAPollIsMeasuredBeforeItIsRaised(t *testing.T) {
	for _, tc := range []struct {
		name   string
		master time.Duration // the master's clock, from the target's
		want   int
	}{
		{"a late reply, the clock in time", 0, 0},
		{"the clock an hour ahead", -time.Hour, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != agentproto.PathTime {
					http.NotFound(w, r)
					return
				}
				jsonhttp.WriteJSON(w, http.StatusOK, agentproto.TimeResponse{ServerTime: time.Now().Add(tc.master)})
			}))
			defer srv.Close()
			roots := x509.NewCertPool()
			roots.AddCert(srv.Certificate())
			m := newTestMain(t)
			c, err := newClient([]string{srv.URL}, srv.URL, roots, nil, 0, m.cfg.Now,
				func() time.Duration { return 10 * time.Second }, func(from, to string) {})
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			m.client = c
			ctx := context.Background()
			// Stamped 30 s before the target reads it, and an hour more
			// when the master's clock is an hour behind.
			m.checkClockSkew(ctx, time.Now().Add(tc.master-30*time.Second))
			m.checkClockSkew(ctx, time.Now().Add(tc.master-30*time.Second))
			var n int
			if err := m.store.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE name = ?`, string(muster.EventClockSkew)).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != tc.want {
				t.Errorf("%d clock_skew events, want %d", n, tc.want)
			}
		})
	}
}
