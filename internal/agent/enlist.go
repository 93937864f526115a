package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/schedule"
)

// EnlistOptions say how to enlist a data directory in a master.
type EnlistOptions struct {
	// MasterURL is the master's URL, or the URLs of the masters of a group
	// (sharing one catalog and one CA), separated by commas.
	MasterURL string
	Token     string
	Name      string
	DataDir   string
	Location  string
	// TimeZone overrides the detected zone reported at enlistment.
	TimeZone string
	Now      func() time.Time
	// Log is told when a master refuses for now and the enlistment is
	// tried again; nothing is logged when it is nil.
	Log *slog.Logger
}

func (o EnlistOptions) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// How long enlistment keeps trying a master that refuses it for now: at
// most enlistAttempts requests, each after the wait the master asks for if
// that is at most enlistMaxWait. A master that asks for longer (a minute,
// after failed tokens) is not waited for: its refusal is the answer.
const (
	enlistAttempts = 10
	enlistMaxWait  = 10 * time.Second
)

// Enlisted describes a completed enlistment.
type Enlisted struct {
	Name   string
	UID    string
	Master string // the name of the master that enlisted the target
	// MasterURL is the master enlisted with; Masters, the group's.
	MasterURL string
	Masters   []string
}

// Enlist makes the data directory a target of the master: it verifies the
// master against the CA fingerprint in the token, makes a key (which never
// leaves the directory) and a CSR, and stores the certificate it receives.
func Enlist(ctx context.Context, o EnlistOptions) (Enlisted, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	name := muster.NormalizeTargetName(o.Name)
	if err := muster.ValidateTargetName("--name", name); err != nil {
		return Enlisted{}, err
	}
	tok, err := pki.ParseEnlistToken(o.Token)
	if err != nil {
		return Enlisted{}, fmt.Errorf("--token: %w", err)
	}
	masters, err := parseMasters(strings.Split(o.MasterURL, ","))
	if err != nil {
		return Enlisted{}, fmt.Errorf("--master: %w", err)
	}
	// A master cannot be a target (SQL Server's 14299): its data
	// directory holds the CA's key, and its catalog unless that is kept
	// elsewhere (sqlite:PATH, PostgreSQL). Enlisting it would replace the
	// master's ca.pem with the other master's. (A master runs its own
	// jobs with --also-target, which enlists a separate directory.)
	for _, f := range []string{"catalog.db", pki.CAKeyFile} {
		if _, err := os.Lstat(filepath.Join(o.DataDir, f)); err == nil {
			return Enlisted{}, fmt.Errorf("%s is a master's data directory (it holds %s); a master cannot enlist in a master. To run jobs on the master's server, start the master with --also-target NAME", o.DataDir, f)
		}
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return Enlisted{}, err
	}
	if err := checkWritable(o.DataDir); err != nil {
		return Enlisted{}, err
	}
	lock, err := lockDir(o.DataDir)
	if err != nil {
		return Enlisted{}, err
	}
	defer unlockDir(lock)
	st, err := openStore(ctx, filepath.Join(o.DataDir, StoreFile), o.Now)
	if err != nil {
		return Enlisted{}, err
	}
	defer st.Close()
	if e, ok, err := st.enlistment(ctx); err != nil {
		return Enlisted{}, err
	} else if ok {
		return Enlisted{}, fmt.Errorf("%s is already enlisted in %s as %q; a target holds one master (or one group of masters): run `muster defect --data %s` first", o.DataDir, e.MasterURL, e.Name, o.DataDir)
	}
	// Every master of a group must present the CA the token names before
	// anything is sent to any; one that cannot be reached now is checked
	// by TLS when it is first used.
	var reachable []*url.URL
	var uncovered x509.HostnameError
	var invalid x509.CertificateInvalidError
	for _, u := range masters {
		switch err := probeMaster(ctx, u, tok.CAFingerprint); {
		case err == nil:
			reachable = append(reachable, u)
		case errors.Is(err, errUnreachable):
		case errors.As(err, &uncovered):
			return Enlisted{}, notCovered(u, uncovered)
		case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
			return Enlisted{}, notValidNow(u, invalid.Cert, time.Now())
		default:
			return Enlisted{}, muster.Wrap(muster.EINVALID, err, "--master: %s is not a master of the token's CA (the masters of a group share one CA)", u)
		}
	}
	if len(reachable) == 0 {
		return Enlisted{}, muster.Errorf(muster.EUNAVAILABLE, "--master: no master can be reached at %s", o.MasterURL)
	}

	key, keyPEM, err := enlistmentKey(o.DataDir)
	if err != nil {
		return Enlisted{}, err
	}
	csr, err := pki.NewCSR(key, name)
	if err != nil {
		return Enlisted{}, err
	}
	loc, tzName := localZone()
	if o.TimeZone != "" {
		if loc, err = schedule.LoadZone(o.TimeZone); err != nil {
			return Enlisted{}, fmt.Errorf("time zone %q: %w", o.TimeZone, err)
		}
		tzName = o.TimeZone
	}
	by := ""
	if cur, err := user.Current(); err == nil {
		by = cur.Username
		if h, err := os.Hostname(); err == nil {
			by += "@" + h
		}
	}
	req := agentproto.EnlistRequest{
		Token: o.Token, Name: name, Location: strings.TrimSpace(o.Location), CSR: csr,
		TimeZone: tzName, LocalTime: o.Now().In(loc), PollInterval: muster.DefaultPollInterval,
		Version: muster.Version, Protocol: agentproto.Version, EnlistedBy: by,
	}
	// Enlisted with the first master that answers: any master of the
	// group would do.
	var resp agentproto.EnlistResponse
	var u *url.URL
	for _, u = range reachable {
		// A master refusing for now (too many enlistments at once, its
		// catalog unavailable) says when to come back; the token is
		// still unused then, and the same request is sent again.
		err = untilAccepted(ctx, o.log(), enlistAttempts, enlistMaxWait, func(ctx context.Context) error {
			resp, err = postEnlist(ctx, u, tok.CAFingerprint, req)
			return err
		})
		if !errors.Is(err, errUnreachable) {
			break
		}
	}
	if err != nil {
		return Enlisted{}, err
	}
	// The group: the masters given, and any other the master knows of. A
	// master that joined a moment ago may not be known to the one that
	// answered yet; the polls' replies keep the list current from here.
	group := make([]string, len(masters))
	for i, m := range masters {
		group[i] = m.String()
	}
	for _, m := range resp.Masters {
		if !slices.Contains(group, m) {
			group = append(group, m)
		}
	}

	if _, err := tls.X509KeyPair(resp.Cert, keyPEM); err != nil {
		return Enlisted{}, fmt.Errorf("the master's certificate does not match our key: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{{KeyFile, keyPEM, 0o600}, {CertFile, resp.Cert, 0o644}, {CAFile, resp.CA, 0o644}} {
		if err := pki.WriteFileAtomic(filepath.Join(o.DataDir, f.name), f.data, f.perm); err != nil {
			return Enlisted{}, err
		}
	}
	// The enlistment is committed last: files without it are simply
	// overwritten by the next attempt, which asks again with the key the
	// master already certified. Once committed, that key is used no more
	// for another enlistment.
	err = st.saveEnlistment(ctx, enlistment{
		MasterURL: u.String(), Masters: group, Name: resp.Name, UID: resp.UID, Epoch: resp.Epoch, Master: resp.Master,
		PollInterval: resp.PollInterval, EnlistedAt: o.Now(), Location: req.Location,
	})
	if err != nil {
		return Enlisted{}, err
	}
	os.Remove(filepath.Join(o.DataDir, EnlistKeyFile))
	return Enlisted{Name: resp.Name, UID: resp.UID, Master: resp.Master, MasterURL: u.String(), Masters: group}, nil
}

// EnlistKeyFile holds, in a data directory, the key an enlistment asks a
// certificate for, from before its request is sent until it is enlisted.
const EnlistKeyFile = "enlist-key.pem"

// enlistmentKey returns the key to enlist with: the one an earlier attempt
// made and left, or a new one, kept before the request is sent. An
// enlistment whose reply was lost is then sent again, with its token, for
// the same key, which the master recognises as the enlistment it made.
func enlistmentKey(dir string) (*ecdsa.PrivateKey, []byte, error) {
	path := filepath.Join(dir, EnlistKeyFile)
	if b, err := os.ReadFile(path); err == nil {
		if key, err := pki.ParseKeyPEM(b); err == nil {
			return key, b, nil
		}
	}
	key, err := pki.NewKey()
	if err != nil {
		return nil, nil, err
	}
	b, err := pki.EncodeKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return key, b, pki.WriteFileAtomic(path, b, 0o600)
}

// postEnlist sends the enlistment request over TLS that trusts only the CA
// pinned by the token.
func postEnlist(ctx context.Context, u *url.URL, caFingerprint string, req agentproto.EnlistRequest) (agentproto.EnlistResponse, error) {
	host := u.Hostname()
	tr := &http.Transport{TLSClientConfig: pki.PinnedTLSConfig(caFingerprint, host)}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var out agentproto.EnlistResponse
	err := jsonhttp.Do(ctx, hc, jsonhttp.Request{Method: http.MethodPost, URL: u.JoinPath(agentproto.PathEnlist).String(), In: req, Out: &out, Strict: true, MaxReply: replyLimit,
		Header: http.Header{agentproto.HeaderProtocol: {strconv.Itoa(agentproto.Version)}}})
	var te *jsonhttp.TransportError
	if errors.As(err, &te) {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return out, fmt.Errorf("%w: the master at %s: %v", errUnreachable, u.Host, opErr.Err)
		}
		return out, fmt.Errorf("enlist with %s: %w", u.Host, te.Err)
	}
	if err != nil {
		return out, err
	}
	return out, nil
}

