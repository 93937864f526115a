package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/notify"
	"github.com/musterhq/muster/internal/testenv"
)

var sample = notify.Notification{ID: "7d3c1a52-0b7e-4c1e-9d0a-2f1f3c4b5a69", Payload: notify.Payload{
	Event: muster.EventRunFailed, Severity: muster.SeverityError, Job: "backup", Target: "web1", RunID: "r1",
	Message: "run of job \"backup\" on web1 failed: step \"dump\" failed: exit code 2", At: time.Date(2026, 11, 25, 2, 30, 0, 0, time.UTC),
	Alert: "backup-failed", Operator: "oncall",
}}

func TestWebhookIsSignedJSON(t *testing.T) {
	hook := testenv.NewWebhookReceiver(t)
	const secret = "a-secret-of-some-length"
	sent := time.Date(2026, 11, 25, 2, 30, 4, 0, time.UTC)
	if err := (&notify.Webhook{Now: func() time.Time { return sent }}).Send(context.Background(), hook.URL, secret, sample); err != nil {
		t.Fatal(err)
	}
	reqs := hook.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	// The signature is over the timestamp and the body: a body captured and
	// sent again later cannot be given a fresh timestamp.
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("1795573804."))
	mac.Write(r.Body)
	if want := "v1=" + hex.EncodeToString(mac.Sum(nil)); r.Header.Get("Muster-Signature") != want {
		t.Errorf("Muster-Signature %q, want %q", r.Header.Get("Muster-Signature"), want)
	}
	for h, want := range map[string]string{"Content-Type": "application/json", "Muster-Event": "run_failed", "Muster-Delivery": sample.ID,
		"Muster-Timestamp": "1795573804"} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	var body map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	// The delivery id is in the body too, under the signature: a receiver
	// that drops repeats by it cannot be made to take a replayed body as a
	// new notification by a Muster-Delivery header changed in transit.
	want := map[string]any{"event": "run_failed", "severity": 3.0, "job": "backup", "target": "web1", "run_id": "r1",
		"message": sample.Payload.Message, "at": "2026-11-25T02:30:00Z", "alert": "backup-failed", "operator": "oncall",
		"delivery": sample.ID}
	if len(body) != len(want) {
		t.Errorf("body %v, want the fields %v", body, want)
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("body %s: %v, want %v", k, body[k], v)
		}
	}
	ts, sig := r.Header.Get("Muster-Timestamp"), r.Header.Get("Muster-Signature")
	bodyOnly := hmac.New(sha256.New, []byte(secret))
	bodyOnly.Write(r.Body)
	for _, tc := range []struct {
		name            string
		secret, ts, sig string
		now             time.Time
		ok              bool
	}{
		{"as sent", secret, ts, sig, sent, true},
		{"received a little later", secret, ts, sig, sent.Add(notify.DefaultTolerance), true},
		{"by a clock a little behind", secret, ts, sig, sent.Add(-notify.DefaultTolerance), true},
		{"under another secret", "another-secret-entirely", ts, sig, sent, false},
		{"replayed later", secret, ts, sig, sent.Add(notify.DefaultTolerance + time.Second), false},
		{"replayed later under a fresh timestamp", secret, "1795577404", sig, sent.Add(time.Hour), false},
		{"without a timestamp", secret, "", sig, sent, false},
		{"with a timestamp that is no number", secret, "1795573804.0", sig, sent, false},
		{"without a signature", secret, ts, "", sent, false},
		{"signed over the body alone", secret, ts, "v1=" + hex.EncodeToString(bodyOnly.Sum(nil)), sent, false},
	} {
		err := notify.Verify(tc.secret, r.Body, tc.ts, tc.sig, tc.now, notify.DefaultTolerance)
		if (err == nil) != tc.ok {
			t.Errorf("%s: Verify: %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// Each attempt at a notification is signed at its own time, with the same
// delivery id: a retry a day later is as fresh as the first attempt.
func TestWebhookAttemptsAreSignedWhenSent(t *testing.T) {
	hook := testenv.NewWebhookReceiver(t)
	const secret = "a-secret-of-some-length"
	first := time.Date(2026, 11, 25, 2, 30, 4, 0, time.UTC)
	for _, at := range []time.Time{first, first.Add(26 * time.Hour)} {
		if err := (&notify.Webhook{Now: func() time.Time { return at }}).Send(context.Background(), hook.URL, secret, sample); err != nil {
			t.Fatal(err)
		}
	}
	reqs := hook.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for i, at := range []time.Time{first, first.Add(26 * time.Hour)} {
		r := reqs[i]
		if got := r.Header.Get("Muster-Delivery"); got != sample.ID {
			t.Errorf("attempt %d: Muster-Delivery %q, want %q", i+1, got, sample.ID)
		}
		if err := notify.Verify(secret, r.Body, r.Header.Get("Muster-Timestamp"), r.Header.Get("Muster-Signature"), at, notify.DefaultTolerance); err != nil {
			t.Errorf("attempt %d, checked when it was sent: %v", i+1, err)
		}
	}
	if reqs[0].Header.Get("Muster-Signature") == reqs[1].Header.Get("Muster-Signature") {
		t.Error("two attempts a day apart carry one signature")
	}
}

func TestWebhookFailures(t *testing.T) {
	for _, tc := range []struct {
		status              int
		permanent, tooLarge bool
	}{
		{http.StatusServiceUnavailable, false, false},
		{http.StatusTooManyRequests, false, false},
		{http.StatusRequestTimeout, false, false},
		{http.StatusNotFound, true, false},
		{http.StatusUnauthorized, true, false},
		{http.StatusFound, true, false},
		{http.StatusRequestEntityTooLarge, true, true},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			hook := testenv.NewWebhookReceiver(t)
			hook.FailNext(tc.status)
			err := (&notify.Webhook{}).Send(context.Background(), hook.URL, "a-secret-of-some-length", sample)
			if err == nil || notify.IsPermanent(err) != tc.permanent {
				t.Errorf("got %v (permanent %v), want an error, permanent %v", err, notify.IsPermanent(err), tc.permanent)
			}
			if notify.IsTooLarge(err) != tc.tooLarge {
				t.Errorf("got %v (too large %v), want too large %v", err, notify.IsTooLarge(err), tc.tooLarge)
			}
			if n := len(hook.Requests()); n != 1 {
				t.Errorf("%d requests, want 1 (redirects are not followed)", n)
			}
		})
	}
	t.Run("nobody listening", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		err := (&notify.Webhook{}).Send(context.Background(), "http://"+addr+"/hook", "a-secret-of-some-length", sample)
		if err == nil || notify.IsPermanent(err) {
			t.Errorf("got %v, want a transient error", err)
		}
	})
}

