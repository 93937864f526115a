package master

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/console"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/metrics"
)

// maxAnonymousBody is the largest body a request without credentials may
// have: enlistment and renewal by proof of possession take no more.
const maxAnonymousBody = maxEnlistBody

// admission is the first handler of every request on the listener. It
// gives each request body a time to arrive within, caps the requests
// without credentials in progress per source address and in all, and makes
// sure no connection is held open for a body nobody will read. A client
// that sends headers and then a body a byte at a time thus holds a
// connection for seconds, not minutes, and a few of them, not thousands,
// while enlisted targets and operators are served.
type admission struct {
	next   http.Handler
	limits LimitConfig
	log    *slog.Logger
	// access tells the target protocol's paths that need a certificate.
	access func(path string) Access

	// Requests without credentials in progress, by address and in all.
	perAddress *slots[string]
	all        *slots[struct{}]

	refused *metrics.CounterVec
}

func newAdmission(next http.Handler, limits LimitConfig, access func(string) Access, log *slog.Logger, reg *metrics.Registry) *admission {
	g := &admission{next: next, limits: limits, access: access, log: log,
		perAddress: newSlots[string](limits.PerAddress), all: newSlots[struct{}](limits.Unauthenticated),
		refused: reg.CounterVec("muster_requests_refused_total",
			"Requests the listener answered at once, before any handler, because a limit was reached: too many requests without credentials (from one address, or in all), or a body too large for one.",
			"limit"),
	}
	// At 0 from the start, so that the first refusal is an increase.
	for _, reason := range []string{refusedAddress, refusedTotal, refusedBody} {
		g.refused.WithLabelValues(reason)
	}
	return g
}

// Reasons a request is refused, as the refused counter labels them.
const (
	refusedAddress = "address" // PerAddress
	refusedTotal   = "total"   // Unauthenticated
	refusedBody    = "body"    // maxAnonymousBody
)

func (g *admission) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	credentials := g.claimsCredentials(r)
	if r.ContentLength != 0 {
		size := r.ContentLength
		switch {
		case !credentials && size > maxAnonymousBody:
			g.refuse(w, r, refusedBody, muster.Errorf(muster.ETOOLARGE, "the request body is over its limit of %d bytes", maxAnonymousBody))
			expireBody(w)
			return
		case !credentials && size < 0:
			size = maxAnonymousBody
		case size < 0:
			size = maxRunsBody // the largest body of any request
		}
		body := &deadlineBody{ReadCloser: r.Body, rc: http.NewResponseController(w), within: g.limits.bodyDeadline(size)}
		// The handler reads the body through a copy of the request: the
		// server keeps its own, and looks at its body after the handler
		// to close the connection gently when the body was left unread.
		r2 := *r
		r2.Body = body
		r = &r2
		defer func() {
			if !body.eof {
				expireBody(w)
			}
		}()
	}
	if !credentials {
		addr := remoteIP(r)
		if reason := g.acquire(addr); reason != "" {
			g.refuse(w, r, reason, muster.Errorf(muster.ERATELIMIT, "too many requests without credentials in progress (%s); retry in a moment", reasonText(reason)))
			return
		}
		defer g.release(addr)
		// Such requests are few (an enlistment, a health check, a
		// scrape), and a connection kept open after one would be held
		// without limit: each is the last on its connection.
		w.Header().Set("Connection", "close")
	}
	g.next.ServeHTTP(w, r)
}

// reasonText says where the requests a refusal counted came from.
func reasonText(reason string) string {
	if reason == refusedAddress {
		return "from this address"
	}
	return "from all addresses"
}

// claimsCredentials reports whether a request offers the credentials its
// route authenticates with, checked before its body is read: a bearer token
// on the operator API and the metrics, a certificate this master's CA issued on the target
// protocol, a session cookie on the web console. An offer that does not hold is refused as soon as it is
// checked, and expireBody closes its connection then.
func (g *admission) claimsCredentials(r *http.Request) bool {
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/api/"), p == "/metrics":
		_, ok := httpapi.BearerToken(r)
		return ok
	case strings.HasPrefix(p, "/agent/"):
		return g.access(p) != AccessAnyone && verifiedLeaf(r) != nil
	default:
		// The web console: a signed-in person's pages carry the
		// session cookie, which the console checks before it reads a
		// form.
		return console.ClaimsSession(r)
	}
}

// acquire counts a request without credentials from addr in, or returns
// the limit that refuses it.
func (g *admission) acquire(addr string) string {
	if !g.perAddress.acquire(addr) {
		return refusedAddress
	}
	if !g.all.acquire(struct{}{}) {
		g.perAddress.release(addr)
		return refusedTotal
	}
	return ""
}

func (g *admission) release(addr string) {
	g.all.release(struct{}{})
	g.perAddress.release(addr)
}

// refuse answers a request at once, without reading its body, and closes
// its connection after the reply: a client that floods is made to connect
// again, which a slow client cannot do quickly.
func (g *admission) refuse(w http.ResponseWriter, r *http.Request, reason string, err error) {
	g.refused.WithLabelValues(reason).Inc()
	g.log.Debug("request refused", muster.LogMethod, r.Method, muster.LogPath, r.URL.Path, "from", remoteIP(r), "limit", reason)
	w.Header().Set("Connection", "close")
	jsonhttp.SetRetryAfter(w, time.Second)
	jsonhttp.WriteError(w, r, g.log, err)
}

// expireBody makes whatever of the body is still to come unreadable: the
// server would otherwise read and discard it before it closes or reuses
// the connection, for as long as the client takes to send it.
func expireBody(w http.ResponseWriter) {
	http.NewResponseController(w).SetReadDeadline(time.Now())
}

// deadlineBody is a request body that has a time to arrive within, from
// when the handler starts to read it: the master's own work before that
// (authentication, an upload's turn) does not count against the client.
// The deadline is lifted once the body has been read to its end: on HTTP/1
// the server then reads the connection on to notice the client going away,
// and that read must not fail the request.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	within  time.Duration
	started bool
	eof     bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if !b.started {
		b.started = true
		b.rc.SetReadDeadline(time.Now().Add(b.within))
	}
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.eof {
		b.eof = true
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
