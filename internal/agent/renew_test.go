package agent

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/master"
)

// logRecords is a log handler that keeps every record as a line.
type logRecords struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String()); return true })
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}

// text is every line, for a test's failure.
func (l *logRecords) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// count is how many lines hold s.
func (l *logRecords) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// renewedFrom starts a target enlisted in a master whose clock was behind
// by behind when it issued the certificate (and right after), and waits
// until the target has renewed it. It returns how the target logged it.
func renewedFrom(t *testing.T, behind time.Duration) *logRecords {
	t.Helper()
	masterClock := &clock{}
	masterClock.Advance(-behind)
	tm := startTestMaster(t, func(c *master.Config) { c.Now, c.CertTTL = masterClock.Now, time.Hour })
	log := &logRecords{}
	m := tm.enlist(t, "web1", func(c *Config) { c.Logger, c.PollWait = slog.New(log), time.Second })
	masterClock.Advance(behind)
	first := m.client.cert.Load().Leaf
	runTarget(t, m)
	waitFor(t, time.Minute, "a renewed certificate", func() bool {
		return m.client.cert.Load().Leaf.SerialNumber.Cmp(first.SerialNumber) != 0
	})
	if now := m.client.cert.Load().Leaf; !now.NotAfter.After(time.Now().Add(59 * time.Minute)) {
		t.Errorf("the renewed certificate ends at %s, want an hour from now", now.NotAfter)
	}
	// The renewed certificate works: the target uses it with the master.
	tm.apply(t, shellJob("ping", []string{"web1"}, "echo pong"))
	tm.settled(t)
	return log
}

// A certificate past two thirds of its life is renewed over mutual TLS,
// with the certificate itself.
func TestRenewalOverMutualTLS(t *testing.T) {
	log := renewedFrom(t, 41*time.Minute) // 41 of its 60 minutes gone
	if log.count(`certificate renewed by="mutual TLS"`) != 1 {
		t.Errorf("want one renewal over mutual TLS; the log:\n%s", log.text())
	}
}

// A certificate that expired (the master was away) is renewed by proof
// of possession of its key.
func TestRenewalOfAnExpiredCertificate(t *testing.T) {
	log := renewedFrom(t, 2*time.Hour)
	if log.count(`certificate renewed by="proof of possession`) != 1 {
		t.Errorf("want one renewal by proof of possession; the log:\n%s", log.text())
	}
}

// A certificate is renewed at two thirds of its life, and never twice
// within a third of a life: a target whose clock is far ahead of the
// master's finds a new certificate due as soon as it arrives.
func TestNextRenewal(t *testing.T) {
	issued := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	leaf := &x509.Certificate{NotBefore: issued.Add(-5 * time.Minute), NotAfter: issued.Add(24 * time.Hour)}
	for _, tc := range []struct {
		name    string
		renewed time.Time
		want    time.Time
	}{
		{"at two thirds of its life", time.Time{}, issued.Add(16 * time.Hour)},
		{"renewed long ago", issued.Add(-24 * time.Hour), issued.Add(16 * time.Hour)},
		{"renewed just now by a clock 20 hours ahead", issued.Add(20 * time.Hour), issued.Add(28 * time.Hour)},
	} {
		if got := nextRenewal(leaf, tc.renewed); !got.Equal(tc.want) {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// A target whose clock is behind the master's still holds, by its own
// clock, a certificate the master finds expired, and the master refuses
// it at TLS: the target renews by proof of possession then, rather than
// waiting, cut off, until its own clock says the certificate expired.
func TestRenewalWithAClockBehindTheMasters(t *testing.T) {
	masterClock := &clock{}
	masterClock.Advance(-80 * time.Minute) // the certificate ends 20 minutes ago, by the master's clock
	tm := startTestMaster(t, func(c *master.Config) { c.Now, c.CertTTL = masterClock.Now, time.Hour })
	log := &logRecords{}
	behind := func() time.Time { return time.Now().Add(-30 * time.Minute) } // the certificate has 10 minutes left, by this one
	m := tm.enlist(t, "web1", func(c *Config) { c.Logger, c.PollWait, c.Now = slog.New(log), time.Second, behind })
	masterClock.Advance(80 * time.Minute)
	first := m.client.cert.Load().Leaf
	if !behind().Before(first.NotAfter) || !time.Now().After(first.NotAfter) {
		t.Fatalf("the certificate ends at %s: want after the target's clock (%s), before the master's", first.NotAfter, behind())
	}
	runTarget(t, m)
	waitFor(t, time.Minute, "a renewed certificate", func() bool {
		return m.client.cert.Load().Leaf.SerialNumber.Cmp(first.SerialNumber) != 0
	})
	// The renewal is logged once the new certificate is in use.
	tm.apply(t, shellJob("ping", []string{"web1"}, "echo pong"))
	tm.settled(t)
	waitFor(t, time.Minute, "the renewal logged", func() bool { return log.count(`certificate renewed by=`) > 0 })
	if log.count(`certificate renewed by="proof of possession`) != 1 {
		t.Errorf("want one renewal by proof of possession; the log:\n%s", log.text())
	}
}
