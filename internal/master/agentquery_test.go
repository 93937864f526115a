package master

import (
	"net/http"
	"strings"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// A query parameter given twice is refused, naming it: the master would
// read the first value and a proxy or log in front of it perhaps the
// other, and a poll would do other than it said (paused=false&paused=true).
// A parameter the master does not read is still let through, as the
// protocol promises older masters.
func TestAgentEndpointsRefuseAQueryParameterGivenTwice(t *testing.T) {
	m := testMaster(t, nil)
	tg := enlist(t, m, "web1")
	for _, tc := range []struct {
		name, method, target, param string
		body                        any
	}{
		{"poll after", http.MethodGet, agentproto.PathInstructions + "?after=0&wait=0&after=7", agentproto.QueryAfter, nil},
		{"poll paused", http.MethodGet, agentproto.PathInstructions + "?after=0&wait=0&paused=false&paused=true", agentproto.QueryPaused, nil},
		{"poll epoch", http.MethodGet, agentproto.PathInstructions + "?epoch=a&after=0&wait=0&epoch=b", agentproto.QueryEpoch, nil},
		{"poll unknown twice", http.MethodGet, agentproto.PathInstructions + "?after=0&wait=0&future=1&future=2", "future", nil},
		{"runs sent_at", http.MethodPost, agentproto.PathRuns + "?sent_at=2026-12-07T10:00:00Z&sent_at=2026-12-07T11:00:00Z", agentproto.QuerySentAt, []byte(`{"runs":[]}`)},
		{"acks", http.MethodPost, agentproto.PathAcks + "?x=1&x=1", "x", []byte(`{"acks":[]}`)},
		{"empty name", http.MethodPost, agentproto.PathAcks + "?=1&=2", "", []byte(`{"acks":[]}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := serve(m, tg.tls, tc.method, tc.target, tc.body)
			if w.Code != http.StatusBadRequest {
				t.Fatalf("%s %s: %d %s, want 400", tc.method, tc.target, w.Code, w.Body)
			}
			code, msg := errorReply(t, w)
			if code != muster.EINVALID || !strings.HasPrefix(msg, tc.param+": given 2 times") {
				t.Errorf("%s %s: %s %q, want %s naming %s given 2 times", tc.method, tc.target, code, msg, muster.EINVALID, tc.param)
			}
		})
	}

	// Once each, and with a parameter this master does not read, a poll is
	// answered.
	w := serve(m, tg.tls, http.MethodGet, agentproto.PathInstructions+"?after=0&wait=0&future=1", nil)
	if w.Code != http.StatusOK {
		t.Errorf("a poll with each parameter once: %d %s, want 200", w.Code, w.Body)
	}
}
