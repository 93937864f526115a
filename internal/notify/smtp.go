package notify

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"net/textproto"
	"time"
)

// SMTPTLS is how a connection to the SMTP server is protected.
type SMTPTLS string

const (
	// SMTPTLSAuto is SMTPTLSImplicit on port 465 and SMTPTLSStartTLS
	// elsewhere, except that a server on localhost (see IsLocalhost) may go
	// without TLS when it does not offer STARTTLS (a local relay).
	SMTPTLSAuto SMTPTLS = "auto"
	// SMTPTLSStartTLS requires the server to offer STARTTLS (submission,
	// port 587).
	SMTPTLSStartTLS SMTPTLS = "starttls"
	// SMTPTLSImplicit speaks TLS from the first byte (SMTPS, port 465).
	SMTPTLSImplicit SMTPTLS = "tls"
	// SMTPTLSNone never uses TLS: a relay on a network of its own.
	SMTPTLSNone SMTPTLS = "none"
)

// ParseSMTPTLS checks a TLS mode's name; "" is SMTPTLSAuto.
func ParseSMTPTLS(v string) (SMTPTLS, error) {
	switch m := SMTPTLS(v); m {
	case "":
		return SMTPTLSAuto, nil
	case SMTPTLSAuto, SMTPTLSStartTLS, SMTPTLSImplicit, SMTPTLSNone:
		return m, nil
	}
	return "", fmt.Errorf("%q is not a TLS mode: use auto, starttls, tls or none", v)
}

// SMTP sends notifications as e-mail through one SMTP server, over TLS
// (STARTTLS or implicit) that verifies the server's certificate unless TLS
// says otherwise, and authenticates with PLAIN when a user name is set,
// which net/smtp allows only over TLS or to localhost.
type SMTP struct {
	// Addr is the server, host:port.
	Addr string
	// TLS is how the connection is protected; "" is SMTPTLSAuto.
	TLS SMTPTLS
	// From is the sender address.
	From string
	// Username and Password authenticate; none when Username is "".
	Username, Password string
	// Hello is the name this side gives in EHLO.
	Hello string
	// RootCAs verify the server's certificate; the system's when nil.
	RootCAs *x509.CertPool
	// Now dates the messages.
	Now func() time.Time
	// GreetingTimeout bounds the wait for the server's first line (10 s
	// when 0): a server that expects TLS from the first byte says nothing
	// to a client that does not start with it.
	GreetingTimeout time.Duration
}

// Send makes one attempt to mail n to the address to. A 4xx reply or a
// broken connection is worth another attempt; a 5xx reply, a failed TLS
// verification or a server without the TLS required is permanent.
func (s *SMTP) Send(ctx context.Context, to string, n Notification) error {
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return permanent("SMTP server %q: %v", s.Addr, err)
	}
	mode := s.mode(host, port)
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return transient("SMTP server %s: %v", s.Addr, err)
	}
	// Closing the TCP connection ends whatever runs over it.
	defer raw.Close()
	deadline, _ := ctx.Deadline()
	raw.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	conn := raw
	if mode == SMTPTLSImplicit {
		tc := tls.Client(raw, s.tlsConfig(host))
		if err := tc.HandshakeContext(ctx); err != nil {
			return classifySMTP(s.Addr, &tlsError{"TLS", err})
		}
		conn = tc
	}
	if err := s.converse(conn, deadline, host, mode, to, n); err != nil {
		return classifySMTP(s.Addr, err)
	}
	return nil
}

// mode resolves SMTPTLSAuto for the server at host:port. What auto allows
// without TLS is returned as "" (STARTTLS when offered).
func (s *SMTP) mode(host, port string) SMTPTLS {
	switch s.TLS {
	case SMTPTLSStartTLS, SMTPTLSImplicit, SMTPTLSNone:
		return s.TLS
	}
	if port == "465" || port == "smtps" {
		return SMTPTLSImplicit
	}
	if IsLocalhost(host) {
		return ""
	}
	return SMTPTLSStartTLS
}