// notCovered refuses a master of the token's CA reached at u, a name its
// certificate was not issued for: the target would not trust it there
// after enlisting either. It says what the certificate covers and how to
// make it cover u's.
func notCovered(u *url.URL, e x509.HostnameError) error {
	host := u.Hostname()
	return muster.Errorf(muster.EINVALID, "--master: the master at %s is of the token's CA, but its certificate does not cover %s (it covers %s): give --master with one of those names, or start the master with --host %s (or --advertise %s) so that its certificate covers it",
		u, host, strings.Join(pki.CoveredNames(e.Certificate), ", "), host, u)
}

// notValidNow refuses a master of the token's CA whose certificate (or
// CA) is not valid at this server's clock, now: most often this clock is
// far from the master's, which certificates allow for 5 minutes of.
func notValidNow(u *url.URL, cert *x509.Certificate, now time.Time) error {
	which := "its certificate"
	if cert.IsCA {
		which = "its CA's certificate"
	}
	state := "is not valid yet"
	if now.After(cert.NotAfter) {
		state = "has expired"
	}
	return muster.Errorf(muster.EINVALID, "--master: the master at %s is of the token's CA, but %s %s by this server's clock (%s; it is valid from %s to %s): check this server's clock against the master's, which may differ by at most %s",
		u, which, state, now.UTC().Format(time.RFC3339), cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339), pki.Backdate)
}

// errUnreachable is a master that could not be connected to.
var errUnreachable = errors.New("cannot reach")

// probeMaster checks that the master at u presents the CA whose
// fingerprint the token carries, with a TLS handshake; it wraps
// errUnreachable when no connection can be made.
func probeMaster(ctx context.Context, u *url.URL, caFingerprint string) error {
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "443"
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: pki.PinnedTLSConfig(caFingerprint, host)}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return fmt.Errorf("%w: %v", errUnreachable, opErr.Err)
	}
	if err != nil {
		return err
	}
	return conn.Close()
}
