package sqlagent_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/musterhq/muster/internal/schedule"
	"github.com/musterhq/muster/internal/sqlagent"
)

// Each SQL Server Agent schedule, imported, fires when SQL Server Agent's
// documentation says it does (sp_add_schedule: freq_type, freq_interval
// with its weekday bits and relative days, freq_subday_type and interval,
// freq_relative_interval, freq_recurrence_factor, active dates as YYYYMMDD
// and times as HHMMSS integers). The expected times are worked out by hand
// from that meaning; the import's schedules are compiled with
// internal/schedule, as a target does, in UTC.
func TestImportedSchedulesFireAsDocumented(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params string // sp_add_jobschedule's frequency parameters
		from   string // the fires after this instant
		// want lists the next fires; a last entry "no more" says the
		// schedule fires no more after them.
		want []string
	}{
		{"daily at 02:30 (23000 is 02:30:00)",
			"@freq_type = 4, @freq_interval = 1, @freq_subday_type = 1, @active_start_time = 23000",
			"2024-03-09 12:00:00", []string{"2024-03-10 02:30:00", "2024-03-11 02:30:00", "2024-03-12 02:30:00"}},
		{"every 2 days from the start date",
			"@freq_type = 4, @freq_interval = 2, @active_start_date = 20240101, @active_start_time = 60000",
			"2023-12-31 00:00:00", []string{"2024-01-01 06:00:00", "2024-01-03 06:00:00", "2024-01-05 06:00:00"}},
		{"Monday, Wednesday and Friday (2+8+32) every 15 minutes, 08:00 to 18:00",
			"@freq_type = 8, @freq_interval = 42, @freq_recurrence_factor = 1, @freq_subday_type = 4, @freq_subday_interval = 15, @active_start_time = 80000, @active_end_time = 180000",
			"2024-01-19 17:40:00", []string{"2024-01-19 17:45:00", "2024-01-19 18:00:00", "2024-01-22 08:00:00", "2024-01-22 08:15:00"}},
		{"Tuesday every other week from a Tuesday",
			"@freq_type = 8, @freq_interval = 4, @freq_recurrence_factor = 2, @active_start_date = 20240102, @active_start_time = 90000",
			"2024-01-01 00:00:00", []string{"2024-01-02 09:00:00", "2024-01-16 09:00:00", "2024-01-30 09:00:00"}},
		// SQL Server Agent counts "every N weeks" in weeks running Sunday to
		// Saturday, from the week of @active_start_date, where muster's run
		// Monday to Sunday: from Wednesday 2024-01-10 the active weeks
		// start Sundays 01-07, 01-21, 02-04.
		{"Sunday and Monday (1+2) every other week from a Wednesday",
			"@freq_type = 8, @freq_interval = 3, @freq_recurrence_factor = 2, @active_start_date = 20240110, @active_start_time = 90000",
			"2024-01-01 00:00:00", []string{"2024-01-21 09:00:00", "2024-01-22 09:00:00", "2024-02-04 09:00:00", "2024-02-05 09:00:00"}},
		{"Monday every other week from a Sunday",
			"@freq_type = 8, @freq_interval = 2, @freq_recurrence_factor = 2, @active_start_date = 20240107, @active_start_time = 90000",
			"2024-01-01 00:00:00", []string{"2024-01-08 09:00:00", "2024-01-22 09:00:00", "2024-02-05 09:00:00"}},
		{"Saturday and Sunday (1+64) every third week from a Saturday",
			"@freq_type = 8, @freq_interval = 65, @freq_recurrence_factor = 3, @active_start_date = 20240113, @active_start_time = 120000",
			"2024-01-01 00:00:00", []string{"2024-01-13 12:00:00", "2024-01-28 12:00:00", "2024-02-03 12:00:00", "2024-02-18 12:00:00"}},
		{"Sunday every other week from a Wednesday",
			"@freq_type = 8, @freq_interval = 1, @freq_recurrence_factor = 2, @active_start_date = 20240110, @active_start_time = 90000",
			"2024-01-01 00:00:00", []string{"2024-01-21 09:00:00", "2024-02-04 09:00:00", "2024-02-18 09:00:00"}},
		{"Sunday and Tuesday (1+4) every other week, ending before the first Sunday",
			"@freq_type = 8, @freq_interval = 5, @freq_recurrence_factor = 2, @active_start_date = 20240108, @active_end_date = 20240120, @active_start_time = 90000",
			"2024-01-01 00:00:00", []string{"2024-01-09 09:00:00", noMore}},
		{"Sunday and Monday (1+2) every other week, starting and ending on a Sunday",
			"@freq_type = 8, @freq_interval = 3, @freq_recurrence_factor = 2, @active_start_date = 20240107, @active_end_date = 20240107, @active_start_time = 90000",
			"2024-01-01 00:00:00", []string{"2024-01-07 09:00:00", noMore}},
		// Without a start date, each Sunday comes before the Monday of its
		// week, as in SQL Server's weeks (muster counts from 2000-01-03).
		{"Sunday and Monday (1+2) every other week, with no start date",
			"@freq_type = 8, @freq_interval = 3, @freq_recurrence_factor = 2, @active_start_time = 90000",
			"2024-01-01 00:00:00", []string{"2024-01-01 09:00:00", "2024-01-14 09:00:00", "2024-01-15 09:00:00", "2024-01-28 09:00:00"}},
		{"Saturday and Sunday (1+64)",
			"@freq_type = 8, @freq_interval = 65, @freq_recurrence_factor = 1, @active_start_time = 120000",
			"2024-01-01 00:00:00", []string{"2024-01-06 12:00:00", "2024-01-07 12:00:00", "2024-01-13 12:00:00"}},
		{"day 15 of every month",
			"@freq_type = 16, @freq_interval = 15, @freq_recurrence_factor = 1, @active_start_time = 120000",
			"2024-01-20 00:00:00", []string{"2024-02-15 12:00:00", "2024-03-15 12:00:00", "2024-04-15 12:00:00"}},
		{"day 1 of every third month from April",
			"@freq_type = 16, @freq_interval = 1, @freq_recurrence_factor = 3, @active_start_date = 20240401, @active_start_time = 220000",
			"2024-03-01 00:00:00", []string{"2024-04-01 22:00:00", "2024-07-01 22:00:00", "2024-10-01 22:00:00"}},
		{"first (1) weekday (9) of the month",
			"@freq_type = 32, @freq_interval = 9, @freq_relative_interval = 1, @freq_recurrence_factor = 1, @active_start_time = 60000",
			"2024-06-01 00:00:00", []string{"2024-06-03 06:00:00", "2024-07-01 06:00:00", "2024-08-01 06:00:00"}},
		{"last (16) Friday (6) of the month",
			"@freq_type = 32, @freq_interval = 6, @freq_relative_interval = 16, @freq_recurrence_factor = 1, @active_start_time = 183000",
			"2024-01-01 00:00:00", []string{"2024-01-26 18:30:00", "2024-02-23 18:30:00", "2024-03-29 18:30:00"}},
		{"second (2) weekend day (10) of the month",
			"@freq_type = 32, @freq_interval = 10, @freq_relative_interval = 2, @freq_recurrence_factor = 1",
			"2024-01-01 00:00:00", []string{"2024-01-07 00:00:00", "2024-02-04 00:00:00", "2024-03-03 00:00:00"}},
		{"third (4) Sunday (1) of the month",
			"@freq_type = 32, @freq_interval = 1, @freq_relative_interval = 4, @freq_recurrence_factor = 1, @active_start_time = 30000",
			"2024-01-01 00:00:00", []string{"2024-01-21 03:00:00", "2024-02-18 03:00:00", "2024-03-17 03:00:00"}},
		{"fourth (8) day (8) of every other month",
			"@freq_type = 32, @freq_interval = 8, @freq_relative_interval = 8, @freq_recurrence_factor = 2, @active_start_date = 20240101",
			"2024-01-01 00:00:00", []string{"2024-01-04 00:00:00", "2024-03-04 00:00:00", "2024-05-04 00:00:00"}},
		{"last (16) weekday (9) of the month, in months ending on a weekend too",
			"@freq_type = 32, @freq_interval = 9, @freq_relative_interval = 16, @freq_recurrence_factor = 1, @active_start_date = 20240101, @active_start_time = 200000",
			"2024-02-01 00:00:00", []string{"2024-02-29 20:00:00", "2024-03-29 20:00:00", "2024-04-30 20:00:00", "2024-05-31 20:00:00",
				"2024-06-28 20:00:00", "2024-07-31 20:00:00", "2024-08-30 20:00:00"}},
		{"Monday and Wednesday (2+8) every 2 weeks from a Wednesday",
			"@freq_type = 8, @freq_interval = 10, @freq_recurrence_factor = 2, @active_start_date = 20240110, @active_start_time = 70000",
			"2024-01-01 00:00:00", []string{"2024-01-10 07:00:00", "2024-01-22 07:00:00", "2024-01-24 07:00:00", "2024-02-05 07:00:00", "2024-02-07 07:00:00"}},
		{"every 90 minutes from 08:00 to 17:30",
			"@freq_type = 4, @freq_interval = 1, @freq_subday_type = 4, @freq_subday_interval = 90, @active_start_date = 20240110, @active_start_time = 80000, @active_end_time = 173000",
			"2024-01-10 15:00:00", []string{"2024-01-10 15:30:00", "2024-01-10 17:00:00", "2024-01-11 08:00:00", "2024-01-11 09:30:00"}},
		{"once",
			"@freq_type = 1, @active_start_date = 20271231, @active_start_time = 235900",
			"2024-01-01 00:00:00", []string{"2027-12-31 23:59:00", noMore}},
		{"once, sp_add_jobschedule's @freq_type by default",
			"@active_start_date = 20271231, @active_start_time = 235900",
			"2024-01-01 00:00:00", []string{"2027-12-31 23:59:00", noMore}},
		{"every 4 hours all day, until the end date",
			"@freq_type = 4, @freq_interval = 1, @freq_subday_type = 8, @freq_subday_interval = 4, @active_end_date = 20240102",
			"2024-01-01 17:00:00", []string{"2024-01-01 20:00:00", "2024-01-02 00:00:00", "2024-01-02 04:00:00", "2024-01-02 08:00:00",
				"2024-01-02 12:00:00", "2024-01-02 16:00:00", "2024-01-02 20:00:00", noMore}},
		{"every 30 seconds from 10:00:00 to 10:01:00, end time included",
			"@freq_type = 4, @freq_interval = 1, @freq_subday_type = 2, @freq_subday_interval = 30, @active_start_time = 100000, @active_end_time = 100100",
			"2024-01-01 00:00:00", []string{"2024-01-01 10:00:00", "2024-01-01 10:00:30", "2024-01-01 10:01:00", "2024-01-02 10:00:00"}},
		{"a start date in the future",
			"@freq_type = 4, @freq_interval = 1, @active_start_date = 20300101, @active_start_time = 10000",
			"2024-01-01 00:00:00", []string{"2030-01-01 01:00:00", "2030-01-02 01:00:00"}},
		{"an @active_end_time of 0 is 23:59:59, as sp_verify_schedule reads it",
			"@freq_type = 4, @freq_interval = 1, @freq_subday_type = 8, @freq_subday_interval = 6, @active_start_time = 60000, @active_end_time = 0",
			"2024-01-01 00:00:00", []string{"2024-01-01 06:00:00", "2024-01-01 12:00:00", "2024-01-01 18:00:00", "2024-01-02 06:00:00"}},
		{"an @active_end_date of 0 is 9999-12-31, as sp_verify_schedule reads it",
			"@freq_type = 4, @freq_interval = 1, @active_start_date = 20240101, @active_start_time = 10000, @active_end_date = 0",
			"2023-12-31 00:00:00", []string{"2024-01-01 01:00:00", "2024-01-02 01:00:00"}},
		{"every 3 hours from 22:00 through midnight to 05:00",
			"@freq_type = 4, @freq_interval = 1, @freq_subday_type = 8, @freq_subday_interval = 3, @active_start_time = 220000, @active_end_time = 50000",
			"2024-01-01 12:00:00", []string{"2024-01-01 22:00:00", "2024-01-02 01:00:00", "2024-01-02 04:00:00", "2024-01-02 22:00:00",
				"2024-01-03 01:00:00"}},
		{"Saturday and Sunday nights, every 45 minutes from 23:00 to 01:30",
			"@freq_type = 8, @freq_interval = 65, @freq_recurrence_factor = 1, @freq_subday_type = 4, @freq_subday_interval = 45, @active_start_time = 230000, @active_end_time = 13000",
			"2024-01-05 12:00:00", []string{"2024-01-06 23:00:00", "2024-01-06 23:45:00", "2024-01-07 00:30:00", "2024-01-07 01:15:00",
				"2024-01-07 23:00:00", "2024-01-07 23:45:00", "2024-01-08 00:30:00", "2024-01-08 01:15:00", "2024-01-13 23:00:00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := fmt.Sprintf(`EXEC sp_add_job @job_name = N'j'
EXEC sp_add_jobstep @job_name = N'j', @step_name = N's', @command = N'SELECT 1'
EXEC sp_add_jobschedule @job_name = N'j', @name = N'x', %s`, tc.params)
			res, err := sqlagent.Import([]sqlagent.Script{{Name: "s.sql", Text: []byte(script)}}, sqlagent.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Jobs) != 1 || len(res.Jobs[0].Schedules) == 0 {
				t.Fatalf("imported %d jobs; findings %v", len(res.Jobs), res.Findings)
			}
			var plans []*schedule.Plan
			for _, s := range res.Jobs[0].Schedules {
				p, err := schedule.Compile(s, time.UTC)
				if err != nil {
					t.Fatalf("schedule %+v: %v", s, err)
				}
				plans = append(plans, p)
			}
			from, err := time.Parse(time.DateTime, tc.from)
			if err != nil {
				t.Fatal(err)
			}
			if got := nextFires(plans, from, len(tc.want)); !slices.Equal(got, tc.want) {
				t.Errorf("fires after %s:\n got %v\nwant %v", tc.from, got, tc.want)
			}
		})
	}
}

// noMore ends a list of fires after which a schedule fires no more.
const noMore = "no more"

// nextFires lists the next n fires of the plans together after from, ending
// with noMore if they stop firing first.
func nextFires(plans []*schedule.Plan, from time.Time, n int) []string {
	var out []string
	for len(out) < n {
		var first time.Time
		for _, p := range plans {
			if t, ok := p.Next(from); ok && (first.IsZero() || t.Before(first)) {
				first = t
			}
		}
		if first.IsZero() {
			return append(out, noMore)
		}
		out = append(out, first.Format(time.DateTime))
		from = first
	}
	return out
}
