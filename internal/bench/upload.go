package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// UploadResult is the upload scenario's report: run uploads of the largest
// size the master accepts, sent at once by simulated targets, each retried
// with backoff while the master refuses it as a target does, and the
// master's memory meanwhile.
type UploadResult struct {
	Scenario   string `json:"scenario"`
	Targets    int    `json:"targets"` // uploading at once
	TargetMode string `json:"target_mode"`
	Uploads    int    `json:"uploads"`    // accepted, each of BodyBytes
	BodyBytes  int64  `json:"body_bytes"` // the size of each upload, about
	// Shapes are the kinds of upload sent, by as many targets each.
	Shapes []string `json:"shapes"`
	// Refused counts the answers that told a target to come back later
	// (429 or 503); each was retried until accepted.
	Refused int `json:"refused"`
	// IdleRSSMiB is the master's resident set with the fleet enlisted and
	// polling, before the uploads; PeakRSSMiB its high-water mark while
	// they ran (VmHWM, reset before they start).
	IdleRSSMiB       float64 `json:"idle_rss_mib"`
	PeakRSSMiB       float64 `json:"peak_rss_mib"`
	PeakAboveIdleMiB float64 `json:"peak_above_idle_mib"`
	// PeakSource says how the peak was read: "vmhwm" when the high-water
	// mark could be reset, else "sampled" every 20 ms.
	PeakSource   string  `json:"peak_source"`
	ElapsedS     float64 `json:"elapsed_s"`
	MiBPerSecond float64 `json:"mib_per_s"`
	// UploadLatency runs from an upload's first attempt to its acceptance,
	// retries included.
	UploadLatency Summary `json:"upload_latency"`
	Verdict
}

// budgetUploadMiB bounds the master's memory above idle under any number
// of maximum-size uploads (docs/security.md).
const budgetUploadMiB = 256

func uploads(ctx context.Context, e *env) (Result, error) {
	if e.o.Mode == ModeProcess {
		return nil, fmt.Errorf("--mode process: the upload scenario uploads from simulated targets")
	}
	n := or(e.o.Targets, 24)
	total := or(e.o.Runs, 2*n)
	m, err := e.startMaster(ctx)
	if err != nil {
		return nil, err
	}
	sims, err := e.startSimTargets(ctx, m, n, newRecorder())
	if err != nil {
		return nil, err
	}
	if err := applyJobs(ctx, m, shellJob("upload", "true", targetNames(n))); err != nil {
		return nil, err
	}
	// Target i sends its uploads in rounds, each of shape i%2 with run ids
	// of its round. A body is shared by the targets that send it: run ids
	// are per target, so each upload records new runs, and this process
	// holds a body a round and shape rather than one an upload.
	rounds := (total + n - 1) / n
	bodies := make([][][]byte, rounds)
	for r := range bodies {
		for _, shape := range uploadShapes() {
			b, err := maxSizeUpload(r, shape.runMax, time.Now())
			if err != nil {
				return nil, err
			}
			bodies[r] = append(bodies[r], b)
		}
	}
	res := &UploadResult{Scenario: "upload", Targets: n, TargetMode: ModeSim, Uploads: total, BodyBytes: int64(len(bodies[0][0]))}
	for _, shape := range uploadShapes() {
		res.Shapes = append(res.Shapes, shape.name)
	}
	e.progress("%d targets send %d uploads of %.1f MiB (%s), %d at once", n, total, MiB(res.BodyBytes), strings.Join(res.Shapes, ", "), n)

	idle, err := ReadProc(m.Pid())
	if err != nil {
		return nil, err
	}
	res.IdleRSSMiB = MiB(idle.RSS)
	// Writing 5 to clear_refs resets the high-water mark to the present
	// resident set (Linux 4.0 and later).
	res.PeakSource = "vmhwm"
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", m.Pid()), []byte("5"), 0); err != nil {
		res.PeakSource = "sampled"
	}
	var sampled atomic.Int64
	stopSampling := sampleRSS(m.Pid(), &sampled)

	var mu sync.Mutex
	var lat []time.Duration
	t0 := time.Now()
	err = parallel(ctx, n, n, func(ctx context.Context, i int) error {
		for r := 0; r*n+i < total; r++ {
			start := time.Now()
			refused, err := sims[i].uploadBody(ctx, bodies[r][i%len(uploadShapes())])
			mu.Lock()
			res.Refused += refused
			lat = append(lat, time.Since(start))
			mu.Unlock()
			if err != nil {
				return err
			}
		}
		return nil
	})
	elapsed := time.Since(t0)
	stopSampling()
	if err != nil {
		return nil, err
	}
	after, err := ReadProc(m.Pid())
	if err != nil {
		return nil, err
	}
	peak := after.PeakRSS
	if res.PeakSource == "sampled" {
		peak = sampled.Load()
	}
	res.PeakRSSMiB = MiB(peak)
	res.PeakAboveIdleMiB = MiB(peak - idle.RSS)
	res.ElapsedS = elapsed.Seconds()
	res.MiBPerSecond = MiB(res.BodyBytes) * float64(total) / elapsed.Seconds()
	res.UploadLatency = Summarize(lat)
	return res, nil
}

