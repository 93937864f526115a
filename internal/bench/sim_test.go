package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// fakeMaster answers a simulated target's requests: its first poll with
// a START, later ones with nothing; the first acknowledgement and the
// first upload are refused, as a busy master refuses them (ERATELIMIT,
// to be sent again).
type fakeMaster struct {
	mu       sync.Mutex
	polls    int
	acks     []agentproto.Ack
	refused  map[string]bool
	revision []int // of the uploads taken
}

func (f *fakeMaster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	busy := func(what string) bool {
		if f.refused[what] {
			return false
		}
		f.refused[what] = true
		jsonhttp.WriteError(w, r, nil, muster.Errorf(muster.ERATELIMIT, "busy; send the %s again", what))
		return true
	}
	switch r.URL.Path {
	case agentproto.PathInstructions:
		f.polls++
		reply := agentproto.PollResponse{Instructions: []agentproto.Instruction{}}
		if f.polls == 1 {
			payload, _ := json.Marshal(agentproto.StartPayload{RunID: "r1"})
			reply.Instructions = append(reply.Instructions, agentproto.Instruction{Seq: 1, Operation: muster.OpStart, Job: "j", Payload: payload})
		}
		jsonhttp.WriteJSON(w, http.StatusOK, reply)
	case agentproto.PathAcks:
		if busy("acks") {
			return
		}
		var req agentproto.AckRequest
		json.NewDecoder(r.Body).Decode(&req)
		f.acks = append(f.acks, req.Acks...)
		jsonhttp.WriteJSON(w, http.StatusOK, struct{}{})
	case agentproto.PathRuns:
		if busy("runs") {
			return
		}
		var req agentproto.RunsRequest
		json.NewDecoder(r.Body).Decode(&req)
		var resp agentproto.RunsResponse
		for _, run := range req.Runs {
			f.revision = append(f.revision, int(run.Revision))
			resp.Results = append(resp.Results, agentproto.RunResult{RunID: run.Run.RunID, OK: true})
		}
		jsonhttp.WriteJSON(w, http.StatusOK, resp)
	default:
		http.NotFound(w, r)
	}
}

// A simulated target whose acknowledgement or upload the master refuses
// sends it again before it polls on, as a target does with what it has
// spooled: the run a START brought is recorded, not lost with the
// refused request (which left a fan-out waiting for it until it gave up).
func TestSimTargetSendsRefusedRequestsAgain(t *testing.T) {
	fm := &fakeMaster{refused: map[string]bool{}}
	srv := httptest.NewServer(fm)
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	rec := newRecorder()
	s := &simTarget{name: "t1", base: base, hc: srv.Client(), rec: rec, steps: map[string]string{}}
	defer s.hc.CloseIdleConnections()
	ctx := context.Background()

	// Each call stops at the first refusal; a target backs off and calls
	// again. The refusals are two, so four calls are room enough.
	for range 4 {
		s.pollOnce(ctx)
	}
	fm.mu.Lock()
	defer fm.mu.Unlock()
	if len(fm.acks) != 1 || fm.acks[0].Seq != 1 || !fm.acks[0].OK {
		t.Errorf("the master took acknowledgements %+v, want seq 1 ok", fm.acks)
	}
	if len(fm.revision) != 2 || fm.revision[0] != 1 || fm.revision[1] != 2 {
		t.Errorf("the master took uploads of revisions %v, want 1 then 2", fm.revision)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if _, ok := rec.starts["r1"]; !ok {
		t.Error("run r1 was not noted running")
	}
	if _, ok := rec.finishes["r1"]; !ok {
		t.Error("run r1 was not noted recorded")
	}
}
