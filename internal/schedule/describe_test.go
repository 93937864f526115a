package schedule

import (
	"testing"
	"time"

	"github.com/musterhq/muster"
)

func TestDescribe(t *testing.T) {
	every := func(d time.Duration, from, until string) *muster.Repeat {
		return &muster.Repeat{Every: muster.Duration(d), From: from, Until: until}
	}
	weekdays := []string{"mon", "tue", "wed", "thu", "fri"}
	for _, tc := range []struct {
		name string
		s    muster.Schedule
		want string
	}{
		// SQL Server's freq_type 4: daily.
		{"daily", muster.Schedule{Daily: &muster.DailyFrequency{}, At: "02:30"}, "every day at 02:30"},
		{"daily at midnight", muster.Schedule{Daily: &muster.DailyFrequency{}}, "every day at 00:00"},
		{"every other day", muster.Schedule{Daily: &muster.DailyFrequency{Every: 2}, At: "03:30:15"}, "every 2 days at 03:30:15"},
		{"daily repeat", muster.Schedule{Daily: &muster.DailyFrequency{}, Repeat: every(15*time.Minute, "", "")}, "every day, every 15 minutes"},
		{"hourly repeat", muster.Schedule{Daily: &muster.DailyFrequency{}, Repeat: every(time.Hour, "06:00", "")}, "every day, every hour from 06:00 to the end of the day"},
		// freq_type 8: weekly.
		{"weekdays", muster.Schedule{Weekly: &muster.WeeklyFrequency{Days: weekdays}, Repeat: every(30*time.Minute, "08:00", "17:00"), StartDate: "2026-12-01"},
			"every weekday, every 30 minutes between 08:00 and 17:00, from 2026-12-01"},
		{"some days", muster.Schedule{Weekly: &muster.WeeklyFrequency{Days: []string{"fri", "Monday"}}, At: "06:00"}, "every Monday and Friday at 06:00"},
		{"every other week", muster.Schedule{Weekly: &muster.WeeklyFrequency{Every: 2, Days: []string{"sat", "sun"}}, At: "09:00"},
			"every 2 weeks, on Saturday and Sunday at 09:00"},
		{"all week", muster.Schedule{Weekly: &muster.WeeklyFrequency{Days: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}}}, "every day at 00:00"},
		// freq_type 16: monthly.
		{"monthly", muster.Schedule{Monthly: &muster.MonthlyFrequency{Day: 1}, At: "04:00"}, "on day 1 of every month at 04:00"},
		{"quarterly", muster.Schedule{Monthly: &muster.MonthlyFrequency{Every: 3, Day: 15}, StartDate: "2027-01-01", EndDate: "2027-12-31"},
			"on day 15 of every 3 months at 00:00, from 2027-01-01 to 2027-12-31"},
		// freq_type 32: monthly_relative.
		{"last weekday", muster.Schedule{MonthlyRelative: &muster.MonthlyRelativeFrequency{Week: "last", Day: "weekday"}, At: "22:00"},
			"on the last weekday of every month at 22:00"},
		{"second tuesday", muster.Schedule{MonthlyRelative: &muster.MonthlyRelativeFrequency{Every: 2, Week: "second", Day: "tue"}, At: "07:15"},
			"on the second Tuesday of every 2 months at 07:15"},
		{"first weekend day", muster.Schedule{MonthlyRelative: &muster.MonthlyRelativeFrequency{Week: "first", Day: "weekend_day"}},
			"on the first weekend day of every month at 00:00"},
		// freq_type 1 and 64: once and at start.
		{"once", muster.Schedule{Once: "2027-06-01T09:00:00"}, "once, on 2027-06-01 at 09:00"},
		{"at start", muster.Schedule{AtStart: true}, "each time the target daemon starts"},
		{"until", muster.Schedule{Daily: &muster.DailyFrequency{}, At: "01:00", EndDate: "2027-03-31", Jitter: muster.Duration(10 * time.Minute)},
			"every day at 01:00, until 2027-03-31, each target delayed by a fixed amount under 10m"},
		// Cron, in its common shapes.
		{"cron daily", muster.Schedule{Cron: "30 2 * * *"}, "every day at 02:30"},
		{"cron daily descriptor", muster.Schedule{Cron: "@daily"}, "every day at 00:00"},
		{"cron hourly", muster.Schedule{Cron: "@hourly"}, "every hour, on the hour"},
		{"cron minutes past", muster.Schedule{Cron: "5 * * * *"}, "every hour at 5 minutes past"},
		{"cron weekdays", muster.Schedule{Cron: "0 6 * * mon-fri"}, "every weekday at 06:00"},
		{"cron twice a day", muster.Schedule{Cron: "0 8,17 * * *"}, "every day at 08:00 and 17:00"},
		{"cron every 15 minutes", muster.Schedule{Cron: "*/15 * * * *"}, "every 15 minutes"},
		{"cron every minute", muster.Schedule{Cron: "* * * * *"}, "every minute"},
		{"cron every 10 seconds", muster.Schedule{Cron: "*/10 * * * * *"}, "every 10 seconds"},
		{"cron business hours", muster.Schedule{Cron: "*/30 8-16 * * 1-5"}, "every weekday, every 30 minutes between 08:00 and 16:30"},
		{"cron every 2 hours", muster.Schedule{Cron: "15 */2 * * *"}, "every 2 hours from 00:15"},
		{"cron hourly in hours", muster.Schedule{Cron: "0 9-17 * * sat,sun"}, "every Saturday and Sunday, every hour from 09:00 to 17:00"},
		{"cron day of month", muster.Schedule{Cron: "0 3 1,15 * *"}, "on days 1 and 15 of every month at 03:00"},
		{"cron quarterly", muster.Schedule{Cron: "0 0 1 1,4,7,10 *"}, "on day 1 of January, April, July and October at 00:00"},
		{"cron in december", muster.Schedule{Cron: "0 12 * dec mon"}, "every Monday in December at 12:00"},
		{"cron zone", muster.Schedule{Cron: "CRON_TZ=Europe/Paris 0 12 * * *"}, "every day at 12:00 (Europe/Paris time)"},
		{"cron yearly", muster.Schedule{Cron: "@yearly"}, "on day 1 of January at 00:00"},
		// Shapes without words keep the expression.
		{"cron either day", muster.Schedule{Cron: "0 0 13 * fri"}, `cron "0 0 13 * fri"`},
		{"cron odd step", muster.Schedule{Cron: "*/7 * * * *"}, `cron "*/7 * * * *"`},
		{"cron many days", muster.Schedule{Cron: "0 0 1-10 * *"}, `cron "0 0 1-10 * *"`},
		{"cron invalid", muster.Schedule{Cron: "61 * * * *"}, `cron "61 * * * *"`},
		{"nothing", muster.Schedule{}, "never (no kind is set)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Describe(tc.s); got != tc.want {
				t.Errorf("Describe = %q, want %q", got, tc.want)
			}
		})
	}
}
