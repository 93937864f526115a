package agentproto

import "github.com/musterhq/muster"

// Job is a job as a target receives it in an INSERT: what it runs, and
// nothing of where (targets, groups) or of what only the master uses.
type Job struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Enabled     bool              `json:"enabled"`
	Steps       []Step            `json:"steps"`
	Schedules   []Schedule        `json:"schedules,omitempty"`
	TimeZone    string            `json:"time_zone,omitempty"`
	Timeout     muster.Duration   `json:"timeout,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	Misfire     string            `json:"misfire,omitempty"`
	Version     int64             `json:"version,omitempty"`
}

// Step is one step of a Job.
type Step struct {
	Name       string            `json:"name"`
	Shell      string            `json:"shell,omitempty"`
	Command    []string          `json:"command,omitempty"`
	SQL        string            `json:"sql,omitempty"`
	Connection string            `json:"connection,omitempty"`
	Params     []string          `json:"params,omitempty"`
	Workdir    string            `json:"workdir,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Timeout    muster.Duration   `json:"timeout,omitempty"`
	Retry      *Retry            `json:"retry,omitempty"`
	OnSuccess  string            `json:"on_success,omitempty"`
	OnFailure  string            `json:"on_failure,omitempty"`
	RunAs      string            `json:"run_as,omitempty"`
}

// Retry is how often a failed step is tried again.
type Retry struct {
	Attempts int             `json:"attempts"`
	Interval muster.Duration `json:"interval,omitempty"`
}

// Schedule is one schedule of a Job (see muster.Schedule for each field).
type Schedule struct {
	Name            string                    `json:"name,omitempty"`
	Cron            string                    `json:"cron,omitempty"`
	Once            string                    `json:"once,omitempty"`
	Daily           *DailyFrequency           `json:"daily,omitempty"`
	Weekly          *WeeklyFrequency          `json:"weekly,omitempty"`
	Monthly         *MonthlyFrequency         `json:"monthly,omitempty"`
	MonthlyRelative *MonthlyRelativeFrequency `json:"monthly_relative,omitempty"`
	AtStart         bool                      `json:"at_start,omitempty"`
	At              string                    `json:"at,omitempty"`
	Repeat          *Repeat                   `json:"repeat,omitempty"`
	StartDate       string                    `json:"start_date,omitempty"`
	EndDate         string                    `json:"end_date,omitempty"`
	Jitter          muster.Duration           `json:"jitter,omitempty"`
}

// DailyFrequency fires every Every days.
type DailyFrequency struct {
	Every int `json:"every,omitempty"`
}

// WeeklyFrequency fires every Every weeks on Days.
type WeeklyFrequency struct {
	Every int      `json:"every,omitempty"`
	Days  []string `json:"days"`
}

// MonthlyFrequency fires every Every months on day Day.
type MonthlyFrequency struct {
	Every int `json:"every,omitempty"`
	Day   int `json:"day"`
}

// MonthlyRelativeFrequency fires every Every months on the Week-th Day.
type MonthlyRelativeFrequency struct {
	Every int    `json:"every,omitempty"`
	Week  string `json:"week"`
	Day   string `json:"day"`
}

// Repeat fires every Every between From and Until each active day.
type Repeat struct {
	Every muster.Duration `json:"every"`
	From  string          `json:"from,omitempty"`
	Until string          `json:"until,omitempty"`
}