// IsLocalhost reports whether host names this machine the way net/smtp
// accepts for authenticating without TLS: localhost, 127.0.0.1 or ::1.
func IsLocalhost(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

func (s *SMTP) tlsConfig(host string) *tls.Config {
	return &tls.Config{ServerName: host, RootCAs: s.RootCAs, MinVersion: tls.VersionTLS12}
}

// defaultGreetingTimeout bounds the wait for the server's first line.
const defaultGreetingTimeout = 10 * time.Second

// converse speaks SMTP on conn; deadline (zero for none) bounds it all.
func (s *SMTP) converse(conn net.Conn, deadline time.Time, host string, mode SMTPTLS, to string, n Notification) error {
	wait := cmp.Or(s.GreetingTimeout, defaultGreetingTimeout)
	if !deadline.IsZero() {
		wait = min(wait, time.Until(deadline))
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && mode != SMTPTLSImplicit {
			return transient("no greeting within %s; if the server expects TLS from the first byte (SMTPS), give --smtp-tls tls", wait.Round(time.Millisecond))
		}
		return err
	}
	conn.SetReadDeadline(deadline)
	defer c.Close()
	hello := s.Hello
	if hello == "" {
		hello = "localhost"
	}
	if err := c.Hello(hello); err != nil {
		return err
	}
	if mode != SMTPTLSImplicit && mode != SMTPTLSNone {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(s.tlsConfig(host)); err != nil {
				return &tlsError{"STARTTLS", err}
			}
		} else if mode == SMTPTLSStartTLS {
			return permanent("the server does not offer STARTTLS; give --smtp-tls tls for a server that speaks TLS at once (port 465), or none to send without TLS")
		}
	}
	if s.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return permanent("the server does not offer AUTH, and a user name is set")
		}
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, host)); err != nil {
			return err
		}
	}
	if err := c.Mail(s.From); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(s.message(to, n)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	// The server took the message when it answered the data: how the
	// goodbye goes changes nothing, and failing now would send it again.
	c.Quit()
	return nil
}

// tlsError marks a failed TLS handshake: a certificate the server cannot
// prove will not get better by itself.
type tlsError struct {
	how string // STARTTLS or TLS
	err error
}

func (e *tlsError) Error() string { return e.how + ": " + e.err.Error() }

// Unwrap lets a refusal of STARTTLS be judged by its reply code.
func (e *tlsError) Unwrap() error { return e.err }

// permanent tells a refused handshake (a certificate that does not verify,
// a server that does not speak TLS, an alert from the server) from a
// broken connection.
func (e *tlsError) permanent() bool {
	var cv *tls.CertificateVerificationError
	var rh tls.RecordHeaderError
	var op *net.OpError
	return errors.As(e.err, &cv) || errors.As(e.err, &rh) || (errors.As(e.err, &op) && op.Op == "remote error")
}

func classifySMTP(addr string, err error) error {
	var ne *Error
	var tp *textproto.Error
	var te *tlsError
	switch {
	case errors.As(err, &ne):
		return &Error{Message: fmt.Sprintf("SMTP server %s: %s", addr, ne.Message), Permanent: ne.Permanent}
	case errors.As(err, &tp):
		msg := fmt.Sprintf("SMTP server %s: %d %s", addr, tp.Code, tp.Msg)
		// 552: over the server's size (RFC 1870), or the mailbox's.
		return &Error{Message: msg, Permanent: tp.Code >= 500, TooLarge: tp.Code == 552}
	case errors.As(err, &te) && te.permanent():
		return permanent("SMTP server %s: %v", addr, te)
	}
	return transient("SMTP server %s: %v", addr, err)
}

// message is the e-mail, headers and quoted-printable text.
func (s *SMTP) message(to string, n Notification) []byte {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	var b bytes.Buffer
	for _, h := range [][2]string{
		{"From", s.From},
		{"To", to},
		{"Subject", mime.QEncoding.Encode("utf-8", n.Payload.subject())},
		{"Date", now().Format(time.RFC1123Z)},
		{"Message-ID", "<" + n.ID + "@muster>"},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Transfer-Encoding", "quoted-printable"},
		{HeaderEvent, string(n.Payload.Event)},
		{HeaderDelivery, n.ID},
	} {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(n.Payload.text()))
	qp.Close()
	return b.Bytes()
}
