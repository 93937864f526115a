package schedule

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

func TestCronErrors(t *testing.T) {
	tests := []struct {
		expr string
		want string // the message after `cron "expr": `
	}{
		{"0 0 30 2 *", "this schedule can never fire (day 30 never occurs in month 2)"},
		{"0 0 31 4 *", "this schedule can never fire (day 31 never occurs in month 4)"},
		{"0 0 30,31 feb *", "this schedule can never fire (days 30,31 never occur in month 2)"},
		{"0 0 31 apr,jun *", "this schedule can never fire (day 31 never occurs in months 4,6)"},
		{"0 0 31 2 */2", "this schedule can never fire (day 31 never occurs in month 2)"},
		{"15/0 * * * * *", `second field "15/0": step 0 is not allowed; use 1 or more`},
		{"*/x * * * *", `minute field "*/x": step "x" is not a whole number`},
		{"*/-1 * * * *", `minute field "*/-1": step "-1" is not a whole number`},
		{"TZ=", "TZ= needs a zone name, such as TZ=Europe/Berlin"},
		{"CRON_TZ= 0 0 * * *", "CRON_TZ= needs a zone name, such as CRON_TZ=Europe/Berlin"},
		{"TZ=0", `"0" is not a known time zone; use an IANA name such as Europe/Berlin`},
		{"TZ=TZ=TZ=", `"TZ=TZ=" is not a time zone; use an IANA name such as Europe/Berlin`},
		{"TZ=Local 0 0 * * *", `"Local" is not a time zone; use an IANA name such as Europe/Berlin`},
		{"CRON_TZ=Mars/Olympus_Mons 0 0 * * *", `"Mars/Olympus_Mons" is not a known time zone; use an IANA name such as Europe/Berlin`},
		{"CRON_TZ=UTC", "nothing follows CRON_TZ=UTC; add the cron fields"},
		{"@every 5m", "@every is not supported; use a daily schedule with repeat.every instead"},
		{"@fortnightly", `"@fortnightly" is not a descriptor; use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly`},
		{"* * * *", "has 4 fields; use 5 (minute hour day-of-month month day-of-week) or 6 (second first)"},
		{"* * * * * * *", "has 7 fields; use 5 (minute hour day-of-month month day-of-week) or 6 (second first)"},
		{"60 * * * *", `minute field "60": 60 is out of range 0-59`},
		{"* 24 * * *", `hour field "24": 24 is out of range 0-23`},
		{"* * 0 * *", `day-of-month field "0": 0 is out of range 1-31`},
		{"* * 32 * *", `day-of-month field "32": 32 is out of range 1-31`},
		{"* * * 13 *", `month field "13": 13 is out of range 1-12`},
		{"* * * * 8", `day-of-week field "8": 8 is out of range 0-7`},
		{"5-2 * * * *", `minute field "5-2": range 5-2 runs backwards; write the smaller value first`},
		{"* * * foo *", `month field "foo": "foo" is neither a number nor a month name`},
		{"* * * * funday", `day-of-week field "funday": "funday" is neither a number nor a day-of-week name`},
		{"jan * * * *", `minute field "jan": "jan" is not a number`},
		{"1,,2 * * * *", `minute field "1,,2": an empty list item`},
		{"-5 * * * *", `minute field "-5": a value is missing`},
		{"99999999999999999999 * * * *", `minute field "99999999999999999999": 99999999999999999999 is out of range 0-59`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			checkError(t, muster.Schedule{Cron: tt.expr}, nil, fmt.Sprintf("cron %q: %s", tt.expr, tt.want))
		})
	}
}

