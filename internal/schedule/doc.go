// Package schedule decides when jobs fire. It compiles a muster.Schedule into
// a Plan and answers one question, Plan.Next: when is the first fire after a
// given instant? It does no I/O, starts no goroutines and never reads the
// clock; the target's scheduler passes the time in.
//
// A schedule is a cron expression, a once date-time, one of SQL Server
// Agent's frequency kinds (daily, weekly, monthly, monthly_relative) fired at
// a time of day or repeatedly within the day, or at_start. All local times
// are in the plan's zone: the job's, else the target's, unless a cron
// expression names its own with "CRON_TZ=Zone ".
//
// # Cron
//
// Five fields (minute hour day-of-month month day-of-week) or six (seconds
// first). Each field takes "*", numbers, ranges "a-b", steps "*/n", "a-b/n"
// and "a/n", and lists "a,b,c"; months and weekdays also take names (jan,
// sun; any case), and day-of-week 7 is Sunday. The day fields follow Vixie
// cron: when both are restricted (neither starts with "*") a day matches if
// either does; otherwise only the restricted one counts. The descriptors
// @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly are
// accepted; @every is not, since repeat does that job.
//
// # Anchors
//
// "Every N days, weeks or months" counts from start_date when the schedule
// has one and from a fixed epoch otherwise (2000-01-01 for days and months,
// Monday 2000-01-03 for weeks), never from when the schedule was compiled, so
// every target computes the same days. See frequency.go.
//
// # Daylight saving
//
// Fixed local times (cron, once, at, repeat's from and until) follow three
// rules, described in dst.go: a time that occurs once fires then; a time
// skipped by a spring-forward gap fires once, at the end of the gap, however
// many skipped times the schedule names; a time that occurs twice fires at
// its first occurrence only. Repeat counts elapsed time from the day's from
// instant, so a fall-back day has an hour more of fires and a spring-forward
// day loses none of the elapsed intervals.
//
// # Range
//
// Dates run from 0001-01-01 to 9999-12-31; Next reports false past the end.
package schedule
