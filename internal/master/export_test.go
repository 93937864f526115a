package master

import (
	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// Limits the external tests check the defaults against.
const (
	HandshakeTimeout  = readHeaderTimeout
	ReadHeaderTimeout = readHeaderTimeout
	MaxAnonymousBody  = maxAnonymousBody
)

// UploadTurns counts the uploads in progress or waiting their turn, by
// target and kind.
func UploadTurns(m *Main) int {
	m.uploads.mu.Lock()
	defer m.uploads.mu.Unlock()
	return len(m.uploads.perTarget)
}

// ParkedPolls counts the polls parked in the master's hub.
func ParkedPolls(m *Main) int {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	n := 0
	for _, polls := range m.hub.parked {
		n += len(polls)
	}
	return n
}

// StrandedPolls counts the polls parked in the master's hub though a
// wake-up or a poke came for them since they subscribed: a poll the hub
// should have handed over, or refused to park, and that waits for its
// hold to end instead.
func StrandedPolls(m *Main) int {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	n := 0
	for _, polls := range m.hub.parked {
		for p := range polls {
			if isClosed(p.woken) || isClosed(p.poked) {
				n++
			}
		}
	}
	return n
}

// Gaps in a poll's life where RaceWakeUps runs its race.
const (
	GapSubscribe = gapSubscribe
	GapPark      = gapPark
)

// RaceWakeUps has the master's hub call race as a poll subscribes to
// wake-ups and as it parks, before either.
func RaceWakeUps(m *Main, race func(gap string, target int64)) { m.hub.race.Store(&race) }

// HeldPolls is the muster_polls_held gauge.
func HeldPolls(m *Main) float64 { return m.metrics.held.Value() }

// TargetRequests counts the requests of targets in progress.
func TargetRequests(m *Main) int {
	m.targetRequests.mu.Lock()
	defer m.targetRequests.mu.Unlock()
	n := 0
	for _, k := range m.targetRequests.n {
		n += k
	}
	return n
}

// StoreQueries counts the calls of a store method the master made.
func StoreQueries(m *Main, op string) uint64 {
	return m.metrics.storeQueries.WithLabelValues(op).Count()
}

// Heard delivers c to the master as the notification of another master's
// commit.
func Heard(m *Main, c catalog.Commit) { m.heard(c, false) }

// RunsEnded is muster_runs_total for job and status.
func RunsEnded(m *Main, job string, status muster.RunStatus) float64 {
	return m.metrics.runsEnded.WithLabelValues(job, string(status)).Value()
}
