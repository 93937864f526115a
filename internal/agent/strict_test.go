package agent

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// An instruction's payload is read as the master reads a request: a key
// given twice, which encoding/json would take the last of, and a key
// spelled in another case, which it would take as the field, are refused
// naming the key, never run as one reading of the two.
func TestInstructionPayloadRefusesAKeyGivenTwiceOrMisspelled(t *testing.T) {
	for _, tc := range []struct {
		name, payload, want string
	}{
		{"command given twice", `{"name":"j","enabled":true,"steps":[{"name":"s","shell":"echo safe","shell":"rm -rf /tmp/x"}]}`, "steps.shell: given twice"},
		{"name given twice", `{"name":"j","name":"k","enabled":true,"steps":[{"name":"s","shell":"true"}]}`, "name: given twice"},
		{"env key given twice", `{"name":"j","enabled":true,"steps":[{"name":"s","shell":"true","env":{"A":"1","A":"2"}}]}`, "steps.env.A: given twice"},
		{"field in another case", `{"name":"j","enabled":true,"steps":[{"name":"s","Shell":"true"}]}`, `steps.Shell: no such field; keys are case-sensitive: "shell"`},
		{"unknown field", `{"name":"j","enabled":true,"steps":[{"name":"s","kind":"docker"}]}`, "steps.kind: no such field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := agentproto.Instruction{Seq: 1, Operation: muster.OpInsert, Job: "j", Payload: json.RawMessage(tc.payload)}
			var j agentproto.InsertPayload
			err := decodeStrict(in, &j)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decode %s: %v (job %+v), want an error saying %q", tc.payload, err, j, tc.want)
			}
		})
	}
	in := agentproto.Instruction{Seq: 1, Operation: muster.OpInsert, Job: "j",
		Payload: json.RawMessage(`{"name":"j","enabled":true,"steps":[{"name":"s","shell":"true","env":{"A":"1","a":"2"}}]}`)}
	var j agentproto.InsertPayload
	if err := decodeStrict(in, &j); err != nil {
		t.Errorf("a payload with each key once: %v", err)
	}
}

// A poll reply is read strictly too: a key given twice or spelled in
// another case is refused, so the target never applies one reading of an
// ambiguous reply. A key it does not know is let through: a newer master
// may add one to a reply.
func TestPollReplyRefusesAKeyGivenTwiceOrMisspelled(t *testing.T) {
	const ins = `{"seq":1,"operation":"SET-POLL","payload":{"poll_interval":30}}`
	for _, tc := range []struct {
		name, reply, want string // want "": the reply is taken
	}{
		{"instructions given twice", `{"epoch":"e","protocol":2,"instructions":[],"instructions":[` + ins + `]}`, "instructions: given twice"},
		{"paused given twice", `{"epoch":"e","protocol":2,"paused":true,"paused":false,"instructions":[]}`, "paused: given twice"},
		{"seq given twice", `{"epoch":"e","protocol":2,"instructions":[{"seq":1,"seq":9,"operation":"SET-POLL"}]}`, "instructions.seq: given twice"},
		{"payload key given twice", `{"epoch":"e","protocol":2,"instructions":[{"seq":1,"operation":"SET-POLL","payload":{"poll_interval":30,"poll_interval":10}}]}`, "instructions.payload.poll_interval: given twice"},
		{"field in another case", `{"epoch":"e","protocol":2,"Paused":true,"instructions":[]}`, `Paused: no such field; keys are case-sensitive: "paused"`},
		{"unknown key twice", `{"epoch":"e","protocol":2,"later":1,"later":2,"instructions":[]}`, "later: given twice"},
		{"unknown key", `{"epoch":"e","protocol":2,"later":{"a":1},"instructions":[` + ins + `]}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := replyingMaster(t, tc.reply)
			resp, err := c.poll(context.Background(), 0, "e", 0, heartbeat{})
			if tc.want == "" {
				if err != nil || len(resp.Instructions) != 1 {
					t.Fatalf("poll: %v, %d instructions; want the reply taken, with 1", err, len(resp.Instructions))
				}
				return
			}
			if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("poll: %v (reply %+v), want %s saying %q", err, resp, muster.EINVALID, tc.want)
			}
		})
	}
}

// A master sends a target's instructions in sequence order. A reply that
// does not is refused whole, before any of it is applied: applied as it
// came, an instruction after a higher one would be skipped as replayed,
// and never acknowledged.
func TestPollReplyOutOfOrderIsRefused(t *testing.T) {
	m := newTestMain(t)
	m.enl.Epoch = "e"
	setPoll := func(seq, interval int) string {
		return `{"seq":` + strconv.Itoa(seq) + `,"operation":"SET-POLL","payload":{"poll_interval":` + strconv.Itoa(interval) + `}}`
	}
	m.client = replyingMaster(t, `{"epoch":"e","protocol":2,"instructions":[`+setPoll(2, 30)+`,`+setPoll(1, 40)+`]}`)
	err := m.pollOnce(context.Background())
	if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), "instruction 1 comes after 2") {
		t.Fatalf("poll: %v, want %s saying instruction 1 comes after 2", err, muster.EINVALID)
	}
	if m.enl.Cursor != 0 {
		t.Errorf("cursor %d, want 0: nothing of the reply applied", m.enl.Cursor)
	}
}

// replyingMaster returns a client of a master that answers every request
// with reply, until the test ends.
func replyingMaster(t *testing.T, reply string) *client {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(reply))
	}))
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c, err := newClient([]string{srv.URL}, srv.URL, roots, nil, time.Second, time.Now,
		func() time.Duration { return time.Minute }, func(string, string) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c
}
