package master

import (
	"testing"
	"testing/synctest"
)

// The answerers' stop waits for a poll handler that was let park its
// poll (the server does not wait for a handler whose connection it gave
// up), and no handler parks once the stop began.
func TestAnswerersStopWaitsForPollHandlers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newAnswerers(nil)
		q.start()
		if !q.enter() {
			t.Fatal("a poll handler may not park while the answerers serve")
		}
		stopped := make(chan struct{})
		go func() { q.stop(); close(stopped) }()
		synctest.Wait()
		select {
		case <-stopped:
			t.Fatal("stop returned while a poll handler was parking its poll")
		default:
		}
		if q.enter() {
			t.Fatal("a poll handler may park once the answerers are stopping")
		}
		q.leave()
		synctest.Wait()
		select {
		case <-stopped:
		default:
			t.Fatal("stop did not return once the poll handler left")
		}
	})
}
