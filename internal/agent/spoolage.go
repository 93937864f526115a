package agent

import (
	"context"
	"sync"
	"time"
)

// spoolAges follows how long runs have waited in the spool to be uploaded.
// A run is timed from the first time it is seen waiting, at a poll or a
// scrape of the target's metrics, and forgotten once it is seen no longer
// waiting: a run uploaded between two looks is never counted, and one
// that waits while the master is away grows old. (A run's own start time
// would not do: a long run waits for a moment each time it has new output.)
type spoolAges struct {
	mu   sync.Mutex
	seen map[string]time.Time // run id → first seen waiting
}

// look records the runs waiting now, and returns how long the one seen
// first has waited (0 when none waits).
func (s *spoolAges) look(waiting []string, now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]time.Time, len(waiting))
	var oldest time.Duration
	for _, id := range waiting {
		at, ok := s.seen[id]
		if !ok {
			at = now
		}
		next[id] = at
		oldest = max(oldest, now.Sub(at))
	}
	s.seen = next
	return oldest
}

// spool returns how many runs wait to be uploaded, those waiting in memory
// for a full disk included, and how long the oldest in the store has
// waited.
func (m *Main) spool(ctx context.Context) (depth int, oldest time.Duration) {
	ids, err := m.store.unsentRunIDs(ctx)
	if err != nil {
		m.log.Debug("reading the spool", "err", err)
	}
	waiting, _ := m.backlog.waiting()
	return len(ids) + waiting, m.spoolAges.look(ids, m.cfg.Now())
}
