package master

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/pki"
)

// A pause committed after a poll was authenticated, but before it held,
// pokes nobody: the poll must read the state after it subscribes to pokes,
// and answer at once with the pause, not hold for 55 s with the state its
// authentication read. The bubble's clock shows whether it held.
func TestPollAnswersAPauseCommittedBeforeItHeld(t *testing.T) {
	for _, tc := range []struct {
		name     string
		believed string // what the target believes, as its poll says
		paused   bool   // the state committed after authentication
	}{
		{"paused", "false", true},
		{"resumed", "true", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := testMaster(t, nil)
				tg := enlist(t, m, "web1")
				ctx := context.Background()
				if !tc.paused {
					if _, err := m.Catalog.SetPaused(ctx, []string{"web1"}, "", true, m.Self()); err != nil {
						t.Fatal(err)
					}
				}
				// What authentication read: the state before the change.
				stale, err := m.Catalog.AuthenticateTarget(ctx, serialOf(tg))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := m.Catalog.SetPaused(ctx, []string{"web1"}, "", tc.paused, m.Self()); err != nil {
					t.Fatal(err)
				}

				r := httptest.NewRequest(http.MethodGet, agentproto.PathInstructions+"?after=0&wait=55&poll_interval=60&paused="+tc.believed, nil)
				w := httptest.NewRecorder()
				start := time.Now()
				if err := (&agent{m: m}).poll(w, r, stale); err != nil {
					t.Fatal(err)
				}
				if held := time.Since(start); held != 0 {
					t.Errorf("the poll held %s before answering; want an answer at once", held)
				}
				var reply agentproto.PollResponse
				if err := json.Unmarshal(w.Body.Bytes(), &reply); err != nil {
					t.Fatal(err)
				}
				if reply.Paused != tc.paused {
					t.Errorf("the reply says paused=%t, want %t", reply.Paused, tc.paused)
				}
			})
		})
	}
}

// A pause committed while a poll is held answers it at once.
func TestPollAnswersAPauseWhileHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := testMaster(t, nil)
		tg := enlist(t, m, "web1")
		ctx := context.Background()
		id, err := m.Catalog.AuthenticateTarget(ctx, serialOf(tg))
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodGet, agentproto.PathInstructions+"?after=0&wait=55&poll_interval=60&paused=false", nil)
		w := httptest.NewRecorder()
		done := make(chan time.Duration)
		start := time.Now()
		go func() {
			(&agent{m: m}).poll(w, r, id)
			done <- time.Since(start)
		}()
		synctest.Wait() // the poll is held
		time.Sleep(10 * time.Second)
		if _, err := m.Catalog.SetPaused(ctx, []string{"web1"}, "", true, m.Self()); err != nil {
			t.Fatal(err)
		}
		if held := <-done; held != 10*time.Second {
			t.Errorf("the poll answered after %s; want 10s, when the pause was committed", held)
		}
		var reply agentproto.PollResponse
		if err := json.Unmarshal(w.Body.Bytes(), &reply); err != nil {
			t.Fatal(err)
		}
		if !reply.Paused {
			t.Error("the reply does not say paused")
		}
	})
}

// A poll held by its handler is answered at once when its target is
// deleted with --force, or defects: refused, as its next request would be.
func TestHeldPollIsRefusedWhenItsTargetLeaves(t *testing.T) {
	for _, leave := range []string{"deleted with --force", "defected"} {
		t.Run(leave, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := testMaster(t, nil)
				tg := enlist(t, m, "web1")
				ctx := context.Background()
				id, err := m.Catalog.AuthenticateTarget(ctx, serialOf(tg))
				if err != nil {
					t.Fatal(err)
				}
				r := httptest.NewRequest(http.MethodGet, agentproto.PathInstructions+"?after=0&wait=55&poll_interval=60&paused=false", nil)
				w := httptest.NewRecorder()
				type result struct {
					held time.Duration
					err  error
				}
				done := make(chan result)
				start := time.Now()
				go func() {
					err := (&agent{m: m}).poll(w, r, id)
					done <- result{time.Since(start), err}
				}()
				synctest.Wait() // the poll is held
				time.Sleep(10 * time.Second)
				if leave == "defected" {
					err = m.Catalog.DefectTarget(ctx, id.ID, muster.Actor{Kind: muster.ActorTarget, Name: "web1"})
				} else {
					err = m.Catalog.DeleteTarget(ctx, "web1", true, m.Self())
				}
				if err != nil {
					t.Fatal(err)
				}
				res := <-done
				if res.held != 10*time.Second || muster.ErrorCode(res.err) != muster.EUNAUTHORIZED {
					t.Errorf("the poll answered after %s with %v (%s); want after 10s, when the target left, unauthorized", res.held, res.err, w.Body)
				}
			})
		})
	}
}

