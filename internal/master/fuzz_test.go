package master

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// fuzzRoutes are the target protocol's endpoints that take a body, in the
// master's order, but defect: it ends the enlistment the fuzzer uses, and
// reads no body.
func fuzzRoutes(m *Main) []AgentRoute {
	var routes []AgentRoute
	for _, rt := range m.AgentRoutes() {
		if strings.HasPrefix(rt.Pattern, "POST ") && !strings.HasSuffix(rt.Pattern, agentproto.PathDefect) {
			routes = append(routes, rt)
		}
	}
	return routes
}

// checkReply fails unless w is a success or an error reply of the protocol
// that is the client's fault: whatever a target sends, the master neither
// panics nor answers with an internal error.
func checkReply(t *testing.T, what string, w interface {
	Result() *http.Response
}, body []byte) {
	resp := w.Result()
	if resp.StatusCode < 400 {
		return
	}
	var eb jsonhttp.ErrorBody
	if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
		t.Fatalf("%s: %d with a body that is not an error: %v", what, resp.StatusCode, err)
	}
	if resp.StatusCode >= 500 || eb.Error.Code == muster.EINTERNAL || jsonhttp.StatusCode(eb.Error.Code) != resp.StatusCode {
		t.Fatalf("%s with %q: %d %s: %s", what, body, resp.StatusCode, eb.Error.Code, eb.Error.Message)
	}
}

// FuzzAgentRequest sends bodies to every endpoint of the target protocol
// that reads one, as an enlisted target: the master decodes each, checks
// it and acts on it, and answers without an internal error.
func FuzzAgentRequest(f *testing.F) {
	m := testMaster(f, nil)
	tg := enlist(f, m, "web1")
	applyJob(f, m, "backup", "web1")
	routes := fuzzRoutes(m)
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	seeds := map[string]any{
		agentproto.PathEnlist:       agentproto.EnlistRequest{Token: "mst1." + strings.Repeat("a", 64) + "." + strings.Repeat("b", 43), Name: "web2", PollInterval: 60},
		agentproto.PathRenewExpired: agentproto.RenewExpiredRequest{Cert: []byte{0x30, 0x03}, CSR: []byte{0x30}, Signature: []byte{1}},
		agentproto.PathAcks:         agentproto.AckRequest{Acks: []agentproto.Ack{{Seq: 1, OK: true}, {Seq: 2, Error: "no such step"}}},
		agentproto.PathRuns:         agentproto.RunsRequest{Runs: []agentproto.RunReport{finishedRun("backup", "r1", "done\n")}},
		agentproto.PathResync:       agentproto.ResyncRequest{After: 3},
		agentproto.PathRenew:        agentproto.RenewRequest{CSR: []byte{0x30, 0x00}},
		agentproto.PathReEnlist:     agentproto.ReEnlistRequest{Location: "rack 4", TimeZone: "Europe/Paris", LocalTime: at, PollInterval: 60, Version: "1.0"},
		agentproto.PathEvents: agentproto.EventsRequest{Events: []agentproto.Event{{ID: 1, Name: muster.EventSpoolFull, Severity: muster.SeverityWarning,
			Message: "the spool is full", At: at}}},
	}
	for i, rt := range routes {
		_, path, _ := strings.Cut(rt.Pattern, " ")
		seed, ok := seeds[path]
		if !ok {
			f.Fatalf("no seed for %s: add one", rt.Pattern)
		}
		b, err := json.Marshal(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := routes[int(route)%len(routes)]
		method, path, _ := strings.Cut(rt.Pattern, " ")
		checkReply(t, rt.Pattern, serve(m, tg.tls, method, path, body), body)
	})
}

// FuzzPollQuery sends polls whose query (the cursor, the hold wanted and
// the heartbeat) is anything: the master answers with instructions or an
// error that is the target's fault, and a heartbeat it takes is within
// its bounds.
func FuzzPollQuery(f *testing.F) {
	m := testMaster(f, func(c *Config) { c.MaxPollHold = time.Nanosecond })
	tg := enlist(f, m, "web1")
	for _, q := range []string{
		"after=0&wait=55&local_time=2026-11-25T13:00:00.5%2B01:00&tz=Europe%2FParis&poll_interval=60&version=1.0&spool=3&spool_dropped=0&paused=false",
		"after=12&clock_offset=-250&paused=true",
		"after=-1",
		"after=0&poll_interval=0",
		"after=0&local_time=yesterday",
		"after=0&tz=" + strings.Repeat("x", 65),
		"after=0&tz=%1B%5B2J&version=1.0%0A",
		"after=99999999999999999999",
		"after=0&after=1&wait=-5",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err == nil {
			if hb, _, err := heartbeatFrom(q, time.Now()); err == nil {
				if muster.ValidatePollInterval("poll_interval", hb.PollInterval) != nil ||
					muster.ValidateTargetText("tz", hb.TimeZone, muster.MaxTargetTimeZone) != nil ||
					muster.ValidateTargetText("version", hb.Version, muster.MaxTargetVersion) != nil {
					t.Fatalf("heartbeat %+v taken from %q", hb, raw)
				}
			} else if muster.ErrorCode(err) != muster.EINVALID {
				t.Fatalf("heartbeat from %q: %v, want invalid", raw, err)
			}
		}
		r := httptest.NewRequest(http.MethodGet, agentproto.PathInstructions, nil)
		r.URL.RawQuery = raw
		checkReply(t, "poll", serveRequest(m, testAddr, tg.tls, r), []byte(raw))
	})
}
