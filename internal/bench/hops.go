package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agent"
)

// traceFile is where a bench target process writes its dispatch trace
// (`muster target --trace`), in its data directory.
const traceFile = "dispatch.trace"

// DispatchHops split start → running at each hop, each the time between two
// timestamps of the same start on this host's clock: the bench's own (the
// request sent, its answer read), the master's (the START transaction's
// clock, which its expiry is counted from; the poll reply's server_time),
// and the target's trace (`muster target --trace`: the reply read, the run
// committed, exec returned). Their p50s need not add up to the p50 of the
// whole; each run's hops do add up to its start → running.
type DispatchHops struct {
	// RequestToTransaction: the operator's request written, carried over
	// TLS, authenticated, decoded, until the START transaction holds the
	// catalog's write lock and reads its clock.
	RequestToTransaction Summary `json:"request_to_transaction"`
	// TransactionToReply: the START transaction (idempotency key, job,
	// sequence number, instruction, audit entry) and its commit, the held
	// poll woken, its instructions read, until the reply's server_time.
	TransactionToReply Summary `json:"transaction_to_poll_reply"`
	// ReplyToRead: the reply encoded and written, carried over TLS, read
	// and decoded by the target.
	ReplyToRead Summary `json:"poll_reply_to_target_read"`
	// ReadToCommit: the target's apply transaction and its synced commit.
	ReadToCommit Summary `json:"target_read_to_commit"`
	// CommitToExec: the run handed to its goroutine, and the step's
	// process started and let go. A shell step is armed (started while
	// the target commits, waiting at a gate); this is then the wait for
	// its exec if it outlasted the commit, and the gate's opening.
	CommitToExec Summary `json:"commit_to_exec_returned"`
	// RequestToResponse is for comparison: until the operator has the
	// answer to the start request.
	RequestToResponse Summary `json:"request_to_response"`
}

// dispatchSample is what the bench notes of one measured start.
type dispatchSample struct {
	runID     string
	sent      time.Time // the request
	answered  time.Time // its answer read
	expiresAt time.Time // the START's expiry, from the transaction's clock
}

// readTraces reads the dispatch traces of the target processes in dirs, by
// run id.
func readTraces(dirs []string) (map[string]agent.StartTrace, error) {
	out := map[string]agent.StartTrace{}
	for _, dir := range dirs {
		f, err := os.Open(filepath.Join(dir, traceFile))
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var t agent.StartTrace
			if err := json.Unmarshal(sc.Bytes(), &t); err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %w", f.Name(), err)
			}
			out[t.RunID] = t
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// hopsOf splits each sample at its hops; a sample without a trace is an
// error, for a trace missing is a hop unmeasured.
func hopsOf(samples []dispatchSample, traces map[string]agent.StartTrace) (*DispatchHops, error) {
	var req, tx, reply, commit, exec, answer []time.Duration
	for _, s := range samples {
		t, ok := traces[s.runID]
		if !ok {
			return nil, fmt.Errorf("run %s: no dispatch trace from its target", s.runID)
		}
		posted := s.expiresAt.Add(-muster.DefaultStartExpiry)
		req = append(req, posted.Sub(s.sent))
		tx = append(tx, time.Unix(0, t.ReplyWritten).Sub(posted))
		reply = append(reply, time.Duration(t.ReplyRead-t.ReplyWritten))
		commit = append(commit, time.Duration(t.Committed-t.ReplyRead))
		exec = append(exec, time.Duration(t.ExecReturned-t.Committed))
		answer = append(answer, s.answered.Sub(s.sent))
	}
	return &DispatchHops{
		RequestToTransaction: Summarize(req), TransactionToReply: Summarize(tx), ReplyToRead: Summarize(reply),
		ReadToCommit: Summarize(commit), CommitToExec: Summarize(exec), RequestToResponse: Summarize(answer),
	}, nil
}