func TestCronNext(t *testing.T) {
	tests := []struct {
		name  string
		expr  string
		zone  string // "" means UTC
		after string
		want  []string
	}{
		{"every minute", "* * * * *", "", "2024-01-01T00:00:30Z", []string{"2024-01-01T00:01:00Z", "2024-01-01T00:02:00Z"}},
		{"every second", "* * * * * *", "", "2024-01-01T00:00:00.5Z", []string{"2024-01-01T00:00:01Z", "2024-01-01T00:00:02Z"}},
		{"seconds field", "*/20 30 10 * * *", "", "2024-01-01T10:30:00Z", []string{
			"2024-01-01T10:30:20Z", "2024-01-01T10:30:40Z", "2024-01-02T10:30:00Z", "2024-01-02T10:30:20Z"}},
		{"strictly after", "0 12 * * *", "", "2024-01-01T12:00:00Z", []string{"2024-01-02T12:00:00Z", "2024-01-03T12:00:00Z"}},
		{"leap day", "0 0 29 2 *", "", "2024-03-01T00:00:00Z", []string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
		{"leap day skips 2100", "0 0 29 2 *", "", "2096-03-01T00:00:00Z", []string{"2104-02-29T00:00:00Z", "2108-02-29T00:00:00Z"}},
		{"31st skips short months", "0 0 31 * *", "", "2024-01-31T00:00:00Z", []string{
			"2024-03-31T00:00:00Z", "2024-05-31T00:00:00Z", "2024-07-31T00:00:00Z", "2024-08-31T00:00:00Z", "2024-10-31T00:00:00Z"}},
		{"year end", "59 23 31 12 *", "", "2024-06-01T00:00:00Z", []string{"2024-12-31T23:59:00Z", "2025-12-31T23:59:00Z"}},
		{"day fields either", "0 9 13 * fri", "", "2024-09-01T00:00:00Z", []string{
			"2024-09-06T09:00:00Z", "2024-09-13T09:00:00Z", "2024-09-20T09:00:00Z", "2024-09-27T09:00:00Z",
			"2024-10-04T09:00:00Z", "2024-10-11T09:00:00Z", "2024-10-13T09:00:00Z", "2024-10-18T09:00:00Z"}},
		{"man page example", "30 4 1,15 * 5", "", "2024-01-31T12:00:00Z", []string{
			"2024-02-01T04:30:00Z", "2024-02-02T04:30:00Z", "2024-02-09T04:30:00Z", "2024-02-15T04:30:00Z", "2024-02-16T04:30:00Z", "2024-02-23T04:30:00Z"}},
		{"star step dom is unrestricted", "0 9 */10 * mon", "", "2023-12-31T00:00:00Z", []string{
			"2024-01-01T09:00:00Z", "2024-03-11T09:00:00Z", "2024-04-01T09:00:00Z", "2024-07-01T09:00:00Z"}},
		{"dow star", "0 0 13 * *", "", "2024-01-01T00:00:00Z", []string{"2024-01-13T00:00:00Z", "2024-02-13T00:00:00Z"}},
		{"dow only", "0 0 * * 1", "", "2024-01-01T00:00:00Z", []string{"2024-01-08T00:00:00Z", "2024-01-15T00:00:00Z"}},
		{"dow 7 is sunday", "0 0 * * 7", "", "2024-09-01T00:00:00Z", []string{"2024-09-08T00:00:00Z", "2024-09-15T00:00:00Z"}},
		{"dow range with 7", "0 0 * * 5-7", "", "2024-09-01T00:00:00Z", []string{
			"2024-09-06T00:00:00Z", "2024-09-07T00:00:00Z", "2024-09-08T00:00:00Z", "2024-09-13T00:00:00Z"}},
		{"names any case", "0 12 * JAN-Mar MON-fri", "", "2024-03-29T13:00:00Z", []string{"2025-01-01T12:00:00Z", "2025-01-02T12:00:00Z", "2025-01-03T12:00:00Z", "2025-01-06T12:00:00Z"}},
		{"start with step", "5/20 * * * *", "", "2024-01-01T00:00:00Z", []string{"2024-01-01T00:05:00Z", "2024-01-01T00:25:00Z", "2024-01-01T00:45:00Z", "2024-01-01T01:05:00Z"}},
		{"range with step", "0 8-18/4 * * *", "", "2024-01-01T00:00:00Z", []string{"2024-01-01T08:00:00Z", "2024-01-01T12:00:00Z", "2024-01-01T16:00:00Z", "2024-01-02T08:00:00Z"}},
		{"list", "0 0 1,15 3,9 *", "", "2024-01-01T00:00:00Z", []string{"2024-03-01T00:00:00Z", "2024-03-15T00:00:00Z", "2024-09-01T00:00:00Z", "2024-09-15T00:00:00Z", "2025-03-01T00:00:00Z"}},
		{"wide step", "*/90 * * * *", "", "2024-01-01T00:00:30Z", []string{"2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z"}},
		{"@yearly", "@yearly", "", "2024-06-01T00:00:00Z", []string{"2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"}},
		{"@annually", "@annually", "", "2024-06-01T00:00:00Z", []string{"2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"}},
		{"@monthly", "@monthly", "", "2024-06-01T00:00:00Z", []string{"2024-07-01T00:00:00Z", "2024-08-01T00:00:00Z"}},
		{"@weekly", "@weekly", "", "2024-09-01T00:00:00Z", []string{"2024-09-08T00:00:00Z", "2024-09-15T00:00:00Z"}},
		{"@daily", "@daily", "", "2024-06-01T00:00:00Z", []string{"2024-06-02T00:00:00Z", "2024-06-03T00:00:00Z"}},
		{"@midnight", "@MIDNIGHT", "", "2024-06-01T00:00:00Z", []string{"2024-06-02T00:00:00Z", "2024-06-03T00:00:00Z"}},
		{"@hourly", "@hourly", "", "2024-06-01T00:00:00Z", []string{"2024-06-01T01:00:00Z", "2024-06-01T02:00:00Z"}},
		{"zone", "0 9 * * *", "Asia/Tokyo", "2024-06-01T00:00:00Z", []string{"2024-06-02T09:00:00+09:00", "2024-06-03T09:00:00+09:00"}},
		{"CRON_TZ", "CRON_TZ=Asia/Tokyo 0 9 * * *", "America/New_York", "2024-06-01T00:00:00Z", []string{"2024-06-02T09:00:00+09:00", "2024-06-03T09:00:00+09:00"}},
		{"TZ", "TZ=Europe/Berlin   @daily", "America/New_York", "2024-06-01T00:00:00Z", []string{"2024-06-02T00:00:00+02:00", "2024-06-03T00:00:00+02:00"}},
		{"extra spaces", "  0   9 * *   * ", "", "2024-06-01T00:00:00Z", []string{"2024-06-01T09:00:00Z", "2024-06-02T09:00:00Z"}},
		{"last second supported", "59 59 23 31 12 *", "", "9998-12-31T23:59:59Z", []string{"9999-12-31T23:59:59Z", never}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := time.UTC
			if tt.zone != "" {
				loc = mustLoad(t, tt.zone)
			}
			p := mustCompile(t, muster.Schedule{Cron: tt.expr}, loc)
			checkFires(t, p, mustTime(t, tt.after, loc), tt.want)
		})
	}
}

