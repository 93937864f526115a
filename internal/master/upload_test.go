package master

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/catalog"
)

// applyJob applies a job of one step aimed at the targets.
func applyJob(t testing.TB, m *Main, name string, targets ...string) {
	t.Helper()
	j := muster.NewJob()
	j.Name, j.Targets, j.Steps = name, targets, []muster.Step{{Name: "main", Shell: "true"}}
	if _, err := m.Catalog.ApplyJobs(context.Background(), []muster.Job{j}, catalog.ApplyOptions{}, m.Self()); err != nil {
		t.Fatal(err)
	}
}

// finishedRun is a finished run of job with one attempt of output.
func finishedRun(job, id, output string) agentproto.RunReport {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	done, code := at.Add(time.Second), 0
	return agentproto.RunReport{Revision: 1, Run: agentproto.RunFromDomain(muster.Run{Job: job, RunID: id, Status: muster.RunSucceeded,
		Trigger: muster.TriggerOperator, StartedAt: at, FinishedAt: &done, DurationMS: 1000,
		Steps: []muster.StepAttempt{{Name: "main", Attempt: 1, Status: muster.AttemptSucceeded, ExitCode: &code,
			StartedAt: at, DurationMS: 1000}}}), Output: []agentproto.OutputChunk{{Attempt: 0, Data: output}}}
}

// A large upload, written in parts as it is decoded, has every run
// answered, in order, and recorded.
func TestLargeRunUpload(t *testing.T) {
	m := testMaster(t, nil)
	tg := enlist(t, m, "web1")
	applyJob(t, m, "backup", "web1")
	var req agentproto.RunsRequest
	output := strings.Repeat("x", 512<<10)
	for i := range 20 { // 10 MiB: two parts
		req.Runs = append(req.Runs, finishedRun("backup", fmt.Sprintf("run-%02d", i), output))
	}
	w := serve(m, tg.tls, http.MethodPost, agentproto.PathRuns, req)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var resp agentproto.RunsResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	answered := 0
	for i, r := range resp.Results {
		if r.RunID != req.Runs[i].Run.RunID || !r.OK {
			t.Errorf("result %d: %+v, want %s taken", i, r, req.Runs[i].Run.RunID)
		}
		answered++
	}
	runs, err := m.Catalog.FindRuns(context.Background(), catalog.RunFilter{Job: "backup", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if answered != 20 || len(runs) != 20 {
		t.Errorf("%d runs answered and %d recorded; want 20 and 20", answered, len(runs))
	}
}

// A run report over its size refuses the upload before anything of it is
// written, naming the report.
func TestRunUploadWithAReportOverItsSize(t *testing.T) {
	m := testMaster(t, nil)
	tg := enlist(t, m, "web1")
	applyJob(t, m, "backup", "web1")
	big := finishedRun("backup", "run-1", strings.Repeat("x", agentproto.MaxRunReport))
	big.Run.Steps = append(big.Run.Steps, big.Run.Steps[0]) // outputs within the catalog's limit, the report over its own
	req := agentproto.RunsRequest{Runs: []agentproto.RunReport{finishedRun("backup", "run-0", "ok"), big}}
	w := serve(m, tg.tls, http.MethodPost, agentproto.PathRuns, req)
	if w.Code != http.StatusRequestEntityTooLarge || errorCode(t, w) != muster.ETOOLARGE || !strings.Contains(w.Body.String(), "runs[1]") {
		t.Errorf("%d %s, want 413 naming runs[1]", w.Code, w.Body)
	}
	runs, err := m.Catalog.FindRuns(context.Background(), catalog.RunFilter{Job: "backup"})
	if err != nil || len(runs) != 0 {
		t.Errorf("%d runs recorded (%v); want none", len(runs), err)
	}
}

// uploadHeld starts an upload from tg of declared bytes whose body does
// not arrive until the returned writer is written and closed.
func uploadHeld(m *Main, tg testTarget, declared int64) (*io.PipeWriter, *httptest.ResponseRecorder, chan struct{}) {
	pr, pw := io.Pipe()
	r := httptest.NewRequest(http.MethodPost, agentproto.PathRuns, pr)
	r.ContentLength = declared
	r.RemoteAddr = testAddr
	r.TLS = tg.tls
	r.Header.Set(agentproto.HeaderProtocol, "1")
	w, done := httptest.NewRecorder(), make(chan struct{})
	go func() {
		defer close(done)
		m.srv.Handler.ServeHTTP(w, r)
	}()
	return pw, w, done
}

// A target sends one upload of runs at a time: a second waits for the
// first to end (a target that gave one up sends it again at once, before
// the master has noticed), at most UploadWait, and is answered 429 after
// that. Another target's upload is not held back.
func TestRunUploadsOneAtATimePerTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := testMaster(t, nil)
		web1, web2 := enlist(t, m, "web1"), enlist(t, m, "web2")
		applyJob(t, m, "backup", "web1", "web2")
		small := func(id string) agentproto.RunsRequest {
			return agentproto.RunsRequest{Runs: []agentproto.RunReport{finishedRun("backup", id, "ok")}}
		}
		body, first, done := uploadHeld(m, web1, 100)
		synctest.Wait() // web1's first upload is reading its body

		start := time.Now()
		if w := serve(m, web2.tls, http.MethodPost, agentproto.PathRuns, small("r1")); w.Code != http.StatusOK || time.Since(start) != 0 {
			t.Errorf("web2's upload: %d %s after %s, want 200 at once", w.Code, w.Body, time.Since(start))
		}
		start = time.Now()
		w := serve(m, web1.tls, http.MethodPost, agentproto.PathRuns, small("r2"))
		if waited := time.Since(start); w.Code != http.StatusTooManyRequests || errorCode(t, w) != muster.ERATELIMIT || waited != m.cfg.Limits.UploadWait ||
			w.Header().Get("Retry-After") != "1" {
			t.Errorf("a second upload of web1 while the first goes on: %d %s after %s; want 429 after %s", w.Code, w.Body, waited, m.cfg.Limits.UploadWait)
		}

		second := make(chan *httptest.ResponseRecorder)
		start = time.Now()
		go func() { second <- serve(m, web1.tls, http.MethodPost, agentproto.PathRuns, small("r3")) }()
		synctest.Wait() // waiting for its turn
		time.Sleep(time.Second)
		body.Write([]byte("{}"))
		body.Close()
		<-done
		w = <-second
		if waited := time.Since(start); first.Code != http.StatusOK || w.Code != http.StatusOK || waited != time.Second {
			t.Errorf("the first upload: %d; a second, sent a second before the first ended: %d %s after %s; want 200, and 200 after 1s",
				first.Code, w.Code, w.Body, waited)
		}
		m.uploads.mu.Lock()
		defer m.uploads.mu.Unlock()
		if n := len(m.uploads.perTarget); n != 0 {
			t.Errorf("%d turns kept with no upload in progress", n)
		}
	})
}

