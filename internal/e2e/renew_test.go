package e2e_test

import (
	"crypto/tls"
	"path/filepath"
	"testing"
	"time"

	"github.com/musterhq/muster"
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

func shortCerts(ttl time.Duration) func(*master.Config) {
	return func(c *master.Config) { c.CertTTL = ttl }
}

// Targets renew their certificates at two thirds of their life, by
// themselves, and keep working across renewals and a master restart.
func TestCertificateRenewsBeforeExpiry(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Master: shortCerts(3 * time.Second)})
	apply(t, env, shellJob("ping", "echo pong", "web1"))
	settled(t, env)

	first, _ := leafOf(t, env, "web1")
	seen := map[string]bool{first: true}
	testenv.Eventually(t, 15*time.Second, "two renewals", func() bool {
		s, _ := leafOf(t, env, "web1")
		if s != "" {
			seen[s] = true
		}
		return len(seen) >= 3
	})
	env.RestartMaster()
	s, _ := leafOf(t, env, "web1")
	testenv.Eventually(t, 15*time.Second, "a renewal after the master restarted", func() bool {
		now, _ := leafOf(t, env, "web1")
		return now != "" && now != s
	})
	if runs := startAndWait(t, env, "ping"); runs[0].Status != muster.RunSucceeded {
		t.Errorf("run after renewals: %s", runs[0].Status)
	}
}

// A target whose certificate expired while it could not reach the master
// renews by proving it holds the key, without a new token.
func TestExpiredCertificateRenewsByProofOfPossession(t *testing.T) {
	env := testenv.New(t, testenv.Options{Targets: []string{"web1"}, Master: shortCerts(3 * time.Second)})
	apply(t, env, shellJob("ping", "echo pong", "web1"))
	settled(t, env)

	env.Target("web1").Stop(t)
	env.StopMaster()
	serial, notAfter := leafOf(t, env, "web1")
	time.Sleep(time.Until(notAfter) + 500*time.Millisecond) // let the certificate expire
	env.RestartMaster()
	env.StartTarget("web1")
	testenv.Eventually(t, 15*time.Second, "a renewed certificate", func() bool {
		s, na := leafOf(t, env, "web1")
		return s != "" && s != serial && na.After(time.Now())
	})
	if runs := startAndWait(t, env, "ping"); runs[0].Status != muster.RunSucceeded {
		t.Errorf("run after renewal: %s", runs[0].Status)
	}
}