// sampleRSS records the highest resident set of process pid into peak
// every 20 ms until the returned function is called.
func sampleRSS(pid int, peak *atomic.Int64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if st, err := ReadProc(pid); err == nil && st.RSS > peak.Load() {
				peak.Store(st.RSS)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// uploadShapes are the largest uploads: runs of one attempt with the largest
// output a master takes (catalog.MaxOutputBytes), and the largest runs it
// takes (agentproto.MaxRunReport), of several such attempts. The second
// costs a master more to write: each run is encoded and copied whole.
func uploadShapes() []uploadShape {
	return []uploadShape{
		{fmt.Sprintf("runs of %d MiB", catalog.MaxOutputBytes>>20), catalog.MaxOutputBytes + 64<<10},
		{fmt.Sprintf("runs of %d MiB", agentproto.MaxRunReport>>20), agentproto.MaxRunReport - 64<<10},
	}
}

// uploadShape is a size of run an upload is made of.
type uploadShape struct {
	name   string
	runMax int
}

// maxSizeUpload encodes finished runs of job "upload", each at most runMax
// bytes as sent, whose attempts have outputs as large as a master takes,
// up to a body just under the largest upload it accepts. The outputs are
// plain text lines, which decode to about as many bytes as they take on
// the wire: the most memory a body of this size can cost.
func maxSizeUpload(round, runMax int, at time.Time) ([]byte, error) {
	line := strings.Repeat("backup of /var/lib/app: copied block; ", 3) + "\n"
	output := strings.Repeat(line, catalog.MaxOutputBytes/len(line))
	// Each line's newline is two bytes on the wire; each run carries
	// about 1 KiB besides its attempts' outputs, each attempt 256 bytes.
	wire := func(out int) int { return out + out/len(line) + 256 }
	cut := func(room int) string { // the longest output that fits in room on the wire
		lines := max((room-256)*len(line)/(len(line)+1)/len(line), 0)
		return output[:min(lines*len(line), len(output))]
	}
	const want = agentproto.MaxRunsBody - (1 << 20)
	var req agentproto.RunsRequest
	size, code := 0, 0
	done := at.Add(time.Second)
	for want-size > 1024+wire(len(line)) {
		run := muster.Run{Job: "upload", RunID: fmt.Sprintf("upload-%03d-%03d", round, len(req.Runs)), Status: muster.RunSucceeded,
			Trigger: muster.TriggerOperator, StartedAt: at, FinishedAt: &done, DurationMS: 1000}
		runSize := 1024
		var chunks []agentproto.OutputChunk
		for {
			room := min(runMax, want-size) - runSize
			out := cut(room)
			if out == "" {
				break
			}
			chunks = append(chunks, agentproto.OutputChunk{Attempt: len(run.Steps), Data: out})
			run.Steps = append(run.Steps, muster.StepAttempt{Name: "main", Attempt: len(run.Steps) + 1, Status: muster.AttemptSucceeded,
				ExitCode: &code, StartedAt: at, DurationMS: 1000})
			runSize += wire(len(out))
		}
		if len(run.Steps) == 0 {
			break
		}
		req.Runs = append(req.Runs, agentproto.RunReport{Revision: 1, Run: agentproto.RunFromDomain(run), Output: chunks})
		size += runSize
	}
	return json.Marshal(req)
}

// uploadBody posts an encoded RunsRequest until the master takes it,
// backing off as a target does (100 ms doubling to 5 s, with jitter, or
// the Retry-After the master asks for when longer) while it answers 429 or
// 503. It returns how many times it was refused.
func (s *simTarget) uploadBody(ctx context.Context, body []byte) (refused int, err error) {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base.JoinPath(agentproto.PathRuns).String(), bytes.NewReader(body))
		if err != nil {
			return refused, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(agentproto.HeaderProtocol, strconv.Itoa(agentproto.Version))
		resp, err := s.hc.Do(req)
		if err != nil {
			return refused, err
		}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			refusal := jsonhttp.DecodeError(resp)
			resp.Body.Close()
			d := min(100*time.Millisecond<<min(refused, 6), 5*time.Second)
			d += time.Duration(rand.Int64N(int64(d) / 5))
			if after, ok := jsonhttp.RetryAfter(refusal); ok {
				d = max(d, after+time.Duration(rand.Int64N(int64(after)/5+1)))
			}
			refused++
			select {
			case <-ctx.Done():
				return refused, ctx.Err()
			case <-time.After(d):
			}
			continue
		}
		if resp.StatusCode >= 300 {
			err := jsonhttp.DecodeError(resp)
			resp.Body.Close()
			return refused, err
		}
		var out agentproto.RunsResponse
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil {
			return refused, err
		}
		for _, r := range out.Results {
			if !r.OK {
				return refused, fmt.Errorf("the master refused run %s: %s", r.RunID, r.Error)
			}
		}
		return refused, nil
	}
}

