package muster

// Schedule says when a job fires on each of its targets. Exactly one kind is
// set: Cron, Once, Daily, Weekly, Monthly, MonthlyRelative or AtStart. The
// daily, weekly and monthly kinds fire once a day at At, or repeatedly between
// Repeat.From and Repeat.Until, as SQL Server Agent's frequency model does.
//
// Times of day and dates are local to the job's time zone, which defaults to
// the target's own. A "CRON_TZ=Zone " prefix in Cron wins over both.
type Schedule struct {
	// Name identifies the schedule within its job; it is part of every
	// scheduled run's identity. Defaults to "schedule-N" (N from 1).
	Name string `json:"name,omitempty" yaml:"name,omitempty"`

	// Cron is a cron expression of 5 fields (minute hour day-of-month month
	// day-of-week) or 6 (seconds first), optionally prefixed "CRON_TZ=Zone ".
	Cron string `json:"cron,omitempty" yaml:"cron,omitempty"`
	// Once fires a single time at a local date-time, "2006-01-02T15:04:05".
	Once string `json:"once,omitempty" yaml:"once,omitempty"`
	// Daily fires every N days.
	Daily *DailyFrequency `json:"daily,omitempty" yaml:"daily,omitempty"`
	// Weekly fires every N weeks on the given days.
	Weekly *WeeklyFrequency `json:"weekly,omitempty" yaml:"weekly,omitempty"`
	// Monthly fires every N months on a day of the month.
	Monthly *MonthlyFrequency `json:"monthly,omitempty" yaml:"monthly,omitempty"`
	// MonthlyRelative fires every N months on, e.g., the last Friday.
	MonthlyRelative *MonthlyRelativeFrequency `json:"monthly_relative,omitempty" yaml:"monthly_relative,omitempty"`
	// AtStart fires once each time the target daemon starts.
	AtStart bool `json:"at_start,omitempty" yaml:"at_start,omitempty"`

	// At is the time of day ("15:04" or "15:04:05") at which a daily, weekly
	// or monthly schedule fires once; "00:00:00" when neither At nor Repeat
	// is given.
	At string `json:"at,omitempty" yaml:"at,omitempty"`
	// Repeat fires a daily, weekly or monthly schedule repeatedly within a day.
	Repeat *Repeat `json:"repeat,omitempty" yaml:"repeat,omitempty"`

	// StartDate and EndDate ("2006-01-02", inclusive) bound when the schedule
	// is active.
	StartDate string `json:"start_date,omitempty" yaml:"start_date,omitempty"`
	EndDate   string `json:"end_date,omitempty" yaml:"end_date,omitempty"`

	// Jitter delays each fire by a fixed amount in [0, Jitter) derived from
	// the target's name, so a fleet's fires spread out deterministically.
	Jitter Duration `json:"jitter,omitempty" yaml:"jitter,omitempty"`
}

// DailyFrequency fires every Every days (SQL Server's freq_type 4).
type DailyFrequency struct {
	Every int `json:"every,omitempty" yaml:"every,omitempty"` // default 1
}

// WeeklyFrequency fires every Every weeks on Days (freq_type 8).
type WeeklyFrequency struct {
	Every int      `json:"every,omitempty" yaml:"every,omitempty"` // default 1
	Days  []string `json:"days" yaml:"days"`                       // "mon".."sun" or full names
}

// MonthlyFrequency fires every Every months on day Day (freq_type 16).
type MonthlyFrequency struct {
	Every int `json:"every,omitempty" yaml:"every,omitempty"` // default 1
	Day   int `json:"day" yaml:"day"`                         // 1..31; a month without that day is skipped
}

// MonthlyRelativeFrequency fires every Every months on the Week-th Day
// (freq_type 32), e.g. the last weekday, or the second Tuesday.
type MonthlyRelativeFrequency struct {
	Every int    `json:"every,omitempty" yaml:"every,omitempty"` // default 1
	Week  string `json:"week" yaml:"week"`                       // first, second, third, fourth, last
	Day   string `json:"day" yaml:"day"`                         // a weekday name, "day", "weekday" or "weekend_day"
}

// Repeat fires every Every between From and Until each active day (SQL
// Server's freq_subday_type seconds, minutes or hours).
type Repeat struct {
	Every Duration `json:"every" yaml:"every"`
	From  string   `json:"from,omitempty" yaml:"from,omitempty"`   // default "00:00:00"
	Until string   `json:"until,omitempty" yaml:"until,omitempty"` // default "23:59:59"
}

// Kind names which kind of schedule s is, or "" if none is set.
func (s Schedule) Kind() string {
	switch {
	case s.Cron != "":
		return "cron"
	case s.Once != "":
		return "once"
	case s.Daily != nil:
		return "daily"
	case s.Weekly != nil:
		return "weekly"
	case s.Monthly != nil:
		return "monthly"
	case s.MonthlyRelative != nil:
		return "monthly_relative"
	case s.AtStart:
		return "at_start"
	}
	return ""
}
