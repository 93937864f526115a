package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseDays(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90d", 90 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"36h", 36 * time.Hour, true},
		{"15m", 15 * time.Minute, true},
		{"0d", 0, true},
		{"3", 0, false},
		{"d", 0, false},
		{"-1d", 0, false},
		{"1d-1h", 0, false},
		{"1.5d", 0, false},
		{"100000d", 0, false},
		{"36500d", 36500 * 24 * time.Hour, true},
		// Days and hours that together pass the longest duration are
		// refused, not taken for a negative one (which --history-max-age
		// reads as no limit).
		{"36500d2562047h", 0, false},
		{"1d2562047h", 0, false},
	} {
		got, err := parseDays(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseDays(%q) = %s, %v; want %s, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	d := days(365 * 24 * time.Hour)
	if got := d.String(); got != "365d" {
		t.Errorf("365 days print as %q", got)
	}
}

// A purge's age is sent in whole seconds, rounded up: a purge deletes no
// run younger than --older-than says.
func TestPurgeAge(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want int64
	}{
		{time.Second, 1},
		{1500 * time.Millisecond, 2},
		{30 * 24 * time.Hour, 30 * 24 * 3600},
		{30*24*time.Hour + time.Nanosecond, 30*24*3600 + 1},
	} {
		if got := purgeAge(tc.in); got != tc.want {
			t.Errorf("purgeAge(%s) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	if got, err := parseSince("7d", now); err != nil || !got.Equal(now.Add(-7*24*time.Hour)) {
		t.Errorf("7d: %v, %v", got, err)
	}
	if got, err := parseSince("2026-11-01T00:00:00Z", now); err != nil || !got.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("a time: %v, %v", got, err)
	}
	if _, err := parseSince("yesterday", now); err == nil || !strings.Contains(err.Error(), "is neither a duration") {
		t.Errorf("yesterday: %v, want it refused as neither a duration nor a time", err)
	}
}

// Every flag whose natural unit is days takes them, as muster apikey create
// --ttl 90d and muster master --audit-max-age 365d do: "--ttl 7d", the
// longest an enlistment token lives, is not refused as an unknown unit.
func TestDurationFlagsTakeDays(t *testing.T) {
	for _, args := range [][]string{
		{"token", "create", "--target", "web1", "--ttl", "7d"},
		{"history", "purge", "--older-than", "30d"},
		{"alert", "create", "stale", "--on", "no_success", "--window", "2d", "--notify", "oncall"},
		{"master", "--data", "/nonexistent", "--history-max-age", "90d", "--cert-ttl", "2d"},
	} {
		root := newRoot(io.Discard, io.Discard, args)
		cmd, rest, err := root.Find(args)
		if err != nil {
			t.Fatalf("muster %s: %v", strings.Join(args, " "), err)
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Errorf("muster %s: %v", strings.Join(args, " "), err)
		}
	}
}

// An enlistment token's --ttl out of range is refused by the command, naming
// its flag and the range in the flag's own units, before any request.
func TestTokenTTLOutOfRange(t *testing.T) {
	for ttl, said := range map[string]string{"8d": "8d", "30s": "30s", "0": "0s", "0s": "0s"} {
		var stdout, stderr strings.Builder
		code := run([]string{"token", "create", "--target", "web1", "--ttl", ttl, "--addr", "https://127.0.0.1:1"}, &stdout, &stderr)
		if want := "muster: --ttl: a token lives from 1m to 7d, not " + said + "\n"; code != 1 || stderr.String() != want {
			t.Errorf("--ttl %s: exit %d, stderr %q; want 1, %q", ttl, code, stderr.String(), want)
		}
	}
}

// A --limit (or --keep) out of the range the master takes is refused by
// the command, naming its flag, before any request: not sent, to be
// refused naming the API's parameter, nor left out for the default.
func TestCountFlagsOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"event", "list", "--limit", "0"}, `invalid argument "0" for "--limit" flag: a whole number from 1 to 10000`},
		{[]string{"event", "list", "--limit", "-1"}, `invalid argument "-1" for "--limit" flag: a whole number from 1 to 10000`},
		{[]string{"event", "list", "--limit", "10001"}, `invalid argument "10001" for "--limit" flag: a whole number from 1 to 10000`},
		{[]string{"audit", "--limit", "0"}, `invalid argument "0" for "--limit" flag: a whole number from 1 to 10000`},
		{[]string{"alert", "history", "--limit", "-5"}, `invalid argument "-5" for "--limit" flag: a whole number from 1 to 10000`},
		{[]string{"downloadlist", "--limit", "100001"}, `invalid argument "100001" for "--limit" flag: a whole number from 1 to 100000`},
		{[]string{"job", "history", "backup", "--limit", "0"}, `invalid argument "0" for "--limit" flag: a whole number from 1 to 10000`},
		{[]string{"history", "purge", "--keep", "-1"}, `invalid argument "-1" for "--keep" flag: a whole number of 0 or more`},
		{[]string{"history", "purge", "--older-than", "900000h"}, `--older-than: at most 100 years (36500d), not 37500d`},
		// The API takes whole seconds: less than one was sent as none, a
		// purge without an age limit.
		{[]string{"history", "purge", "--older-than", "500ms"}, `--older-than: at least 1s, not 500ms`},
		{[]string{"history", "purge", "--keep", "5", "--older-than", "1ms"}, `--older-than: at least 1s, not 1ms`},
		{[]string{"job", "show", "backup", "--next", "-1"}, `invalid argument "-1" for "--next" flag: a whole number from 1 to 1000`},
		{[]string{"job", "show", "backup", "--next", "1001"}, `invalid argument "1001" for "--next" flag: a whole number from 1 to 1000`},
	} {
		var stdout, stderr strings.Builder
		code := run(append(tc.args, "--addr", "https://127.0.0.1:1", "--token", "mat_x"), &stdout, &stderr)
		if want := "muster: " + tc.want + "\n"; code != 1 || stderr.String() != want {
			t.Errorf("%v: exit %d, stderr %q; want 1, %q", tc.args, code, stderr.String(), want)
		}
	}
	// The master's limits: a negative one was taken for 0, no limit.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"master", "--data", t.TempDir(), "--listen", "256.0.0.1:0", "--history-max-runs", "-5"}, `invalid argument "-5" for "--history-max-runs" flag: a whole number of 0 or more`},
		{[]string{"master", "--data", t.TempDir(), "--listen", "256.0.0.1:0", "--downloaded-max-rows", "-1"}, `invalid argument "-1" for "--downloaded-max-rows" flag: a whole number of 0 or more`},
	} {
		var stdout, stderr strings.Builder
		code := run(tc.args, &stdout, &stderr)
		if want := "muster: " + tc.want + "\n"; code != 1 || stderr.String() != want {
			t.Errorf("%v: exit %d, stderr %q; want 1, %q", tc.args, code, stderr.String(), want)
		}
	}
}