func TestSMTP(t *testing.T) {
	ctx := context.Background()
	t.Run("plain", func(t *testing.T) {
		srv := testenv.NewSMTPServer(t, testenv.SMTPOptions{})
		s := &notify.SMTP{Addr: srv.Addr, From: "muster@example.com", Hello: "master.example.com"}
		if err := s.Send(ctx, "oncall@example.com", sample); err != nil {
			t.Fatal(err)
		}
		mails := srv.Mails()
		if len(mails) != 1 {
			t.Fatalf("%d mails, want 1", len(mails))
		}
		m := mails[0]
		if m.From != "muster@example.com" || len(m.To) != 1 || m.To[0] != "oncall@example.com" {
			t.Errorf("envelope from %q to %v", m.From, m.To)
		}
		for _, want := range []string{
			"Subject: [muster] run_failed (error) on web1: job backup\r\n",
			"Muster-Delivery: " + sample.ID + "\r\n",
			"Message-ID: <" + sample.ID + "@muster>\r\n",
			"event:    run_failed\r\n",
			"severity: 3 (error)\r\n",
			"alert:    backup-failed\r\n",
		} {
			if !strings.Contains(m.Data, want) {
				t.Errorf("the mail lacks %q:\n%s", want, m.Data)
			}
		}
	})
	t.Run("STARTTLS and AUTH", func(t *testing.T) {
		serverTLS, roots := testenv.LocalTLS(t)
		srv := testenv.NewSMTPServer(t, testenv.SMTPOptions{TLS: serverTLS, Users: map[string]string{"muster": "hunter22"}})
		s := &notify.SMTP{Addr: srv.Addr, From: "muster@example.com", Username: "muster", Password: "hunter22", RootCAs: roots}
		if err := s.Send(ctx, "oncall@example.com", sample); err != nil {
			t.Fatal(err)
		}
		if m := srv.Mails(); len(m) != 1 || !m[0].TLS || m[0].User != "muster" {
			t.Errorf("mails %+v, want one over TLS from user muster", m)
		}
		s.Password = "wrong"
		if err := s.Send(ctx, "oncall@example.com", sample); !notify.IsPermanent(err) {
			t.Errorf("a wrong password: %v, want a permanent error", err)
		}
		s.RootCAs = nil
		if err := s.Send(ctx, "oncall@example.com", sample); !notify.IsPermanent(err) || !strings.Contains(err.Error(), "STARTTLS") {
			t.Errorf("an unverifiable certificate: %v, want a permanent STARTTLS error", err)
		}
	})
	t.Run("TLS modes", func(t *testing.T) {
		serverTLS, roots := testenv.LocalTLS(t)

		smtps := testenv.NewSMTPServer(t, testenv.SMTPOptions{TLS: serverTLS, Implicit: true})
		s := &notify.SMTP{Addr: smtps.Addr, TLS: notify.SMTPTLSImplicit, From: "muster@example.com", RootCAs: roots}
		if err := s.Send(ctx, "oncall@example.com", sample); err != nil {
			t.Fatal(err)
		}
		if m := smtps.Mails(); len(m) != 1 || !m[0].TLS {
			t.Errorf("SMTPS: mails %+v, want one over TLS", m)
		}
		s.RootCAs = nil
		if err := s.Send(ctx, "oncall@example.com", sample); !notify.IsPermanent(err) || !strings.Contains(err.Error(), "TLS") {
			t.Errorf("SMTPS with an unverifiable certificate: %v, want a permanent TLS error", err)
		}

		// A plain server: TLS required fails for good, and says what to do;
		// none and auto (on loopback) send without it.
		plain := testenv.NewSMTPServer(t, testenv.SMTPOptions{})
		for _, mode := range []notify.SMTPTLS{notify.SMTPTLSStartTLS, notify.SMTPTLSImplicit} {
			s := &notify.SMTP{Addr: plain.Addr, TLS: mode, From: "muster@example.com"}
			if err := s.Send(ctx, "oncall@example.com", sample); !notify.IsPermanent(err) {
				t.Errorf("%s to a server without TLS: %v, want a permanent error", mode, err)
			}
		}
		for _, mode := range []notify.SMTPTLS{notify.SMTPTLSNone, notify.SMTPTLSAuto} {
			s := &notify.SMTP{Addr: plain.Addr, TLS: mode, From: "muster@example.com"}
			if err := s.Send(ctx, "oncall@example.com", sample); err != nil {
				t.Errorf("%s to a server on loopback without TLS: %v", mode, err)
			}
		}
		if m := plain.Mails(); len(m) != 2 || m[0].TLS || m[1].TLS {
			t.Errorf("plain: mails %+v, want two without TLS", m)
		}

		// none does not use STARTTLS even when it is offered.
		starttls := testenv.NewSMTPServer(t, testenv.SMTPOptions{TLS: serverTLS})
		s = &notify.SMTP{Addr: starttls.Addr, TLS: notify.SMTPTLSNone, From: "muster@example.com"}
		if err := s.Send(ctx, "oncall@example.com", sample); err != nil {
			t.Fatal(err)
		}
		if m := starttls.Mails(); len(m) != 1 || m[0].TLS {
			t.Errorf("none: mails %+v, want one without TLS", m)
		}

		// A plain client to an SMTPS server hears nothing; the error says
		// what to do.
		s = &notify.SMTP{Addr: smtps.Addr, TLS: notify.SMTPTLSStartTLS, From: "muster@example.com", GreetingTimeout: 200 * time.Millisecond}
		if err := s.Send(ctx, "oncall@example.com", sample); err == nil || notify.IsPermanent(err) || !strings.Contains(err.Error(), "--smtp-tls tls") {
			t.Errorf("STARTTLS to an SMTPS server: %v, want a transient error suggesting --smtp-tls tls", err)
		}

		// A refusal of STARTTLS is judged by its code.
		for reply, permanent := range map[string]bool{"454 4.7.0 TLS not available": false, "554 5.7.0 no TLS here": true} {
			srv := testenv.NewSMTPServer(t, testenv.SMTPOptions{RefuseSTARTTLS: reply})
			s := &notify.SMTP{Addr: srv.Addr, From: "muster@example.com"}
			if err := s.Send(ctx, "oncall@example.com", sample); err == nil || notify.IsPermanent(err) != permanent {
				t.Errorf("STARTTLS refused with %q: %v, want permanent %v", reply, err, permanent)
			}
		}

		for _, v := range []string{"", "auto", "starttls", "tls", "none"} {
			if _, err := notify.ParseSMTPTLS(v); err != nil {
				t.Errorf("ParseSMTPTLS(%q): %v", v, err)
			}
		}
		if _, err := notify.ParseSMTPTLS("ssl"); err == nil || !strings.Contains(err.Error(), "starttls") {
			t.Errorf("ParseSMTPTLS(ssl): %v, want an error naming the modes", err)
		}
	})
	t.Run("a mail accepted is delivered, however QUIT goes", func(t *testing.T) {
		srv := testenv.NewSMTPServer(t, testenv.SMTPOptions{DropQuit: true})
		s := &notify.SMTP{Addr: srv.Addr, From: "muster@example.com"}
		if err := s.Send(ctx, "oncall@example.com", sample); err != nil {
			t.Errorf("the server accepted the mail, then closed the connection at QUIT: %v, want delivered", err)
		}
		if n := len(srv.Mails()); n != 1 {
			t.Errorf("%d mails, want 1", n)
		}
	})
	t.Run("4xx is worth another attempt, 5xx is not", func(t *testing.T) {
		srv := testenv.NewSMTPServer(t, testenv.SMTPOptions{})
		srv.RejectRecipients("451 4.3.0 try again later", "550 5.1.1 no such user", "552 5.3.4 message too big")
		s := &notify.SMTP{Addr: srv.Addr, From: "muster@example.com"}
		if err := s.Send(ctx, "oncall@example.com", sample); err == nil || notify.IsPermanent(err) {
			t.Errorf("451: %v, want a transient error", err)
		}
		if err := s.Send(ctx, "oncall@example.com", sample); !notify.IsPermanent(err) || notify.IsTooLarge(err) || !strings.Contains(err.Error(), "550") {
			t.Errorf("550: %v, want a permanent error, not for its size", err)
		}
		if err := s.Send(ctx, "oncall@example.com", sample); !notify.IsPermanent(err) || !notify.IsTooLarge(err) {
			t.Errorf("552: %v, want a permanent refusal for its size", err)
		}
	})
}