// Uploads take turns for the memory they may hold: one that cannot have
// its share within UploadWait is answered 429, and is taken once the
// memory is free.
func TestRunUploadsWaitForMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := testMaster(t, nil)
		web1, web2 := enlist(t, m, "web1"), enlist(t, m, "web2")
		applyJob(t, m, "backup", "web1", "web2")
		// web1 declares an upload of the largest size: it takes all the
		// memory uploads may hold.
		body, held, done := uploadHeld(m, web1, maxRunsBody)
		synctest.Wait()
		small := agentproto.RunsRequest{Runs: []agentproto.RunReport{finishedRun("backup", "r1", "ok")}}
		start := time.Now()
		w := serve(m, web2.tls, http.MethodPost, agentproto.PathRuns, small)
		if waited := time.Since(start); w.Code != http.StatusTooManyRequests || errorCode(t, w) != muster.ERATELIMIT || waited != m.cfg.Limits.UploadWait ||
			w.Header().Get("Retry-After") != "1" {
			t.Errorf("web2's upload while web1's is under way: %d %s after %s; want 429 after %s", w.Code, w.Body, waited, m.cfg.Limits.UploadWait)
		}
		json.NewEncoder(body).Encode(agentproto.RunsRequest{})
		body.Close()
		<-done
		if held.Code != http.StatusOK {
			t.Errorf("web1's upload: %d %s", held.Code, held.Body)
		}
		if w := serve(m, web2.tls, http.MethodPost, agentproto.PathRuns, small); w.Code != http.StatusOK {
			t.Errorf("web2's upload again, the memory free: %d %s, want 200", w.Code, w.Body)
		}
	})
}

// A target has a bounded number of requests in progress.
func TestTargetRequestsAreCapped(t *testing.T) {
	m := testMaster(t, nil)
	tg := enlist(t, m, "web1")
	id, err := m.Catalog.AuthenticateTarget(context.Background(), serialOf(tg))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m.targetRequests.acquire(id.ID) {
		n++
	}
	w := serve(m, tg.tls, http.MethodGet, agentproto.PathTime, nil)
	if n != maxRequestsPerTarget || w.Code != http.StatusTooManyRequests || errorCode(t, w) != muster.ERATELIMIT || w.Header().Get("Retry-After") != "1" {
		t.Errorf("with %d requests in progress: %d %s (Retry-After %q); want 429 with %d, Retry-After 1", n, w.Code, w.Body, w.Header().Get("Retry-After"), maxRequestsPerTarget)
	}
	m.targetRequests.release(id.ID)
	if w := serve(m, tg.tls, http.MethodGet, agentproto.PathTime, nil); w.Code != http.StatusOK {
		t.Errorf("with one free: %d %s, want 200", w.Code, w.Body)
	}
}

