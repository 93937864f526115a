package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/pki"
)

// Mail is a message an SMTPServer accepted.
type Mail struct {
	From string
	To   []string
	Data string // headers and body, with CRLF line ends, dot-unstuffed
	TLS  bool   // whether it came over TLS
	User string // who authenticated, if anyone
}

// SMTPOptions configure an SMTPServer.
type SMTPOptions struct {
	// TLS makes the server offer STARTTLS.
	TLS *tls.Config
	// Implicit, with TLS, makes the server speak TLS from the first byte
	// (SMTPS) instead of offering STARTTLS.
	Implicit bool
	// Users makes the server offer AUTH PLAIN and require it.
	Users map[string]string
	// RefuseSTARTTLS, when set, makes the server offer STARTTLS and answer
	// it with this reply, e.g. "454 4.7.0 TLS not available".
	RefuseSTARTTLS string
	// DropQuit makes the server close the connection when told QUIT,
	// without answering it.
	DropQuit bool
}

// SMTPServer is a minimal SMTP server on a real TCP socket on 127.0.0.1: it
// speaks EHLO/HELO, STARTTLS or implicit TLS, AUTH PLAIN, MAIL, RCPT, DATA,
// RSET, NOOP and QUIT, as its options say, and keeps what it accepts.
type SMTPServer struct {
	// Addr is host:port.
	Addr string

	opts   SMTPOptions
	ln     net.Listener
	mu     sync.Mutex
	mails  []Mail
	reject []string // replies to RCPT to give before accepting, first first
	wg     sync.WaitGroup
}

// NewSMTPServer starts an SMTP server; it stops when the test ends.
func NewSMTPServer(t testing.TB, opts SMTPOptions) *SMTPServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &SMTPServer{Addr: ln.Addr().String(), opts: opts, ln: ln}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// RejectRecipients makes the next RCPT commands fail with these replies,
// e.g. "451 4.3.0 try again later", one reply each.
func (s *SMTPServer) RejectRecipients(replies ...string) {
	s.mu.Lock()
	s.reject = append(s.reject, replies...)
	s.mu.Unlock()
}

// Mails returns the messages accepted so far.
func (s *SMTPServer) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

func (s *SMTPServer) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			s.session(conn)
		}()
	}
}

// session speaks SMTP on one connection.
func (s *SMTPServer) session(conn net.Conn) {
	var m Mail
	if s.opts.TLS != nil && s.opts.Implicit {
		tc := tls.Server(conn, s.opts.TLS)
		if err := tc.Handshake(); err != nil {
			return
		}
		conn, m.TLS = tc, true
	}
	tp := textproto.NewConn(conn)
	reply := func(format string, args ...any) { tp.PrintfLine(format, args...) }
	reply("220 muster-test ESMTP")
	var authed bool
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			lines := []string{"250-muster-test"}
			if (s.opts.TLS != nil || s.opts.RefuseSTARTTLS != "") && !m.TLS {
				lines = append(lines, "250-STARTTLS")
			}
			if s.opts.Users != nil {
				lines = append(lines, "250-AUTH PLAIN")
			}
			lines = append(lines, "250 8BITMIME")
			for _, l := range lines {
				reply("%s", l)
			}
		case "HELO":
			reply("250 muster-test")
		case "STARTTLS":
			if s.opts.RefuseSTARTTLS != "" {
				reply("%s", s.opts.RefuseSTARTTLS)
				continue
			}
			if s.opts.TLS == nil || m.TLS {
				reply("502 5.5.1 not offered")
				continue
			}
			reply("220 2.0.0 go ahead")
			tc := tls.Server(conn, s.opts.TLS)
			if err := tc.Handshake(); err != nil {
				return
			}
			conn, tp = tc, textproto.NewConn(tc)
			reply = func(format string, args ...any) { tp.PrintfLine(format, args...) }
			m = Mail{TLS: true}
		case "AUTH":
			user, ok := s.authPlain(arg)
			if !ok {
				reply("535 5.7.8 authentication failed")
				continue
			}
			authed, m.User = true, user
			reply("235 2.7.0 authenticated")
		case "MAIL":
			if s.opts.Users != nil && !authed {
				reply("530 5.7.0 authentication required")
				continue
			}
			m.From = pathArg(arg, "FROM:")
			reply("250 2.1.0 ok")
		case "RCPT":
			s.mu.Lock()
			var rejectWith string
			if len(s.reject) > 0 {
				rejectWith, s.reject = s.reject[0], s.reject[1:]
			}
			s.mu.Unlock()
			if rejectWith != "" {
				reply("%s", rejectWith)
				continue
			}
			m.To = append(m.To, pathArg(arg, "TO:"))
			reply("250 2.1.5 ok")
		case "DATA":
			if m.From == "" || len(m.To) == 0 {
				reply("503 5.5.1 MAIL and RCPT first")
				continue
			}
			reply("354 end with <CRLF>.<CRLF>")
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			m.Data = strings.ReplaceAll(string(data), "\n", "\r\n")
			s.mu.Lock()
			s.mails = append(s.mails, m)
			s.mu.Unlock()
			m = Mail{TLS: m.TLS, User: m.User}
			reply("250 2.0.0 queued")
		case "RSET":
			m = Mail{TLS: m.TLS, User: m.User}
			reply("250 2.0.0 ok")
		case "NOOP":
			reply("250 2.0.0 ok")
		case "QUIT":
			if !s.opts.DropQuit {
				reply("221 2.0.0 bye")
			}
			return
		default:
			reply("500 5.5.2 unknown command %q", verb)
		}
	}
}

// authPlain checks an AUTH PLAIN command's argument ("PLAIN base64").
func (s *SMTPServer) authPlain(arg string) (string, bool) {
	mech, resp, _ := strings.Cut(arg, " ")
	if !strings.EqualFold(mech, "PLAIN") || s.opts.Users == nil {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(resp)
	if err != nil {
		return "", false
	}
	parts := strings.Split(string(b), "\x00")
	if len(parts) != 3 {
		return "", false
	}
	pass, ok := s.opts.Users[parts[1]]
	return parts[1], ok && pass == parts[2]
}

// pathArg reads the address of "FROM:<a> PARAMS" or "TO:<a>".
func pathArg(arg, prefix string) string {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return ""
	}
	a, _, _ := strings.Cut(strings.TrimSpace(arg[len(prefix):]), " ")
	return strings.Trim(a, "<>")
}

// LocalTLS returns a server TLS configuration with a certificate for
// 127.0.0.1 from a new CA, and that CA's pool for clients to verify it.
func LocalTLS(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	ca, _, err := pki.LoadOrCreateCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.LoadOrIssueServerCert(t.TempDir(), ca, []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, ca.Pool()
}
