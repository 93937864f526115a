package notify

import (
	"bytes"
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

// SMTP sends notifications as e-mail through one SMTP server. It upgrades
// the connection with STARTTLS whenever the server offers it (verifying the
// server's certificate), and authenticates with PLAIN when a user name is
// set, which net/smtp allows only over TLS or to localhost.
type SMTP struct {
	// Addr is the server, host:port.
	Addr string
	// From is the sender address.
	From string
	// Username and Password authenticate; none when Username is "".
	Username, Password string
	// Hello is the name this side gives in EHLO.
	Hello string
	// RootCAs verify the server's certificate after STARTTLS; the system's
	// when nil.
	RootCAs *x509.CertPool
	// Now dates the messages.
	Now func() time.Time
}

// Send makes one attempt to mail n to the address to. A 4xx reply or a
// broken connection is worth another attempt; a 5xx reply or a failed TLS
// verification is permanent.
func (s *SMTP) Send(ctx context.Context, to string, n Notification) error {
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return permanent("SMTP server %q: %v", s.Addr, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return transient("SMTP server %s: %v", s.Addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := s.converse(conn, host, to, n); err != nil {
		return classifySMTP(s.Addr, err)
	}
	return nil
}

func (s *SMTP) converse(conn net.Conn, host, to string, n Notification) error {
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	hello := s.Hello
	if hello == "" {
		hello = "localhost"
	}
	if err := c.Hello(hello); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host, RootCAs: s.RootCAs, MinVersion: tls.VersionTLS12}); err != nil {
			return &tlsError{err}
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
	return c.Quit()
}

// tlsError marks a failed STARTTLS: a certificate the server cannot prove
// will not get better by itself.
type tlsError struct{ err error }

func (e *tlsError) Error() string { return "STARTTLS: " + e.err.Error() }

func classifySMTP(addr string, err error) error {
	var ne *Error
	var tp *textproto.Error
	var te *tlsError
	switch {
	case errors.As(err, &ne):
		return &Error{Message: fmt.Sprintf("SMTP server %s: %s", addr, ne.Message), Permanent: ne.Permanent}
	case errors.As(err, &tp):
		msg := fmt.Sprintf("SMTP server %s: %d %s", addr, tp.Code, tp.Msg)
		return &Error{Message: msg, Permanent: tp.Code >= 500}
	case errors.As(err, &te):
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
