package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/schedule"
)

// Settings are a target's local settings, read from the file given to
// `muster target --config`. The master never sees them: they are this
// server's own (SQL Server keeps the equivalent in the registry).
type Settings struct {
	// TimeZone overrides the detected IANA zone that schedules run in.
	TimeZone string `yaml:"time_zone"`
	// OutputLimit caps the output kept per step attempt; the head and the
	// tail are kept, with a line saying how much was dropped.
	OutputLimit ByteSize `yaml:"output_limit"`
	// RunOutputLimit caps the output kept for all of a run's attempts
	// together: an attempt keeps at most what its run has left.
	RunOutputLimit ByteSize `yaml:"run_output_limit"`
	// SpoolLimit bounds the runs kept for the master while it cannot be
	// reached. When it is full the oldest finished runs are dropped, the
	// count is kept, and the master is told at the next poll.
	SpoolLimit int `yaml:"spool_limit"`
	// RunRetention is how long runs the master has acknowledged stay in
	// the local spool.
	RunRetention Duration `yaml:"run_retention"`
	// MaxConcurrentRuns caps the runs executing at once on this target;
	// more wait, in the order they were started. 0 means no cap.
	MaxConcurrentRuns int `yaml:"max_concurrent_runs"`
	// Lang is the LANG every step gets (default: the daemon's, else
	// C.UTF-8).
	Lang string `yaml:"lang"`

	// Connections are the databases SQL steps run against, by name. Their
	// DSNs, and the secrets in them, stay on this target.
	Connections map[string]Connection `yaml:"connections"`
	// Proxies are the OS users shell and command steps may run as
	// (run_as), by name.
	Proxies map[string]Proxy `yaml:"proxies"`
	// AllowDownloadedJobsToMatchProxyName lets jobs from the master run
	// steps as this target's proxies, matched by name. Off by default, as
	// SQL Server Agent's AllowDownloadedJobsToMatchProxyName.
	AllowDownloadedJobsToMatchProxyName bool `yaml:"allow_downloaded_jobs_to_match_proxy_name"`

	// ClockSkewThreshold is the offset from the master's clock, measured at
	// a SYNC-TIME, above which the target warns (and raises clock_skew).
	ClockSkewThreshold Duration `yaml:"clock_skew_threshold"`
	// SetClock lets SYNC-TIME set the system clock to the master's when the
	// offset is above the threshold. Off by default; needs root.
	SetClock bool `yaml:"set_clock"`
	// Events say which of its events the target forwards to its master.
	Events EventSettings `yaml:"events"`
}

// Connection is a database a SQL step can run against.
type Connection struct {
	Driver string `yaml:"driver"` // postgres, mysql or sqlite
	DSN    string `yaml:"dsn"`
}

// Proxy is an OS user steps can run as. The daemon must run as root to
// switch users.
type Proxy struct {
	User string `yaml:"user"`
}

// DefaultSettings returns the settings used when no file is given.
func DefaultSettings() Settings {
	lang := os.Getenv("LANG")
	if lang == "" {
		lang = "C.UTF-8"
	}
	return Settings{OutputLimit: 1 << 20, RunOutputLimit: 16 << 20, SpoolLimit: 10000, RunRetention: Duration(24 * time.Hour), Lang: lang,
		ClockSkewThreshold: Duration(time.Second), Events: DefaultEventSettings()}
}

// maxRunOutputLimit bounds run_output_limit: an upload of one run's whole
// output stays well within what the master takes in one request.
const maxRunOutputLimit = 32 << 20

// maxSettingsFile bounds the settings file read before parsing.
const maxSettingsFile = 1 << 20

