package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/musterhq/muster"
)

// The output limits are checked when the settings are read, naming the
// setting and its range.
func TestOutputLimitSettings(t *testing.T) {
	for _, tc := range []struct{ yaml, err string }{
		{"run_output_limit: 8MiB\n", ""},
		{"run_output_limit: 512\n", "run_output_limit: from 1KiB to 32MiB, not 512 bytes"},
		{"run_output_limit: 64MiB\n", "run_output_limit: from 1KiB to 32MiB, not 67108864 bytes"},
		{"output_limit: 8MiB\n", "output_limit: from 1KiB to 4MiB"},
	} {
		path := filepath.Join(t.TempDir(), "target.yaml")
		os.WriteFile(path, []byte(tc.yaml), 0o600)
		s, err := LoadSettings(path)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case tc.err == "" && s.RunOutputLimit != 8<<20:
			t.Errorf("%q: run_output_limit %d", tc.yaml, s.RunOutputLimit)
		case tc.err != "" && (muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: %v, want an error with %q", tc.yaml, err, tc.err)
		}
	}
}

// The target's time_zone is an IANA name: "Local" is refused, naming the
// setting, rather than taken as whatever zone the daemon's process has.
func TestSettingsTimeZone(t *testing.T) {
	for _, tc := range []struct{ yaml, err string }{
		{"time_zone: Europe/Paris\n", ""},
		{"time_zone: Local\n", `time_zone: "Local" is not an IANA time zone`},
		{"time_zone: Mars/Olympus\n", `time_zone: "Mars/Olympus" is not an IANA time zone`},
	} {
		path := filepath.Join(t.TempDir(), "target.yaml")
		if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadSettings(path)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case tc.err != "" && (muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: %v, want EINVALID with %q", tc.yaml, err, tc.err)
		}
	}
}

// A connection's DSN is read when the settings are, as its driver is: a
// DSN that cannot be parsed stops the target at start, named, without its
// password, instead of failing every run of every job that uses it.
func TestConnectionDSNsAreCheckedWhenRead(t *testing.T) {
	const secret = "s3cr3tPW"
	for _, tc := range []struct{ yaml, err string }{
		{`connections: {pg: {driver: postgres, dsn: "postgres://u:` + secret + `@127.0.0.1:5432/app"}}`, ""},
		{`connections: {pg: {driver: postgres, dsn: "host=127.0.0.1 user=u password=` + secret + `"}}`, ""},
		{`connections: {my: {driver: mysql, dsn: "u:` + secret + `@tcp(127.0.0.1:3306)/app"}}`, ""},
		{`connections: {lite: {driver: sqlite, dsn: "/var/lib/app/app.db"}}`, ""},
		{`connections: {pg: {driver: postgres, dsn: "postgres://u:` + secret + `%zz@127.0.0.1/app"}}`, "connections.pg.dsn: "},
		{`connections: {pg: {driver: postgres, dsn: "host=127.0.0.1 port=nope password=` + secret + `"}}`, "connections.pg.dsn: "},
		{`connections: {my: {driver: mysql, dsn: "u:` + secret + `@tcp(127.0.0.1:3306/app"}}`, "connections.my.dsn: "},
		{`connections: {my: {driver: mysql, dsn: "postgres://u:` + secret + `@127.0.0.1/app"}}`, "connections.my.dsn: "},
	} {
		path := filepath.Join(t.TempDir(), "target.yaml")
		os.WriteFile(path, []byte(tc.yaml+"\n"), 0o600)
		_, err := LoadSettings(path)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.yaml, err)
		case tc.err != "" && (muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want an error with %q", tc.yaml, err, tc.err)
		case err != nil && strings.Contains(err.Error(), secret):
			t.Errorf("%s: %v shows the password", tc.yaml, err)
		}
	}
}

// A SQLite connection names its file from the root: a relative path would
// be read from wherever the daemon was started (/ under systemd), where
// SQLite silently creates an empty database for the steps to run against.
func TestSQLiteConnectionPathIsAbsolute(t *testing.T) {
	for _, tc := range []struct {
		dsn string
		ok  bool
	}{
		{"/var/lib/app/app.db", true},
		{"/var/lib/app/app.db?_pragma=busy_timeout(5000)", true},
		{"file:/var/lib/app/app.db?mode=ro", true},
		{"file:///var/lib/app/app.db", true},
		{":memory:", true},
		{"app.db", false},
		{"./app.db", false},
		{"data/app.db?_pragma=busy_timeout(5000)", false},
		{"file:app.db", false},
	} {
		path := filepath.Join(t.TempDir(), "target.yaml")
		os.WriteFile(path, []byte(`connections: {lite: {driver: sqlite, dsn: "`+tc.dsn+`"}}`+"\n"), 0o600)
		_, err := LoadSettings(path)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.dsn, err)
		case !tc.ok && (muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), "connections.lite.dsn: ") || !strings.Contains(err.Error(), "absolute path")):
			t.Errorf("%s: %v, want it refused as not an absolute path", tc.dsn, err)
		}
	}
}

// A settings file with connections (whose DSNs hold passwords) that others
// may read is named, with its mode and what to do; a private one, or one
// without connections, is not.
func TestSettingsExposure(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	conns := "connections:\n  app: {driver: postgres, dsn: 'postgres://app:secret@db/app'}\n"
	cases := []struct {
		path string
		want string
	}{
		{write("open.yaml", conns, 0o644), "chmod 600"},
		{write("private.yaml", conns, 0o600), ""},
		{write("none.yaml", "time_zone: UTC\n", 0o644), ""},
	}
	for _, c := range cases {
		s, err := LoadSettings(c.path)
		if err != nil {
			t.Fatal(err)
		}
		got := s.Exposure(c.path)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) || strings.Contains(got, "secret") {
			t.Errorf("%s: %q, want %q (and never the password)", filepath.Base(c.path), got, c.want)
		}
	}
}