// replyWatcher is a reply that calls next the first time the handler
// writes to it: what a target does as soon as it has read a reply.
type replyWatcher struct {
	*httptest.ResponseRecorder
	next func()
}

func (w *replyWatcher) Write(p []byte) (int, error) {
	if next := w.next; next != nil {
		w.next = nil
		next()
	}
	return w.ResponseRecorder.Write(p)
}

// A target sends its next upload as soon as it has read the reply to the
// last, which may be before the master's handler has returned: the room
// the last one took is free by then.
func TestRunUploadRoomIsFreeWhenTheReplyIsRead(t *testing.T) {
	m := testMaster(t, nil)
	tg := enlist(t, m, "web1")
	applyJob(t, m, "backup", "web1")
	upload := func(id string) *http.Request {
		b, _ := json.Marshal(agentproto.RunsRequest{Runs: []agentproto.RunReport{finishedRun("backup", id, "ok")}})
		r := httptest.NewRequest(http.MethodPost, agentproto.PathRuns, strings.NewReader(string(b)))
		r.RemoteAddr, r.TLS = testAddr, tg.tls
		r.Header.Set(agentproto.HeaderProtocol, strconv.Itoa(agentproto.Version))
		return r
	}
	next := httptest.NewRecorder()
	first := &replyWatcher{ResponseRecorder: httptest.NewRecorder(), next: func() { m.srv.Handler.ServeHTTP(next, upload("r2")) }}
	m.srv.Handler.ServeHTTP(first, upload("r1"))
	if first.Code != http.StatusOK || next.Code != http.StatusOK {
		t.Errorf("the first upload: %d; the next, sent as the reply was read: %d %s; want 200 and 200", first.Code, next.Code, next.Body)
	}
}

// A target's body with a key given twice, or spelled in another case, is
// refused naming the key, and nothing of it is recorded: encoding/json
// would take the last of two values, or fill "status" from "Status".
func TestAgentBodiesRefuseKeysNotSpelledExactly(t *testing.T) {
	m := testMaster(t, nil)
	tg := enlist(t, m, "web1")
	applyJob(t, m, "backup", "web1")
	rep, err := json.Marshal(finishedRun("backup", "run-1", "ok"))
	if err != nil {
		t.Fatal(err)
	}
	report := string(rep)
	for _, tc := range []struct{ path, body, want string }{
		{agentproto.PathRuns, `{"runs":[` + strings.Replace(report, `"revision":1`, `"revision":1,"revision":2`, 1) + `]}`,
			"runs[0].revision: given twice"},
		{agentproto.PathRuns, `{"runs":[` + strings.Replace(report, `"status":"succeeded"`, `"status":"succeeded","Status":"failed"`, 1) + `]}`,
			`runs[0].run.Status: no such field; keys are case-sensitive: "status"`},
		{agentproto.PathRuns, `{"runs":[` + report + `],"runs":[]}`, "runs: given twice"},
		{agentproto.PathAcks, `{"acks":[{"seq":1,"ok":false,"error":"no such step","ok":true}]}`, "acks.ok: given twice"},
		{agentproto.PathAcks, `{"acks":[{"seq":1,"OK":true}]}`, `acks.OK: no such field; keys are case-sensitive: "ok"`},
	} {
		w := serve(m, tg.tls, http.MethodPost, tc.path, []byte(tc.body))
		if code, msg := errorReply(t, w); w.Code != http.StatusBadRequest || code != muster.EINVALID || msg != tc.want {
			t.Errorf("%s %s: %d %s; want 400 %s", tc.path, tc.body, w.Code, w.Body, tc.want)
		}
	}
	// A body declared as another type than JSON is not read.
	for _, path := range []string{agentproto.PathRuns, agentproto.PathAcks} {
		body := `{"runs":[` + report + `]}`
		if path == agentproto.PathAcks {
			body = `{"acks":[{"seq":1,"ok":true}]}`
		}
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "text/plain")
		w := serveRequest(m, testAddr, tg.tls, r)
		if code, msg := errorReply(t, w); w.Code != http.StatusBadRequest || code != muster.EINVALID || !strings.HasPrefix(msg, "Content-Type:") {
			t.Errorf("%s as text/plain: %d %s; want 400 naming Content-Type", path, w.Code, w.Body)
		}
	}
	runs, err := m.Catalog.FindRuns(context.Background(), catalog.RunFilter{Job: "backup"})
	if err != nil || len(runs) != 0 {
		t.Errorf("%d runs recorded (%v); want none", len(runs), err)
	}
}