// LoadSettings reads a settings file strictly: an unknown key is an error
// naming it and its line.
func LoadSettings(path string) (Settings, error) {
	s := DefaultSettings()
	if path == "" {
		return s, nil
	}
	if err := checkGuarded(path, "settings file", "could write settings of their own there: map a proxy to root, let the master's jobs use it, "+
		"or point a connection at a database of theirs"); err != nil {
		return s, err
	}
	f, err := os.Open(path)
	if err != nil {
		return s, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSettingsFile+1))
	if err != nil {
		return s, err
	}
	if len(b) > maxSettingsFile {
		return s, fmt.Errorf("%s: the settings file is over %d bytes", path, maxSettingsFile)
	}
	if err := checkSettingsFile(b); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil && !errors.Is(err, io.EOF) {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	if err := s.validate(); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Exposure returns, for settings read from the file at path, why the file
// should be readable by its owner alone, or "" when it is or holds no
// connection: a DSN's password is in it, and any user of the machine,
// the steps of other jobs included, could read it.
func (s Settings) Exposure(path string) string {
	if path == "" || len(s.Connections) == 0 {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return ""
	}
	return fmt.Sprintf("%s holds the connections' DSNs, their passwords included, and others may read it (mode %#o): chmod 600 it", path, fi.Mode().Perm())
}

func (s Settings) validate() error {
	if s.TimeZone != "" {
		if _, err := schedule.LoadZone(s.TimeZone); err != nil {
			return muster.Errorf(muster.EINVALID, "time_zone: %q is not an IANA time zone such as Europe/Paris", s.TimeZone)
		}
	}
	if s.OutputLimit < 1024 || s.OutputLimit > 4<<20 {
		return muster.Errorf(muster.EINVALID, "output_limit: from 1KiB to 4MiB (what the master keeps per attempt), not %d bytes", s.OutputLimit)
	}
	if s.RunOutputLimit < 1024 || s.RunOutputLimit > maxRunOutputLimit {
		return muster.Errorf(muster.EINVALID, "run_output_limit: from 1KiB to 32MiB, not %d bytes", s.RunOutputLimit)
	}
	if s.SpoolLimit < 1 || s.SpoolLimit > 10_000_000 {
		return muster.Errorf(muster.EINVALID, "spool_limit: from 1 to 10000000 runs, not %d", s.SpoolLimit)
	}
	if s.RunRetention < 0 {
		return muster.Errorf(muster.EINVALID, "run_retention: must not be negative")
	}
	if s.MaxConcurrentRuns < 0 {
		return muster.Errorf(muster.EINVALID, "max_concurrent_runs: must not be negative")
	}
	for name, c := range s.Connections {
		if _, ok := sqlDriver(c.Driver); !ok {
			return muster.Errorf(muster.EINVALID, "connections.%s.driver: %q is not postgres, mysql or sqlite", name, c.Driver)
		}
		if c.DSN == "" {
			return muster.Errorf(muster.EINVALID, "connections.%s.dsn: required", name)
		}
		if err := checkDSN(c); err != nil {
			return muster.Errorf(muster.EINVALID, "connections.%s.dsn: %v", name, err)
		}
	}
	for name, p := range s.Proxies {
		if p.User == "" {
			return muster.Errorf(muster.EINVALID, "proxies.%s.user: the OS user is required", name)
		}
	}
	return s.Events.validate()
}

// Duration is a time.Duration written as "90s", "24h".
type Duration = muster.Duration

// ByteSize is a size in bytes, written as a number or with a unit: "512KiB",
// "1MiB", "2GiB" (also KB, MB, GB as powers of 1000).
type ByteSize int64

// UnmarshalYAML reads a size.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// String writes b with the largest binary unit that divides it: "1MiB",
// "512KiB", "1000B".
func (b ByteSize) String() string {
	for _, u := range []struct {
		suffix string
		factor int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.factor == 0 {
			return strconv.FormatInt(int64(b)/u.factor, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

var byteUnits = []struct {
	suffix string
	factor int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1},
}

// ParseByteSize parses "1048576", "1MiB", "512KiB" and the like.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	num, factor := s, int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			num, factor = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.factor
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if errors.Is(err, strconv.ErrRange) || err == nil && n > math.MaxInt64/factor {
		return 0, fmt.Errorf("%q is too large: a size is at most 8 EiB", s)
	}
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size such as 1048576, 512KiB or 1MiB", num)
	}
	return ByteSize(n * factor), nil
}
