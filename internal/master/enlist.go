package master

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/pki"
)

// enlist answers POST /agent/v1/enlist: a target with a single-use token and
// a CSR becomes enlisted and receives a client certificate.
func (a *agent) enlist(w http.ResponseWriter, r *http.Request) error {
	var req agentproto.EnlistRequest
	if err := jsonhttp.DecodeJSON(w, r, maxEnlistBody, &req); err != nil {
		return err
	}
	name := muster.NormalizeTargetName(req.Name)
	if err := muster.ValidateTargetName("name", name); err != nil {
		return err
	}
	// Failed tokens count against the name they were tried for, from the
	// address they came from: a token enlists only the name it was made
	// for, so guessing one means naming its target, and each (address,
	// name) gets a few tries a minute. Targets enlisting under their own
	// names from behind one address (NAT, a load balancer) never share a
	// budget with a neighbour that failed.
	ip := remoteIP(r)
	key := failureKey{kind: "enlist", addr: ip, subject: name}
	if !a.m.enlistFailures.allow(key, a.m.now()) {
		jsonhttp.SetRetryAfter(w, time.Minute)
		return muster.Errorf(muster.ERATELIMIT, "too many failed enlistments as %q from %s; wait a minute", name, ip)
	}
	resp, err := a.doEnlist(r, name, req)
	if err != nil {
		if code := muster.ErrorCode(err); code == muster.EUNAUTHORIZED || code == muster.EFORBIDDEN {
			a.m.enlistFailures.fail(key, a.m.now())
		}
		return err
	}
	a.m.log.Info("target enlisted", muster.LogTarget, resp.Name, "uid", resp.UID, "from", ip)
	jsonhttp.WriteJSON(w, http.StatusOK, resp)
	return nil
}

func (a *agent) doEnlist(r *http.Request, name string, req agentproto.EnlistRequest) (agentproto.EnlistResponse, error) {
	tok, err := pki.ParseEnlistToken(req.Token)
	if err != nil {
		return agentproto.EnlistResponse{}, muster.Errorf(muster.EUNAUTHORIZED, "token: %v", err)
	}
	if tok.CAFingerprint != a.m.CA.Fingerprint() {
		return agentproto.EnlistResponse{}, muster.Errorf(muster.EUNAUTHORIZED, "token: it was made by another master (its CA fingerprint differs)")
	}
	if err := checkReported(reported{"location", req.Location, muster.MaxTargetLocation},
		reported{"enlisted_by", req.EnlistedBy, muster.MaxTargetEnlistedBy}, reported{"time_zone", req.TimeZone, muster.MaxTargetTimeZone},
		reported{"version", req.Version, muster.MaxTargetVersion}); err != nil {
		return agentproto.EnlistResponse{}, err
	}
	interval := req.PollInterval
	if interval == 0 {
		interval = muster.DefaultPollInterval
	}
	if err := muster.ValidatePollInterval("poll_interval", interval); err != nil {
		return agentproto.EnlistResponse{}, err
	}
	// The key asked for, to know an enlistment sent again (a CSR that does
	// not parse is refused when it is signed, after the token's check).
	keyHash, keyErr := pki.CSRKeyHash(req.CSR)
	now := a.m.now()
	uid := newUID()
	var cert *pki.ClientCert
	id, err := a.m.Catalog.Enlist(r.Context(), catalog.Enlistment{
		KeyHash:    keyHash,
		TokenHash:  pki.HashSecret(tok.Secret),
		Name:       name,
		UID:        uid,
		Location:   req.Location,
		EnlistedBy: req.EnlistedBy,
		Source:     remoteIP(r),
		Heartbeat: catalog.Heartbeat{At: now, LocalTime: req.LocalTime, TimeZone: req.TimeZone, PollInterval: interval,
			Version: req.Version, Protocol: req.Protocol},
	}, func(uid string) (catalog.IssuedCert, error) {
		err := keyErr
		if err == nil {
			cert, err = a.m.CA.SignTarget(req.CSR, name, uid, now, a.m.cfg.CertTTL)
		}
		if err != nil {
			return catalog.IssuedCert{}, muster.Errorf(muster.EINVALID, "%v", err)
		}
		return catalog.IssuedCert{Serial: cert.Serial, NotAfter: cert.NotAfter, KeyHash: keyHash}, nil
	})
	if err != nil {
		return agentproto.EnlistResponse{}, err
	}
	return agentproto.EnlistResponse{
		Name:         id.Name,
		UID:          id.UID,
		Cert:         cert.PEM,
		CA:           a.m.CA.CertPEM,
		Epoch:        a.m.Catalog.Epoch(),
		PollInterval: id.PollInterval,
		Master:       a.m.cfg.Name,
		Masters:      a.m.masterURLs(),
	}, nil
}

// newUID returns a random UUID (version 4).
func newUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b[:])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// failureKey is what failed attempts are counted against: the kind of
// attempt, the address it came from, and what it was an attempt at (the
// target name a token was tried for, the certificate a renewal was
// claimed for).
type failureKey struct {
	kind    string
	addr    string
	subject string
}

// failureLimiter refuses attempts against a key once too many have failed
// within a window. Only failures count, so enlisting a large fleet at once
// is never slowed; guessing is.
type failureLimiter struct {
	mu      sync.Mutex
	limit   int
	window  time.Duration
	maxKeys int
	fails   map[failureKey][]time.Time
}

// maxFailureKeys bounds the memory the failures take: a few hundred bytes
// a key, so a few megabytes under a spray of addresses and names.
const maxFailureKeys = 10000

func newFailureLimiter(limit int, window time.Duration) *failureLimiter {
	return &failureLimiter{limit: limit, window: window, maxKeys: maxFailureKeys, fails: map[failureKey][]time.Time{}}
}

func (l *failureLimiter) allow(key failureKey, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recent(key, now)) < l.limit
}

func (l *failureLimiter) fail(key failureKey, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fs := l.recent(key, now)
	if len(fs) == 0 && len(l.fails) >= l.maxKeys {
		l.evict(now)
	}
	if len(fs) >= l.limit {
		fs = fs[1:] // the newest limit failures are all that count
	}
	l.fails[key] = append(fs, now)
}

// evict makes room for a new key: it drops the keys with no recent
// failure, and, if every key has one (a spray of addresses or names), a
// quarter of them at random. A guesser can free its own key that way only
// by failing thousands of times under other keys, each failure counted.
func (l *failureLimiter) evict(now time.Time) {
	for k := range l.fails {
		l.recent(k, now)
	}
	for k := range l.fails {
		if len(l.fails) <= l.maxKeys*3/4 {
			break
		}
		delete(l.fails, k)
	}
}

// recent drops the key's failures older than the window and returns the
// rest.
func (l *failureLimiter) recent(key failureKey, now time.Time) []time.Time {
	fs := l.fails[key]
	i := 0
	for i < len(fs) && now.Sub(fs[i]) > l.window {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(l.fails, key)
	} else {
		l.fails[key] = fs
	}
	return fs
}