// Table writes the upload figures beside their budget.
func (r *UploadResult) Table(w io.Writer) error {
	return writeTable(w, []string{
		fmt.Sprintf("muster bench upload: %d run uploads of %.0f MiB (the largest the master takes: %s), %d at once (POST /agent/v1/runs)", r.Uploads, MiB(r.BodyBytes), strings.Join(r.Shapes, ", "), r.Targets),
		"fleet: master process (catalog: SQLite); " + describeMode(r.TargetMode, r.Targets) + ", each retrying a refused upload with backoff; TLS on 127.0.0.1",
		machine(),
	}, []figure{
		{name: "master memory above idle while uploading", measured: fmt.Sprintf("%.0f MiB (RSS %.0f → peak %.0f MiB, %s)", r.PeakAboveIdleMiB, r.IdleRSSMiB, r.PeakRSSMiB, r.PeakSource),
			budget: fmt.Sprintf("≤ %d MiB", budgetUploadMiB), result: verdict(r.limits()...)},
		{name: "uploads refused for later (429/503), then retried", measured: strconv.Itoa(r.Refused)},
		{name: "upload, first try to accepted", measured: dist(r.UploadLatency)},
		{name: "upload throughput", measured: fmt.Sprintf("%.0f MiB/s (%.1f s)", r.MiBPerSecond, r.ElapsedS)},
	})
}

func (r *UploadResult) limits() []limit {
	return []limit{atMost("peak_above_idle_mib", "peak above idle", r.PeakAboveIdleMiB, budgetUploadMiB, "MiB")}
}