// A target that gave up on a held poll's connection polls again while the
// master still holds the first: when the first is done, the second must
// still be poked.
func TestHubPokesASecondPollAfterTheFirstIsDone(t *testing.T) {
	h := NewHub()
	first := h.Poked(7)
	second := h.Poked(7)
	h.Done(7, first)
	if !h.Poke([]int64{7}) {
		t.Fatal("Poke found no poll held, with the second still waiting")
	}
	select {
	case <-second:
	default:
		t.Fatal("the second poll was not poked")
	}
	h.Done(7, second)
	if h.Poke([]int64{7}) {
		t.Error("Poke found a poll held after both were done")
	}
}

// serialOf returns the serial of the target's certificate, as the catalog
// knows it.
func serialOf(tg testTarget) string { return pki.SerialString(tg.cert.SerialNumber) }

// A poll whose heartbeat carries a time zone or version that enlisting
// would refuse is answered all the same, since a target whose polls were
// refused would get no instructions; the field is stored as unreported
// and the master logs it, naming the target and the field.
func TestPollLeavesOutHeartbeatTextItWouldRefuse(t *testing.T) {
	var log syncBuffer
	m := testMaster(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&log, nil)) })
	tg := enlist(t, m, "web1")
	for _, c := range []struct {
		tz, version     string
		wantTZ, wantVer string
		field, rule     string
	}{
		{"Europe/Paris\x1b[2J", "1.0", "", "1.0", "tz", "only printable text on one line"},
		{"Europe/Paris", "1.0\n1.1", "Europe/Paris", "", "version", "only printable text on one line"},
		{"Europe/Paris", strings.Repeat("1", 65), "Europe/Paris", "", "version", "at most 64 characters, not 65"},
	} {
		q := url.Values{agentproto.QueryAfter: {"0"}, agentproto.QueryWait: {"0"},
			agentproto.QueryTimeZone: {c.tz}, agentproto.QueryVersion: {c.version}}
		w := serve(m, tg.tls, http.MethodGet, agentproto.PathInstructions+"?"+q.Encode(), nil)
		if w.Code != http.StatusOK {
			t.Fatalf("poll with tz %q and version %q: %d %s, want 200", c.tz, c.version, w.Code, w.Body)
		}
		got, err := m.Catalog.FindTarget(context.Background(), "web1")
		if err != nil {
			t.Fatal(err)
		}
		if got.TimeZone != c.wantTZ || got.Version != c.wantVer {
			t.Errorf("poll with tz %q and version %q stored %q and %q, want %q and %q", c.tz, c.version, got.TimeZone, got.Version, c.wantTZ, c.wantVer)
		}
		if want := c.field + ": " + c.rule; !strings.Contains(log.String(), want) {
			t.Errorf("the master's log does not say %q:\n%s", want, log.String())
		}
	}
	if want := `msg="heartbeat fields left out" target=web1`; !strings.Contains(log.String(), want) {
		t.Errorf("the master's log does not say %q:\n%s", want, log.String())
	}
	// What a target keeps sending is said once, and again after a poll
	// that sent nothing to leave out.
	poll := func(version string) {
		t.Helper()
		q := url.Values{agentproto.QueryAfter: {"0"}, agentproto.QueryWait: {"0"}, agentproto.QueryVersion: {version}}
		if w := serve(m, tg.tls, http.MethodGet, agentproto.PathInstructions+"?"+q.Encode(), nil); w.Code != http.StatusOK {
			t.Fatalf("poll with version %q: %d %s", version, w.Code, w.Body)
		}
	}
	said := func() int { return strings.Count(log.String(), "heartbeat fields left out") }
	before := said()
	for _, v := range []string{"1\n2", "1\n2", "1\n2", "1.0", "1\n2"} {
		poll(v)
	}
	if n := said() - before; n != 2 {
		t.Errorf("five polls (bad, the same twice, good, bad) said %d times that fields were left out, want 2:\n%s", n, log.String())
	}
}
