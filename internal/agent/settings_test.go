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

// A mistake in the settings file is refused naming the setting it is in
// and the rule it breaks, whatever its kind: a value of the wrong type, a
// fraction where a whole number goes (yaml.v3 would cut 1.5 to 1), a size
// too large for any memory (it wrapped around into the allowed range), a
// second YAML document (everything after its --- was ignored).
func TestSettingsMistakesNameTheirKey(t *testing.T) {
	for _, tc := range []struct{ yaml, err string }{
		{"spool_limit: abc\n", `spool_limit: line 1: "abc" is not a whole number`},
		{"spool_limit: 1.5\n", `spool_limit: line 1: "1.5" is not a whole number`},
		{"max_concurrent_runs: 2.0\n", `max_concurrent_runs: line 1: "2.0" is not a whole number`},
		{"spool_limit: 99999999999999999999\n", `spool_limit: line 1: "99999999999999999999" is not a whole number`},
		{"spool_limit: [1]\n", `spool_limit: line 1: a whole number, not a list`},
		{"set_clock: maybe\n", `set_clock: line 1: "maybe" is not true or false`},
		{"output_limit: -1\n", `output_limit: line 1: "-1" is not a size`},
		{"output_limit: 18014398509483008KiB\n", `output_limit: line 1: "18014398509483008KiB" is too large`},
		{"output_limit: 9223372036854775807GiB\n", `output_limit: line 1: "9223372036854775807GiB" is too large`},
		{"run_retention: 5\n", `run_retention: line 1: invalid duration "5"`},
		{"events: 5\n", `events: line 1: a mapping of keys to values, not a single value`},
		{"events: {forward: all, foo: 1}\n", `events.foo: line 1: unknown setting; the settings here are forward, min_severity`},
		{"events: {min_severity: loud}\n", `events.min_severity: line 1: severity: "loud" is not a severity`},
		{"connections: [1, 2]\n", `connections: line 1: a mapping of keys to values, not a list`},
		{"connections:\n  pg: {driver: postgres, dns: x}\n", `connections.pg.dns: line 2: unknown setting; the settings here are driver, dsn`},
		{"proxies:\n  backup: backup\n", `proxies.backup: line 2: a mapping of keys to values, not a single value`},
		{"timezone: UTC\n", `timezone: line 1: unknown setting; the settings here are time_zone, output_limit, `},
		{"time_zone: [UTC]\n", `time_zone: line 1: a single value, not a list`},
		{"spool_limit: 1\nspool_limit: 2\n", `spool_limit: line 2: given twice (also on line 1)`},
		{"[]\n", `line 1: the settings are a mapping of keys to values, not a list`},
		{"? [a]\n: 1\n", `settings: line 1: a key is a single word, not a list`},
		{"spool_limit: 5\n---\nspool_limit: 6\n", `line 2: a second YAML document; the settings are one document`},
		{"---\n---\nspool_limit: 5\n", `line 2: a second YAML document; the settings are one document`},
	} {
		path := filepath.Join(t.TempDir(), "target.yaml")
		if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadSettings(path)
		if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), path+": "+tc.err) {
			t.Errorf("%q: %v, want EINVALID with %q", tc.yaml, err, path+": "+tc.err)
		}
	}
}

// What the settings file may say in YAML's ways is still read: an alias,
// a merge key, a null left at the default, a leading ---, sizes and counts
// written as YAML writes whole numbers.
func TestSettingsYAMLFormsAreRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "target.yaml")
	const file = `---
spool_limit: 0x10
max_concurrent_runs: 1_000
output_limit: ~
run_output_limit: " 2 MiB "
set_clock: yes
base: &pg {driver: postgres}
`
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSettings(path); err == nil || !strings.Contains(err.Error(), `base: line 7: unknown setting`) {
		t.Fatalf("an unknown key holding an anchor: %v", err)
	}
	const merged = `---
spool_limit: 0x10
max_concurrent_runs: 1_000
output_limit: ~
run_output_limit: " 2 MiB "
set_clock: yes
connections:
  a: &pg {driver: postgres, dsn: "postgres://u@127.0.0.1/a"}
  b: {<<: *pg, dsn: "postgres://u@127.0.0.1/b"}
  c: *pg
`
	if err := os.WriteFile(path, []byte(merged), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSettings(path)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultSettings()
	if s.SpoolLimit != 16 || s.MaxConcurrentRuns != 1000 || s.OutputLimit != want.OutputLimit || s.RunOutputLimit != 2<<20 || !s.SetClock {
		t.Errorf("got spool_limit %d, max_concurrent_runs %d, output_limit %d, run_output_limit %d, set_clock %t",
			s.SpoolLimit, s.MaxConcurrentRuns, s.OutputLimit, s.RunOutputLimit, s.SetClock)
	}
	if got := s.Connections["b"]; got.Driver != "postgres" || got.DSN != "postgres://u@127.0.0.1/b" {
		t.Errorf("connection b merged from a: %+v", got)
	}
	if got := s.Connections["c"]; got.DSN != "postgres://u@127.0.0.1/a" {
		t.Errorf("connection c, an alias of a: %+v", got)
	}
}

// A settings file that others may write is refused, as a data directory
// that others may write is: whoever writes it maps a proxy to root, lets
// the master's jobs use it, or points a connection at a database of
// theirs. So is one in a directory others may write, where they could put
// a file of their own in its place.
func TestSettingsFileOthersMayWriteIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name          string
		file, dir     os.FileMode
		want, command string
	}{
		{"writable by others", 0o646, 0o755, "may be written by others than its owner (mode -rw-r--rw-)", "chmod go-w FILE"},
		{"writable by its group", 0o664, 0o755, "may be written by others than its owner (mode -rw-rw-r--)", "chmod go-w FILE"},
		{"in a directory others may write", 0o600, 0o777, ", above settings file FILE, may be written by others than its owner", "chmod go-w DIR"},
		{"readable by all", 0o644, 0o755, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "etc")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "target.yaml")
			if err := os.WriteFile(path, []byte("spool_limit: 5\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			for p, mode := range map[string]os.FileMode{path: tc.file, dir: tc.dir} {
				if err := os.Chmod(p, mode); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadSettings(path)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			want := strings.NewReplacer("FILE", path, "DIR", dir).Replace(tc.want)
			command := strings.NewReplacer("FILE", path, "DIR", dir).Replace(tc.command)
			if muster.ErrorCode(err) != muster.EFORBIDDEN || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), command) {
				t.Errorf("got %v (%s), want %s: %q, and %q", err, muster.ErrorCode(err), muster.EFORBIDDEN, want, command)
			}
		})
	}
}
