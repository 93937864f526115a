package agent

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// setPaused records the paused state the master sent, when it changes. A
// paused target fires no schedules and records STARTs as skipped; the state
// survives restarts, so a target paused for maintenance stays paused even
// if it restarts while the master is away.
func (m *Main) setPaused(ctx context.Context, paused bool) error {
	if paused == m.paused.Load() {
		return nil
	}
	v := "0"
	if paused {
		v = "1"
	}
	if err := m.store.setState(ctx, keyPaused, v); err != nil {
		return err
	}
	m.paused.Store(paused)
	if paused {
		m.log.Warn("paused by the master: no schedules fire and STARTs are skipped until it is resumed")
	} else {
		m.log.Info("resumed by the master")
	}
	return nil
}

// syncTime measures this target's clock against the master's (SYNC-TIME):
// the best of three round trips, the master's time taken as read at the
// midpoint. The offset is kept, reported at every poll, and warned about
// above clock_skew_threshold. The system clock is set only if the settings
// say set_clock and the daemon may (it runs as root); it is then measured
// again, so that what is kept and reported is the offset once set.
func (m *Main) syncTime(ctx context.Context) error {
	offset, err := m.measureOffset(ctx)
	if err != nil {
		return err
	}
	threshold := m.cfg.Settings.ClockSkewThreshold.Std()
	if offset.Abs() > threshold {
		m.log.Warn("this target's clock is off the master's", "offset", offset.Round(time.Millisecond), "threshold", threshold)
		if m.cfg.Settings.SetClock {
			// The skew found is told, though it is mended at once: a
			// clock that drifts this far has something wrong with it.
			m.clockMeasured(ctx, offset, "by SYNC-TIME")
			if err := setSystemClock(m.cfg.Now().Add(-offset)); err != nil {
				m.keepOffset(ctx, offset, "by SYNC-TIME")
				return fmt.Errorf("SYNC-TIME: cannot set the system clock: %w", err)
			}
			m.log.Warn("system clock set to the master's", "moved_by", (-offset).Round(time.Millisecond))
			if offset, err = m.measureOffset(ctx); err != nil {
				return err
			}
		}
	}
	return m.keepOffset(ctx, offset, "by SYNC-TIME")
}

// measureOffset measures how far this target's clock is ahead of the
// master's: the best of three round trips.
func (m *Main) measureOffset(ctx context.Context) (time.Duration, error) {
	var best, offset time.Duration
	for i := range 3 {
		t0 := m.cfg.Now()
		resp, err := m.client.time(ctx)
		if err != nil {
			return 0, fmt.Errorf("SYNC-TIME: %w", err)
		}
		t1 := m.cfg.Now()
		rtt := t1.Sub(t0)
		if i == 0 || rtt < best {
			best = rtt
			offset = t0.Add(rtt / 2).Sub(resp.ServerTime)
		}
	}
	return offset, nil
}

// keepOffset stores a measured offset, reported at every poll, and raises
// clock_skew above the threshold.
func (m *Main) keepOffset(ctx context.Context, offset time.Duration, how string) error {
	if err := m.store.setState(ctx, keyClockOffset, strconv.FormatInt(offset.Milliseconds(), 10)); err != nil {
		return err
	}
	m.clockOffset.Store(&offset)
	m.clockMeasured(ctx, offset, how)
	return nil
}

// setSystemClock sets the system's wall clock (needs CAP_SYS_TIME).
var setSystemClock = func(t time.Time) error {
	tv := syscall.NsecToTimeval(t.UnixNano())
	return syscall.Settimeofday(&tv)
}

// reEnlist sends this target's details to the master again (RE-ENLIST).
func (m *Main) reEnlist(ctx context.Context) error {
	return m.client.reEnlist(ctx, agentproto.ReEnlistRequest{
		Location: m.enl.Location, TimeZone: m.tzName, LocalTime: m.now(),
		PollInterval: m.enl.PollInterval, Version: muster.Version,
	})
}

func (c *client) time(ctx context.Context) (agentproto.TimeResponse, error) {
	var resp agentproto.TimeResponse
	err := c.call(ctx, http.MethodGet, agentproto.PathTime, nil, nil, &resp)
	return resp, err
}

func (c *client) reEnlist(ctx context.Context, req agentproto.ReEnlistRequest) error {
	return c.call(ctx, http.MethodPost, agentproto.PathReEnlist, nil, req, nil)
}
