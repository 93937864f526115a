package schedule

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

// mustLoad returns a zone from the embedded database.
func mustLoad(tb testing.TB, name string) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		tb.Fatal(err)
	}
	return loc
}

// mustCompile compiles s or fails the test.
func mustCompile(tb testing.TB, s muster.Schedule, loc *time.Location) *Plan {
	tb.Helper()
	p, err := Compile(s, loc)
	if err != nil {
		tb.Fatalf("Compile(%+v): %v", s, err)
	}
	return p
}

// mustTime parses an RFC 3339 time, or a local "2006-01-02T15:04:05" in loc.
func mustTime(tb testing.TB, s string, loc *time.Location) time.Time {
	tb.Helper()
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", s, loc)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// fires returns up to n successive fires after `after`, formatted RFC 3339
// in the plan's zone, checking on the way that each is later than the last.
func fires(tb testing.TB, p *Plan, after time.Time, n int) []string {
	tb.Helper()
	var out []string
	for range n {
		next, ok := p.Next(after)
		if !ok {
			break
		}
		if !next.After(after) {
			tb.Fatalf("Next(%s) = %s, not after it", after.Format(time.RFC3339), next.Format(time.RFC3339))
		}
		out = append(out, next.Format(time.RFC3339))
		after = next
	}
	return out
}

// never ends a list of expected fires whose last entry is the plan's last
// fire: Next must then report false.
const never = "never"

// checkFires compares the fires after `after` with want, which is the first
// few expected, or every one followed by never.
func checkFires(t *testing.T, p *Plan, after time.Time, want []string) {
	t.Helper()
	got := fires(t, p, after, len(want))
	if len(want) > 0 && want[len(want)-1] == never && len(got) < len(want) {
		got = append(got, never)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("fires after %s:\n got %s\nwant %s", after.Format(time.RFC3339), strings.Join(got, " "), strings.Join(want, " "))
	}
}

// checkError compiles s and compares the error message with want.
func checkError(t *testing.T, s muster.Schedule, loc *time.Location, want string) {
	t.Helper()
	_, err := Compile(s, loc)
	if err == nil {
		t.Fatalf("Compile(%+v) succeeded; want error %q", s, want)
	}
	var e *muster.Error
	if !errors.As(err, &e) || e.Code != muster.EINVALID {
		t.Fatalf("Compile(%+v) error %#v is not a *muster.Error with code EINVALID", s, err)
	}
	if err.Error() != want {
		t.Errorf("Compile(%+v) error:\n got %s\nwant %s", s, err, want)
	}
}

func TestAtStart(t *testing.T) {
	p := mustCompile(t, muster.Schedule{AtStart: true}, nil)
	if !p.AtStart() {
		t.Error("AtStart() = false, want true")
	}
	if got, ok := p.Next(time.Now()); ok {
		t.Errorf("Next = %s, true; want false for at_start", got)
	}
	q := mustCompile(t, muster.Schedule{Cron: "@daily"}, nil)
	if q.AtStart() {
		t.Error("AtStart() = true for a cron plan")
	}
}

func TestLocation(t *testing.T) {
	ny := mustLoad(t, "America/New_York")
	tests := []struct {
		name string
		s    muster.Schedule
		loc  *time.Location
		want string
	}{
		{"default", muster.Schedule{Cron: "@daily"}, ny, "America/New_York"},
		{"nil means UTC", muster.Schedule{Cron: "@daily"}, nil, "UTC"},
		{"CRON_TZ wins", muster.Schedule{Cron: "CRON_TZ=Asia/Tokyo @daily"}, ny, "Asia/Tokyo"},
		{"TZ wins", muster.Schedule{Cron: "TZ=Europe/Berlin 0 9 * * *"}, ny, "Europe/Berlin"},
		{"frequency", muster.Schedule{Daily: &muster.DailyFrequency{}}, ny, "America/New_York"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustCompile(t, tt.s, tt.loc).Location().String(); got != tt.want {
				t.Errorf("Location() = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestValidateAll(t *testing.T) {
	daily := &muster.DailyFrequency{}
	tests := []struct {
		name   string
		scheds []muster.Schedule
		want   string // "" for no error
	}{
		{"none", nil, ""},
		{"valid", []muster.Schedule{{Name: "nightly", Cron: "0 2 * * *"}, {Daily: daily, At: "12:00"}}, ""},
		{
			"named",
			[]muster.Schedule{{Cron: "@hourly"}, {Name: "nightly", Cron: "0 0 30 2 *"}},
			`schedules[1] "nightly": cron "0 0 30 2 *": this schedule can never fire (day 30 never occurs in month 2)`,
		},
		{
			"default name",
			[]muster.Schedule{{Cron: "@hourly"}, {Weekly: &muster.WeeklyFrequency{Days: []string{"fun"}}}},
			`schedules[1] "schedule-2": weekly.days: "fun" is not a day; use mon, tue, wed, thu, fri, sat or sun`,
		},
		{
			"duplicate name",
			[]muster.Schedule{{Name: "a", Cron: "@hourly"}, {Name: "a", Cron: "@daily"}},
			`schedules[1] "a": the name is already used by schedules[0]; schedule names must be unique within a job`,
		},
		{
			"name collides with a default",
			[]muster.Schedule{{Cron: "@hourly"}, {Name: "schedule-1", Cron: "@daily"}},
			`schedules[1] "schedule-1": the name is already used by schedules[0]; schedule names must be unique within a job`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateAll(tt.scheds, nil)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ValidateAll: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateAll succeeded; want %q", tt.want)
			}
			if muster.ErrorCode(err) != muster.EINVALID {
				t.Errorf("code = %q, want %q", muster.ErrorCode(err), muster.EINVALID)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestJitterFor(t *testing.T) {
	if got := JitterFor("web-1/backup/nightly", 0); got != 0 {
		t.Errorf("JitterFor(max 0) = %s, want 0", got)
	}
	if got := JitterFor("web-1/backup/nightly", -time.Second); got != 0 {
		t.Errorf("JitterFor(max < 0) = %s, want 0", got)
	}
	const max = 10 * time.Minute
	a, b := JitterFor("web-1/backup/nightly", max), JitterFor("web-1/backup/nightly", max)
	if a != b {
		t.Errorf("JitterFor is not stable: %s then %s", a, b)
	}

	// A thousand targets named alike spread over the whole interval: every
	// tenth of it gets a fair share.
	var buckets [10]int
	for i := range 1000 {
		d := JitterFor(fmt.Sprintf("web-%d/backup/nightly", i), max)
		if d < 0 || d >= max {
			t.Fatalf("JitterFor = %s, outside [0, %s)", d, max)
		}
		buckets[d*10/max]++
	}
	for i, n := range buckets {
		if n < 50 || n > 150 {
			t.Errorf("bucket %d holds %d of 1000 delays, want about 100: %v", i, n, buckets)
		}
	}
}

func TestCompileKinds(t *testing.T) {
	daily := &muster.DailyFrequency{}
	rep := &muster.Repeat{Every: muster.Duration(time.Hour)}
	tests := []struct {
		name string
		s    muster.Schedule
		want string
	}{
		{"none", muster.Schedule{}, "schedule sets no kind; set one of cron, once, daily, weekly, monthly, monthly_relative or at_start"},
		{"two", muster.Schedule{Cron: "@daily", Weekly: &muster.WeeklyFrequency{Days: []string{"mon"}}}, "schedule sets cron and weekly; set exactly one kind"},
		{"three", muster.Schedule{Once: "2030-01-01T00:00:00", Daily: daily, AtStart: true}, "schedule sets once, daily and at_start; set exactly one kind"},
		{"at_start with at", muster.Schedule{AtStart: true, At: "10:00"}, "at_start: fires each time the target starts, so it takes no at, repeat, start_date or end_date"},
		{"at_start with dates", muster.Schedule{AtStart: true, StartDate: "2024-01-01"}, "at_start: fires each time the target starts, so it takes no at, repeat, start_date or end_date"},
		{"cron with at", muster.Schedule{Cron: "@daily", At: "10:00"}, "at: not allowed with cron, which gives its own time of day"},
		{"cron with repeat", muster.Schedule{Cron: "@daily", Repeat: rep}, "repeat: not allowed with cron; use a daily, weekly or monthly schedule"},
		{"once with at", muster.Schedule{Once: "2030-01-01T10:00:00", At: "10:00"}, "at: not allowed with once, which gives its own time of day"},
		{"once with repeat", muster.Schedule{Once: "2030-01-01T10:00:00", Repeat: rep}, "repeat: not allowed with once; use a daily, weekly or monthly schedule"},
		{"negative jitter", muster.Schedule{Cron: "@daily", Jitter: muster.Duration(-time.Second)}, "jitter: -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkError(t, tt.s, nil, tt.want) })
	}
}