// The start of a refusal's body is quoted in the error, cut on a
// character, and what is not UTF-8 in it is replaced: the error is text.
func TestWebhookErrorQuotesTheReplyAsText(t *testing.T) {
	for name, body := range map[string]string{
		"cut in a character": strings.Repeat("a", 199) + "ééé",
		"not UTF-8":          "erreur \xe9 \xff",
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, body)
			}))
			defer srv.Close()
			err := (&notify.Webhook{}).Send(context.Background(), srv.URL, "a-secret-of-some-length", sample)
			if err == nil || !strings.Contains(err.Error(), "HTTP 400: ") || !utf8.ValidString(err.Error()) {
				t.Errorf("error %q, want HTTP 400 and valid UTF-8", err)
			}
		})
	}
}

// A receiver's Retry-After is read as it asks, however long: a wait too
// long for a time.Duration is the longest one, not a negative one.
func TestWebhookRetryAfter(t *testing.T) {
	for header, want := range map[string]time.Duration{
		"120":                   2 * time.Minute,
		"-5":                    0,
		"9999999999":            time.Duration(math.MaxInt64),
		"99999999999999999999":  time.Duration(math.MaxInt64),
		"soon":                  0,
		"-99999999999999999999": 0,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", header)
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		err := (&notify.Webhook{}).Send(context.Background(), srv.URL, "a-secret-of-some-length", sample)
		srv.Close()
		if got := notify.RetryAfter(err); got != want {
			t.Errorf("Retry-After: %s: %v (%v), want %v", header, got, err, want)
		}
	}
}