func TestCronWindow(t *testing.T) {
	p := mustCompile(t, muster.Schedule{Cron: "0 12 * * *", StartDate: "2024-03-01", EndDate: "2024-03-03"}, time.UTC)
	checkFires(t, p, mustTime(t, "2024-01-01T00:00:00Z", nil), []string{
		"2024-03-01T12:00:00Z", "2024-03-02T12:00:00Z", "2024-03-03T12:00:00Z", never})

	checkError(t, muster.Schedule{Cron: "0 0 29 2 *", StartDate: "2025-01-01", EndDate: "2027-12-31"}, nil,
		"cron: this schedule never fires within start_date 2025-01-01 to end_date 2027-12-31")
}

// cronMatches is a reference matcher written against time.Time, to check
// the field-skipping search of cronSpec.next.
func cronMatches(c *cronSpec, t time.Time) bool {
	has := func(set uint64, v int) bool { return set&(1<<uint(v)) != 0 }
	if !has(c.second, t.Second()) || !has(c.minute, t.Minute()) || !has(c.hour, t.Hour()) || !has(c.month, int(t.Month())) {
		return false
	}
	dom, dow := has(c.dom, t.Day()), has(c.dow, int(t.Weekday()))
	if c.either {
		return dom || dow
	}
	return dom && dow
}

// TestCronAgainstReference compares Next with a minute-by-minute scan for
// random expressions, so the skipping logic is checked on cases nobody
// thought to write down.
func TestCronAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	field := func(min, max int) string {
		switch rng.IntN(6) {
		case 0:
			return "*"
		case 1:
			return fmt.Sprintf("*/%d", 1+rng.IntN(max-min+1))
		case 2:
			a := min + rng.IntN(max-min+1)
			return fmt.Sprintf("%d-%d", a, a+rng.IntN(max-a+1))
		case 3:
			a := min + rng.IntN(max-min+1)
			return fmt.Sprintf("%d-%d/%d", a, a+rng.IntN(max-a+1), 1+rng.IntN(5))
		case 4:
			return fmt.Sprintf("%d,%d", min+rng.IntN(max-min+1), min+rng.IntN(max-min+1))
		}
		return fmt.Sprint(min + rng.IntN(max-min+1))
	}
	const horizon = 45 * 24 * time.Hour
	tested := 0
	for tested < 60 {
		expr := strings.Join([]string{field(0, 59), field(0, 23), field(1, 31), field(1, 12), field(0, 7)}, " ")
		c, _, msg := parseCron(expr)
		if msg != "" {
			continue
		}
		tested++
		p := mustCompile(t, muster.Schedule{Cron: expr}, time.UTC)
		after := time.Date(2020+rng.IntN(10), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), 0, 0, time.UTC)
		got, ok := p.Next(after)
		var want time.Time
		for m := after.Add(time.Minute); m.Sub(after) <= horizon; m = m.Add(time.Minute) {
			if cronMatches(c, m) {
				want = m
				break
			}
		}
		switch {
		case want.IsZero() && ok && got.Sub(after) <= horizon:
			t.Errorf("%q after %s: Next = %s, but the scan found nothing", expr, after, got)
		case !want.IsZero() && (!ok || !got.Equal(want)):
			t.Errorf("%q after %s: Next = %s, %v; want %s", expr, after, got, ok, want)
		}
	}
}
