package e2e_test

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agent"
	"github.com/musterhq/muster/internal/master"
	"github.com/musterhq/muster/internal/testenv"
)

// leafOf reads a target's current certificate from its data directory.
func leafOf(t *testing.T, env *testenv.Env, name string) (serial string, notAfter time.Time) {
	t.Helper()
	dir := filepath.Join(env.Dir, "target-"+name)
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return "", time.Time{}
	}
	return c.Leaf.SerialNumber.String(), c.Leaf.NotAfter
}

// shortCerts makes the master issue certificates of the given life.
func shortCerts(ttl time.Duration) func(*master.Config) {
	return func(c *master.Config) { c.CertTTL = ttl }
}

// clocked starts a master whose certificates last an hour, on masterClock,
// and enlists web1 with it when masterClock reads behind the real time: its
// certificate is as old as that. web1 runs on targetClock, once the master
// clock is back to the real time.
func clocked(t *testing.T, behind time.Duration, masterClock, targetClock *testenv.Clock) *testenv.Env {
	t.Helper()
	masterClock.Advance(-behind)
	env := clockedWeb1(t, masterClock, targetClock)
	masterClock.Advance(behind)
	env.StartTarget("web1")
	return env
}

// clockedWeb1 starts a master whose certificates live an hour and its
// target, each on the clock given, and enlists web1.
func clockedWeb1(t *testing.T, masterClock, targetClock *testenv.Clock) *testenv.Env {
	t.Helper()
	env := testenv.New(t, testenv.Options{
		Master: func(c *master.Config) { c.Now, c.CertTTL = masterClock.Now, time.Hour },
		// The renewal loop looks at the clock at least once a poll hold.
		Target: func(c *targetConfig) { c.Now, c.PollWait = targetClock.Now, time.Second },
	})
	if _, err := agent.Enlist(context.Background(), agent.EnlistOptions{MasterURL: env.Master.URL, Token: env.Token("web1"),
		Name: "web1", DataDir: filepath.Join(env.Dir, "target-web1")}); err != nil {
		t.Fatal(err)
	}
	return env
}

// renewed waits until web1's certificate is no longer the one with serial.
func renewed(t *testing.T, env *testenv.Env, serial string) string {
	t.Helper()
	var now string
	testenv.Eventually(t, wait, "a renewed certificate", func() bool {
		now, _ = leafOf(t, env, "web1")
		return now != "" && now != serial
	})
	return now
}

// Targets renew their certificates at two thirds of their life, over mutual
// TLS with the certificate itself, and keep working across renewals and a
// master restart.
func TestCertificateRenewsBeforeExpiry(t *testing.T) {
	masterClock, targetClock := &testenv.Clock{}, &testenv.Clock{}
	env := clocked(t, 41*time.Minute, masterClock, targetClock) // 41 of its 60 minutes gone
	first, _ := leafOf(t, env, "web1")
	second := renewed(t, env, first)

	env.RestartMaster()
	// An hour later, by the target's clock, the second is due in its turn.
	targetClock.Advance(41 * time.Minute)
	renewed(t, env, second)
	apply(t, env, shellJob("ping", "echo pong", "web1"))
	settled(t, env)
	if runs := startAndWait(t, env, "ping"); runs[0].Status != muster.RunSucceeded {
		t.Errorf("run after renewals: %s", runs[0].Status)
	}
}

// A target whose certificate expired while it could not reach the master
// renews by proving it holds the key, without a new token.
func TestExpiredCertificateRenewsByProofOfPossession(t *testing.T) {
	masterClock, targetClock := &testenv.Clock{}, &testenv.Clock{}
	env := clocked(t, 2*time.Hour, masterClock, targetClock) // expired an hour ago
	serial, notAfter := leafOf(t, env, "web1")
	if notAfter.After(time.Now()) {
		t.Fatalf("the certificate is valid until %s: the test proves nothing", notAfter)
	}
	renewed(t, env, serial)
	if _, na := leafOf(t, env, "web1"); !na.After(time.Now()) {
		t.Errorf("the renewed certificate ends at %s", na)
	}
	apply(t, env, shellJob("ping", "echo pong", "web1"))
	settled(t, env)
	if runs := startAndWait(t, env, "ping"); runs[0].Status != muster.RunSucceeded {
		t.Errorf("run after renewal: %s", runs[0].Status)
	}
}