// A webhook's path and query often carry its credential (a chat service's
// incoming webhook), and a failed attempt's error is kept in the alert
// history, which every key reads, and logged: it names the webhook by its
// scheme and host only, as a key below admin is shown it.
func TestWebhookErrorsKeepThePathOut(t *testing.T) {
	const path = "/services/T0001/B0001/s3cr3tT0ken?token=q5ecret"
	reply := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			switch status {
			case http.StatusFound:
				// Often the same address over https: its path too.
				w.Header().Set("Location", "https://"+r.Host+r.URL.RequestURI())
			case http.StatusMovedPermanently:
				w.Header().Set("Location", "/moved"+r.URL.RequestURI())
			}
			w.WriteHeader(status)
		}
	}
	checked := 0
	for name, status := range map[string]int{
		"retried": http.StatusServiceUnavailable, "refused": http.StatusNotFound, "redirected": http.StatusFound, "redirected here": http.StatusMovedPermanently,
		"too large": http.StatusRequestEntityTooLarge, "nobody listening": 0,
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(reply(status))
			base := srv.URL
			if status == 0 {
				srv.Close()
			} else {
				defer srv.Close()
			}
			err := (&notify.Webhook{}).Send(context.Background(), base+path, "a-secret-of-some-length", sample)
			if err == nil {
				t.Fatal("delivered, want an error")
			}
			if msg := err.Error(); strings.Contains(msg, "s3cr3tT0ken") || strings.Contains(msg, "q5ecret") || !strings.Contains(msg, base+"/…") {
				t.Errorf("error %q, want the webhook named as %s/… without its path", msg, base)
			}
			checked++
		})
	}
	if checked != 6 {
		t.Fatalf("checked %d cases, want 6", checked)
	}
}

// A receiver that does not answer within the attempt's time is told as
// such in the history, not as the client's "context deadline exceeded".
func TestWebhookNoReplyInTime(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := (&notify.Webhook{}).Send(ctx, srv.URL+"/hook", "a-secret-of-some-length", sample)
	if err == nil || notify.IsPermanent(err) || !strings.Contains(err.Error(), "no reply in time") {
		t.Errorf("got %v, want a transient error saying no reply came in time", err)
	}
}