// JobFromDomain returns the job a target receives for the definition d
// (muster.Job.DefinitionFor): where it runs, and what only the master
// uses, are not sent.
func JobFromDomain(d muster.Job) Job {
	j := Job{Name: d.Name, Description: d.Description, Enabled: d.Enabled, TimeZone: d.TimeZone, Timeout: d.Timeout,
		Env: d.Env, Misfire: d.Misfire, Version: d.Version, Steps: make([]Step, len(d.Steps))}
	for i, s := range d.Steps {
		j.Steps[i] = Step{Name: s.Name, Shell: s.Shell, Command: s.Command, SQL: s.SQL, Connection: s.Connection,
			Params: s.Params, Workdir: s.Workdir, Env: s.Env, Timeout: s.Timeout, OnSuccess: s.OnSuccess,
			OnFailure: s.OnFailure, RunAs: s.RunAs}
		if s.Retry != nil {
			j.Steps[i].Retry = &Retry{Attempts: s.Retry.Attempts, Interval: s.Retry.Interval}
		}
	}
	for _, s := range d.Schedules {
		w := Schedule{Name: s.Name, Cron: s.Cron, Once: s.Once, AtStart: s.AtStart, At: s.At,
			StartDate: s.StartDate, EndDate: s.EndDate, Jitter: s.Jitter}
		if s.Daily != nil {
			w.Daily = &DailyFrequency{Every: s.Daily.Every}
		}
		if s.Weekly != nil {
			w.Weekly = &WeeklyFrequency{Every: s.Weekly.Every, Days: s.Weekly.Days}
		}
		if s.Monthly != nil {
			w.Monthly = &MonthlyFrequency{Every: s.Monthly.Every, Day: s.Monthly.Day}
		}
		if s.MonthlyRelative != nil {
			w.MonthlyRelative = &MonthlyRelativeFrequency{Every: s.MonthlyRelative.Every, Week: s.MonthlyRelative.Week, Day: s.MonthlyRelative.Day}
		}
		if s.Repeat != nil {
			w.Repeat = &Repeat{Every: s.Repeat.Every, From: s.Repeat.From, Until: s.Repeat.Until}
		}
		j.Schedules = append(j.Schedules, w)
	}
	return j
}

// Domain returns the job as the domain knows it.
func (j Job) Domain() muster.Job {
	d := muster.Job{Name: j.Name, Description: j.Description, Enabled: j.Enabled, TimeZone: j.TimeZone, Timeout: j.Timeout,
		Env: j.Env, Misfire: j.Misfire, Version: j.Version, Steps: make([]muster.Step, len(j.Steps))}
	for i, s := range j.Steps {
		d.Steps[i] = muster.Step{Name: s.Name, Shell: s.Shell, Command: s.Command, SQL: s.SQL, Connection: s.Connection,
			Params: s.Params, Workdir: s.Workdir, Env: s.Env, Timeout: s.Timeout, OnSuccess: s.OnSuccess,
			OnFailure: s.OnFailure, RunAs: s.RunAs}
		if s.Retry != nil {
			d.Steps[i].Retry = &muster.Retry{Attempts: s.Retry.Attempts, Interval: s.Retry.Interval}
		}
	}
	for _, s := range j.Schedules {
		m := muster.Schedule{Name: s.Name, Cron: s.Cron, Once: s.Once, AtStart: s.AtStart, At: s.At,
			StartDate: s.StartDate, EndDate: s.EndDate, Jitter: s.Jitter}
		if s.Daily != nil {
			m.Daily = &muster.DailyFrequency{Every: s.Daily.Every}
		}
		if s.Weekly != nil {
			m.Weekly = &muster.WeeklyFrequency{Every: s.Weekly.Every, Days: s.Weekly.Days}
		}
		if s.Monthly != nil {
			m.Monthly = &muster.MonthlyFrequency{Every: s.Monthly.Every, Day: s.Monthly.Day}
		}
		if s.MonthlyRelative != nil {
			m.MonthlyRelative = &muster.MonthlyRelativeFrequency{Every: s.MonthlyRelative.Every, Week: s.MonthlyRelative.Week, Day: s.MonthlyRelative.Day}
		}
		if s.Repeat != nil {
			m.Repeat = &muster.Repeat{Every: s.Repeat.Every, From: s.Repeat.From, Until: s.Repeat.Until}
		}
		d.Schedules = append(d.Schedules, m)
	}
	return d
}