// A start's expiry and a wait's timeout the command cannot honour are
// refused naming the flag, before any request: an expiry under a second
// was sent as 0, which the master takes for its default of 10 minutes, and
// a timeout of 0 or less timed out at once, exiting 2.
func TestStartAndWaitFlagsOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "start", "backup", "--expires", "500ms"}, "--expires: from 1s to 24h, not 500ms"},
		{[]string{"job", "start", "backup", "--expires", "0s"}, "--expires: from 1s to 24h, not 0s"},
		{[]string{"job", "start", "backup", "--expires", "25h"}, "--expires: from 1s to 24h, not 25h"},
		{[]string{"job", "start", "backup", "--wait", "--timeout", "0s"}, "--timeout: a duration above 0, such as 30m, not 0s"},
		{[]string{"job", "start", "backup", "--wait", "--timeout", "-5m"}, "--timeout: a duration above 0, such as 30m, not -5m"},
		{[]string{"apply", "-f", "jobs.yaml", "--wait", "--timeout", "0s"}, "--timeout: a duration above 0, such as 30m, not 0s"},
		{[]string{"post", "set-poll", "--value", "5"}, "--value: the poll interval is 10 to 28800 seconds, not 5"},
		// --follow prints runs as text as they come: after -o json's
		// list, that made the output neither JSON nor text.
		{[]string{"job", "history", "backup", "--follow", "-o", "json"}, "--follow prints text as runs go on; it takes no -o json"},
		{[]string{"job", "history", "backup", "-f", "-o", "yaml"}, "--follow prints text as runs go on; it takes no -o yaml"},
	} {
		var stdout, stderr strings.Builder
		code := run(append(tc.args, "--addr", "https://127.0.0.1:1", "--token", "mat_x"), &stdout, &stderr)
		if want := "muster: " + tc.want + "\n"; code != 1 || stderr.String() != want {
			t.Errorf("%v: exit %d, stderr %q; want 1, %q", tc.args, code, stderr.String(), want)
		}
	}
}
