package console

import (
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

func TestOffset(t *testing.T) {
	for minutes, want := range map[int]string{0: "UTC+00:00", 60: "UTC+01:00", -330: "UTC-05:30", 345: "UTC+05:45", -600: "UTC-10:00"} {
		if got := offset(minutes); got != want {
			t.Errorf("offset(%d) = %q, want %q", minutes, got, want)
		}
	}
}

func TestLocalTime(t *testing.T) {
	at := time.Date(2026, 12, 5, 22, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		t    muster.Target
		want string
	}{
		{"never polled", muster.Target{}, "never polled"},
		{"east of UTC", muster.Target{LocalTime: &at, TimeZone: "Asia/Kolkata", UTCOffsetMinutes: 330}, "04:00 Asia/Kolkata (UTC+05:30)"},
		{"west of UTC", muster.Target{LocalTime: &at, TimeZone: "America/New_York", UTCOffsetMinutes: -300}, "17:30 America/New_York (UTC-05:00)"},
		{"no zone name", muster.Target{LocalTime: &at}, "22:30 local (UTC+00:00)"},
	} {
		if got := localTime(tc.t); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestBadges(t *testing.T) {
	for _, tc := range []struct {
		status string
		flags  []string
		want   []string
	}{
		{muster.StatusNormal, []string{}, []string{"normal"}},
		{muster.StatusNormal, []string{muster.FlagPaused}, []string{"normal", "paused"}},
		{muster.StatusSuspectedOffline, []string{muster.StatusSuspectedOffline, muster.StatusBlocked, muster.FlagDeleted},
			[]string{"suspected_offline", "blocked", "deleted"}},
	} {
		if got := badges(muster.Target{Status: tc.status, Flags: tc.flags}); !slices.Equal(got, tc.want) {
			t.Errorf("badges(%s, %v) = %v, want %v", tc.status, tc.flags, got, tc.want)
		}
	}
}

// localPath takes only a path on this site. Browsers drop tab, LF and CR
// from a Location and read a backslash as a slash, so "/\t/evil.example"
// and "/\\evil.example" would take them to another host; the encoded
// forms are refused too, in case something on the way decodes them.
func TestLocalPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/":                           true,
		"/fleet":                      true,
		"/jobs?failed=1":              true,
		"/fleet?group=eu+west&page=2": true,
		"/targets/web%201":            true,
		"/audit?target=web1#latest":   true,
		"":                            false,
		"fleet":                       false,
		"//evil.example":              false,
		"///evil.example":             false,
		`/\evil.example`:              false,
		`/fleet\..\\evil.example`:     false,
		"https://evil.example":        false,
		"https:/evil.example":         false,
		"javascript:alert(1)":         false,
		"/\t/evil.example":            false,
		"/\n/evil.example":            false,
		"/\r/evil.example":            false,
		"/\x00/evil.example":          false,
		"/\x7f/evil.example":          false,
		"/\u0085/evil.example":        false,
		"/fleet\n":                    false,
		"/%09/evil.example":           false,
		"/%0a/evil.example":           false,
		"/%2f/evil.example":           false,
		"/%5cevil.example":            false,
		"/%zz":                        false,
	} {
		if got := localPath(p); got != want {
			t.Errorf("localPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestPager(t *testing.T) {
	filters := url.Values{"group": {"eu west"}}
	cases := []struct {
		page, n          int
		from, to, pages  int
		self, prev, next string
	}{
		{1, 0, 0, 0, 1, "/fleet?group=eu+west", "", ""},
		{1, 250, 0, 100, 3, "/fleet?group=eu+west", "", "/fleet?group=eu+west&page=2"},
		{2, 250, 100, 200, 3, "/fleet?group=eu+west&page=2", "/fleet?group=eu+west", "/fleet?group=eu+west&page=3"},
		{9, 250, 200, 250, 3, "/fleet?group=eu+west&page=3", "/fleet?group=eu+west&page=2", ""}, // past the end: the last page
	}
	for _, c := range cases {
		p := pager{Page: c.page}
		from, to := p.paginate(c.n, 100)
		self := p.link("/fleet", filters)
		if from != c.from || to != c.to || p.Pages != c.pages || self != c.self || p.Prev != c.prev || p.Next != c.next {
			t.Errorf("page %d of %d items: [%d, %d) of %d pages, self %q, prev %q, next %q; want [%d, %d) of %d, %q, %q, %q",
				c.page, c.n, from, to, p.Pages, self, p.Prev, p.Next, c.from, c.to, c.pages, c.self, c.prev, c.next)
		}
	}
	if len(filters) != 1 {
		t.Errorf("the filters were changed: %v", filters)
	}
	if got := (&pager{Page: 1}).link("/jobs", url.Values{}); got != "/jobs" {
		t.Errorf("an unfiltered first page links to %q, want /jobs", got)
	}
}
