package notify

import "testing"

// auto picks implicit TLS on the SMTPS port, and lets only localhost (as
// net/smtp judges it) go without STARTTLS.
func TestSMTPMode(t *testing.T) {
	for _, c := range []struct {
		tls        SMTPTLS
		host, port string
		want       SMTPTLS
	}{
		{SMTPTLSAuto, "smtp.example.com", "465", SMTPTLSImplicit},
		{SMTPTLSAuto, "smtp.example.com", "smtps", SMTPTLSImplicit},
		{SMTPTLSAuto, "smtp.example.com", "587", SMTPTLSStartTLS},
		{"", "smtp.example.com", "25", SMTPTLSStartTLS},
		{SMTPTLSAuto, "10.0.0.5", "25", SMTPTLSStartTLS},
		{SMTPTLSAuto, "localhost", "25", ""},
		{SMTPTLSAuto, "127.0.0.1", "25", ""},
		{SMTPTLSAuto, "::1", "25", ""},
		{SMTPTLSAuto, "127.0.0.53", "25", SMTPTLSStartTLS},
		{SMTPTLSAuto, "localhost", "465", SMTPTLSImplicit},
		{SMTPTLSNone, "smtp.example.com", "465", SMTPTLSNone},
		{SMTPTLSStartTLS, "localhost", "25", SMTPTLSStartTLS},
		{SMTPTLSImplicit, "smtp.example.com", "2465", SMTPTLSImplicit},
	} {
		s := &SMTP{TLS: c.tls}
		if got := s.mode(c.host, c.port); got != c.want {
			t.Errorf("%q to %s:%s: %q, want %q", c.tls, c.host, c.port, got, c.want)
		}
	}
}
