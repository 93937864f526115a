package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	neturl "net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/musterhq/muster"
)

// Webhook POSTs notifications as JSON.
type Webhook struct {
	// Client sends the requests when set, as it is. When nil, a client
	// that never follows redirects (a redirected POST may turn into a GET
	// and lose its body: point the operator at the final URL instead),
	// and that refuses to connect to an address muster.WebhookAddrRefused
	// refuses: checked on the address dialed, after the name is looked
	// up, so a name that resolves there (or comes to) is refused too.
	Client *http.Client
	// Now is when an attempt is signed (Muster-Timestamp); time.Now when
	// nil.
	Now func() time.Time

	resolver *net.Resolver // looks up names; net.DefaultResolver when nil
}

func (w *Webhook) client() *http.Client {
	if w.Client != nil {
		return w.Client
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Resolver: w.resolver, Control: refuseAddr}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = d.DialContext
	// A connection per attempt: none is left idle between deliveries,
	// and each is dialed, so checked.
	t.DisableKeepAlives = true
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// refuseAddr is a net.Dialer's Control: it refuses, for good, to connect
// to an address muster.WebhookAddrRefused refuses.
func refuseAddr(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return permanent("cannot check the address %q before connecting: %v", address, err)
	}
	if why := muster.WebhookAddrRefused(ap.Addr()); why != "" {
		return permanent("refused to connect to %s: %s", address, why)
	}
	return nil
}

// Send makes one attempt to POST n to hook, signed with secret at the time
// of the attempt. A 2xx reply
// delivers it. A 408, 425, 429 or 5xx reply, or no reply, is worth another
// attempt; any other reply is permanent. An error names the webhook by its
// scheme and host only (muster.RedactWebhook): it is kept in the alert
// history, which every key reads, and logged, and a webhook's path often
// carries its credential.
func (w *Webhook) Send(ctx context.Context, hook, secret string, n Notification) error {
	url := muster.RedactWebhook(hook)
	p := n.Payload
	p.Delivery = n.ID
	body, err := json.Marshal(p)
	if err != nil {
		return permanent("encode the notification: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook, bytes.NewReader(body))
	if err != nil {
		return permanent("webhook %s: not a URL the master can send to", url)
	}
	// A literal address is checked here too: through a proxy, the proxy
	// does the dialing.
	if ip, err := netip.ParseAddr(req.URL.Hostname()); err == nil {
		if why := muster.WebhookAddrRefused(ip); why != "" {
			return permanent("webhook %s: %s", url, why)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "muster/"+muster.Version)
	req.Header.Set(HeaderEvent, string(n.Payload.Event))
	req.Header.Set(HeaderDelivery, n.ID)
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	// Each attempt is signed when it is made: a retry a day later is as
	// fresh as the first attempt, under the same delivery id.
	ts := now().Unix()
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(secret, ts, body))
	resp, err := w.client().Do(req)
	if err != nil {
		var refused *Error
		if errors.As(err, &refused) {
			return permanent("webhook %s: %s", url, refused.Message)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return transient("webhook %s: no reply in time", url)
		}
		// The client's error quotes the whole URL: keep only why.
		var uerr *neturl.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return transient("webhook %s: %v", url, err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests, code >= 500:
		err := &Error{Message: fmt.Sprintf("webhook %s: HTTP %d%s", url, code, excerpt(reply))}
		err.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		return err
	case code >= 300 && code < 400:
		// The new address is shown as the webhook is, made absolute: a
		// redirect to https, or to a path of the same host, carries a path.
		to := "…"
		if loc, err := resp.Location(); err == nil {
			to = muster.RedactWebhook(loc.String())
		}
		return permanent("webhook %s: HTTP %d redirect to %q; set the operator's webhook to the final URL", url, code, to)
	case code == http.StatusRequestEntityTooLarge:
		return &Error{Message: fmt.Sprintf("webhook %s: HTTP %d%s", url, code, excerpt(reply)), Permanent: true, TooLarge: true}
	default:
		return permanent("webhook %s: HTTP %d%s", url, code, excerpt(reply))
	}
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date; 0 when
// there is none to read. The caller bounds what it waits.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	s, err := strconv.ParseInt(strings.TrimSpace(h), 10, 64)
	if err == nil || errors.Is(err, strconv.ErrRange) {
		// Seconds past what a Duration holds (or an int64: ParseInt then
		// gives its bound) are the longest wait a Duration holds, not
		// one that wrapped negative.
		if s > int64(math.MaxInt64/time.Second) {
			return time.Duration(math.MaxInt64)
		}
		return time.Duration(max(s, 0)) * time.Second
	}
	if at, err := http.ParseTime(h); err == nil {
		return max(at.Sub(now), 0)
	}
	return 0
}

// excerpt renders the start of a reply body for an error message: text,
// what is not UTF-8 replaced, at most 200 characters.
func excerpt(b []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "\uFFFD")), " ")
	if s == "" {
		return ""
	}
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return ": " + s
}
