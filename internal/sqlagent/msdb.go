package sqlagent

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/musterhq/muster"
)

// msdb is what the scripts' procedure calls build, as SQL Server Agent
// would hold it in msdb: jobs with their steps, schedules and servers;
// shared schedules; operators; categories; target server groups. The
// calls are run in order, file after file, as if the scripts ran one after
// another on the same server.
type msdb struct {
	jobs     []*agentJob          // in the order they were made; deleted ones too
	jobIndex map[string]*agentJob // by lower-cased name
	// schedules are those sysschedules holds (made by sp_add_schedule, or
	// by sp_add_jobschedule for its job), by lower-cased name.
	schedules map[string]map[*agentSchedule]bool
	// scheduleUIDs are the schedules made with a @schedule_uid, by it.
	scheduleUIDs    map[string]*agentSchedule
	sharedSchedules int
	operators       []*agentOperator
	// categories the scripts declare with sp_add_category, as written.
	categories []string
	groups     []*agentGroup
	// Indexes by lower-cased name.
	operatorIndex map[string]*agentOperator
	categorySet   map[string]bool
	groupIndex    map[string]*agentGroup

	// The file being read, and its batch's variables.
	file string
	vars map[string]binding
	// variables are the sqlcmd variables the scripts are given, by
	// lower-cased name.
	variables map[string]string

	findings []Finding
	ignored  map[string]bool // procedures reported as not read, per file
}

// binding is a variable's value: a constant, or the job or schedule an
// OUTPUT parameter or a lookup bound it to.
type binding struct {
	v     value
	job   *agentJob
	sched *agentSchedule
}

// agentJob is a job as sysjobs and its child tables hold it.
type agentJob struct {
	name    string
	file    string
	line    int
	deleted bool

	enabled     bool
	description string
	category    string
	owner       string
	startStep   int
	// Notification levels (0 never, 1 on success, 2 on failure, 3 on
	// completion) and the operators they notify.
	notifyEventlog, notifyEmail, notifyNetsend, notifyPage int
	emailOperator, netsendOperator, pageOperator           string
	deleteLevel                                            int

	steps     []*agentStep
	schedules []*agentSchedule
	// servers and groups are those sp_add_jobserver and
	// sp_apply_job_to_targets named, as written, in order; the sets hold
	// those still there (lower-cased).
	servers   []string
	serverSet map[string]bool
	groups    []string
	groupSet  map[string]bool

	findings []Finding
}

// agentStep is a row of sysjobsteps. Its step id is its place in the job.
type agentStep struct {
	line         int
	name         string
	subsystem    string
	command      string
	database     string
	databaseUser string
	proxyName    string
	proxyID      int
	outputFile   string
	successCode  int
	// Actions: 1 quit with success, 2 quit with failure, 3 next step, 4
	// the step of the *Step field.
	onSuccess, onSuccessStep int
	onFail, onFailStep       int
	retryAttempts            int
	retryInterval            int // minutes
}

// agentSchedule is a row of sysschedules.
type agentSchedule struct {
	name    string
	file    string
	line    int
	enabled bool
	// jobs are those the schedule is attached to (sysjobschedules);
	// deleted is set once sysschedules no longer holds it.
	jobs    map[*agentJob]bool
	deleted bool
	uid     string // the @schedule_uid it was made with, lower-cased

	freqType, freqInterval       int
	subdayType, subdayInterval   int
	relativeInterval, recurrence int
	// Dates are YYYYMMDD and times HHMMSS, as integers; startDate 0
	// means none was given (SQL Server takes the day it was created).
	startDate, endDate int
	startTime, endTime int
}

// agentOperator is a row of sysoperators.
type agentOperator struct {
	name     string
	file     string
	line     int
	email    string
	pager    string
	netsend  string
	disabled bool
}

// agentGroup is a target server group a script defines.
type agentGroup struct {
	name    string
	file    string
	line    int
	members []string
}

// Bounds on what one import holds, so that any input is read in bounded
// time and memory: beyond them, calls are reported and ignored.
const (
	maxJobs            = 10000
	maxSharedSchedules = 10000
	maxServers         = 10000 // per job
)

func newMSDB() *msdb {
	return &msdb{jobIndex: map[string]*agentJob{}, schedules: map[string]map[*agentSchedule]bool{},
		scheduleUIDs:  map[string]*agentSchedule{},
		operatorIndex: map[string]*agentOperator{}, categorySet: map[string]bool{}, groupIndex: map[string]*agentGroup{}}
}

// run reads one script and runs its calls.
func (m *msdb) run(s Script) {
	m.file = s.Name
	m.vars = map[string]binding{}
	m.ignored = map[string]bool{}
	text, enc, err := decodeText(s.Text)
	if err != nil {
		m.findings = append(m.findings, Finding{File: s.Name, Line: 1, Level: LeftOut, Message: "the file is not read: " + err.Error()})
		return
	}
	if enc != encodingUTF8 {
		m.findings = append(m.findings, Finding{File: s.Name, Line: 1, Level: Note, Message: "read as " + enc + " text"})
	}
	text, notes := expandSQLCmd(text, m.variables)
	for _, n := range notes {
		m.findings = append(m.findings, Finding{File: s.Name, Line: n.line, Level: n.level, Message: n.about})
	}
	err = read(text, func(st stmt) {
		switch st.kind {
		case stmtBatchEnd:
			m.vars = map[string]binding{}
		case stmtProblem:
			m.finding(st.line, LeftOut, "%s", st.problem)
		case stmtAssign:
			m.assign(st)
		case stmtCall:
			m.call(st)
		}
	})
	var syntax *syntaxError
	if errors.As(err, &syntax) {
		m.findings = append(m.findings, Finding{File: s.Name, Line: syntax.line, Level: LeftOut,
			Message: syntax.msg + ", so the file is not read: nothing in it is imported"})
	}
}

// finding records a finding about the script at line.
func (m *msdb) finding(line int, level, format string, args ...any) {
	m.findings = append(m.findings, Finding{File: m.file, Line: line, Level: level, Message: fmt.Sprintf(format, args...)})
}

// assign sets a variable of the current batch.
func (m *msdb) assign(st stmt) {
	if st.value.kind == valVar {
		m.vars[st.variable] = m.vars[st.value.text]
		return
	}
	m.vars[st.variable] = binding{v: st.value}
}

// call runs one procedure call.
func (m *msdb) call(st stmt) {
	order, known := procParams(st.proc)
	if !known {
		if reason, ok := notCarriedReason(st.proc); ok {
			m.finding(st.line, LeftOut, "%s is not read: %s", st.proc, reason)
		} else if strings.HasPrefix(st.proc, "sp_") && !strings.HasPrefix(st.proc, "sp_help") && !m.ignored[st.proc] {
			m.ignored[st.proc] = true
			m.finding(st.line, Note, "%s is not a SQL Server Agent procedure this import reads; its calls are ignored", st.proc)
		}
		return
	}
	if st.problem != "" {
		m.finding(st.line, LeftOut, "%s is not read: %s", st.proc, st.problem)
		return
	}
	args, problems := bind(st, order)
	for _, p := range problems {
		m.finding(st.line, Note, "%s", p)
	}
	c := &call{m: m, stmt: st, args: args}
	switch st.proc {
	case "sp_add_job":
		m.addJob(c)
	case "sp_update_job":
		m.updateJob(c)
	case "sp_delete_job":
		m.deleteJob(c)
	case "sp_add_jobstep":
		m.addStep(c)
	case "sp_update_jobstep":
		m.updateStep(c)
	case "sp_delete_jobstep":
		m.deleteStep(c)
	case "sp_add_jobschedule":
		m.addJobSchedule(c)
	case "sp_add_schedule":
		m.addSchedule(c)
	case "sp_attach_schedule":
		m.attachSchedule(c)
	case "sp_update_schedule":
		m.updateSchedule(c)
	case "sp_update_jobschedule":
		m.updateJobSchedule(c)
	case "sp_detach_schedule":
		m.detachSchedule(c)
	case "sp_delete_jobschedule":
		m.deleteJobSchedule(c)
	case "sp_delete_schedule":
		m.deleteSchedule(c)
	case "sp_add_jobserver":
		m.addJobServer(c)
	case "sp_delete_jobserver":
		m.deleteJobServer(c)
	case "sp_apply_job_to_targets":
		m.applyToTargets(c, !strings.EqualFold(c.str("operation", "APPLY"), "REMOVE"))
	case "sp_remove_job_from_targets":
		m.applyToTargets(c, false)
	case "sp_add_category":
		m.addCategory(c)
	case "sp_add_operator":
		m.addOperator(c)
	case "sp_add_targetservergroup":
		m.addGroup(c)
	case "sp_add_targetsvrgrp_member":
		m.addGroupMember(c)
	}
}

// nameKey is how msdb compares the names of jobs, schedules, operators
// and groups: in any case, and without the spaces around them (SQL Server
// ignores trailing spaces, and the import trims the names it keeps).
func nameKey(name string) string { return strings.ToLower(strings.TrimSpace(name)) }

// findJob returns the live job of that name (any case), or nil.
func (m *msdb) findJob(name string) *agentJob { return m.jobIndex[nameKey(name)] }

// note records a finding about a job.
func (j *agentJob) note(file string, line int, level, step, schedule, format string, args ...any) {
	j.findings = append(j.findings, Finding{File: file, Line: line, Level: level, Step: step, Schedule: schedule,
		Message: fmt.Sprintf(format, args...)})
}

func (m *msdb) addJob(c *call) {
	name := strings.TrimSpace(c.str("job_name", ""))
	if name == "" {
		m.finding(c.stmt.line, LeftOut, "sp_add_job: @job_name is required; the call is ignored")
		return
	}
	if m.findJob(name) != nil {
		m.finding(c.stmt.line, LeftOut, "sp_add_job: job %q already exists (SQL Server refuses a second one); the call is ignored", name)
		return
	}
	if len(m.jobIndex) >= maxJobs {
		m.finding(c.stmt.line, LeftOut, "sp_add_job: job %q is one more than the %d jobs one import takes; the call is ignored", name, maxJobs)
		return
	}
	j := &agentJob{name: name, file: m.file, line: c.stmt.line, enabled: true, startStep: 1, notifyEventlog: 2,
		serverSet: map[string]bool{}, groupSet: map[string]bool{}}
	m.setJob(c, j)
	if c.has("category_id") && !c.has("category_name") {
		j.note(m.file, c.stmt.line, Note, "", "", "@category_id %d names a category by number, which a script cannot resolve; the job has no category", c.int("category_id", 0))
	}
	m.jobs = append(m.jobs, j)
	m.jobIndex[nameKey(name)] = j
	c.output("job_id", binding{job: j})
}

// setJob sets the job attributes sp_add_job and sp_update_job share, those
// the call gives.
func (m *msdb) setJob(c *call, j *agentJob) {
	if c.has("enabled") {
		j.enabled = c.int("enabled", 1) != 0
	}
	if c.has("description") {
		j.description = c.str("description", "")
	}
	if c.has("start_step_id") {
		j.startStep = c.int("start_step_id", 1)
	}
	if c.has("category_name") {
		j.category = c.str("category_name", "")
	}
	if c.has("owner_login_name") {
		j.owner = c.str("owner_login_name", "")
	}
	for _, n := range []struct {
		param string
		level *int
	}{
		{"notify_level_eventlog", &j.notifyEventlog}, {"notify_level_email", &j.notifyEmail},
		{"notify_level_netsend", &j.notifyNetsend}, {"notify_level_page", &j.notifyPage},
		{"delete_level", &j.deleteLevel},
	} {
		if c.has(n.param) {
			*n.level = c.int(n.param, 0)
		}
	}
	for _, n := range []struct {
		param string
		name  *string
	}{
		{"notify_email_operator_name", &j.emailOperator}, {"notify_netsend_operator_name", &j.netsendOperator},
		{"notify_page_operator_name", &j.pageOperator},
	} {
		if c.has(n.param) {
			*n.name = c.str(n.param, "")
		}
	}
}

func (m *msdb) updateJob(c *call) {
	j := c.job()
	if j == nil {
		return
	}
	if c.has("new_name") {
		name := strings.TrimSpace(c.str("new_name", ""))
		switch other := m.findJob(name); {
		case name == "":
		case other != nil && other != j:
			m.finding(c.stmt.line, LeftOut, "sp_update_job: job %q already exists; %q keeps its name", name, j.name)
		default:
			delete(m.jobIndex, nameKey(j.name))
			j.name = name
			m.jobIndex[nameKey(name)] = j
		}
	}
	m.setJob(c, j)
}

func (m *msdb) deleteJob(c *call) {
	// A script that deletes a job before creating it again (IF EXISTS …
	// sp_delete_job) replaces it. Deleting one it never created needs no
	// doing: the import applies jobs by name.
	var j *agentJob
	if c.has("job_name") {
		j = m.findJob(c.str("job_name", ""))
	} else if b, ok := c.resolve("job_id"); ok {
		switch {
		case b.job != nil && !b.job.deleted:
			j = b.job
		case b.v.kind == valJobLookup:
			j = m.findJob(b.v.text)
		}
	}
	if j == nil {
		return
	}
	j.deleted = true
	delete(m.jobIndex, nameKey(j.name))
	// As msdb does, the job's schedules that no other job uses go with it,
	// unless @delete_unused_schedule = 0.
	dropUnused := c.int("delete_unused_schedule", 1) != 0
	for _, s := range j.schedules {
		delete(s.jobs, j)
		if dropUnused && len(s.jobs) == 0 {
			m.dropSchedule(s)
		}
	}
	j.schedules = nil
}

func (m *msdb) addStep(c *call) {
	j := c.job()
	if j == nil {
		return
	}
	name := c.str("step_name", "")
	if name == "" {
		m.finding(c.stmt.line, LeftOut, "sp_add_jobstep: job %q: @step_name is required; the step is ignored", j.name)
		return
	}
	for _, s := range j.steps {
		if strings.EqualFold(s.name, name) {
			j.note(m.file, c.stmt.line, LeftOut, name, "", "the job already has a step of this name (SQL Server refuses a second one); this one is ignored")
			return
		}
	}
	if len(j.steps) > muster.MaxSteps {
		j.note(m.file, c.stmt.line, LeftOut, name, "", "the job already has more steps than the %d a muster job may have; this one is ignored", muster.MaxSteps)
		return
	}
	s := &agentStep{line: c.stmt.line, name: name, subsystem: "TSQL", onSuccess: 1, onFail: 2}
	m.setStep(c, j, s)
	id := c.int("step_id", len(j.steps)+1)
	if id == 0 {
		id = len(j.steps) + 1
	}
	if id < 1 || id > len(j.steps)+1 {
		j.note(m.file, c.stmt.line, LeftOut, name, "", "@step_id %d is not 1 to %d (the job's steps so far, plus one); the step is ignored", id, len(j.steps)+1)
		return
	}
	// Inserting before existing steps moves them down, and every reference
	// to them with them, as sp_add_jobstep does. (Adding at the end moves
	// nothing: SSMS's scripts refer to steps they add later.)
	if id <= len(j.steps) {
		for _, o := range j.steps {
			if o.onSuccessStep >= id {
				o.onSuccessStep++
			}
			if o.onFailStep >= id {
				o.onFailStep++
			}
		}
	}
	j.steps = slices.Insert(j.steps, id-1, s)
}

// setStep sets the step attributes sp_add_jobstep and sp_update_jobstep
// share, those the call gives.
func (m *msdb) setStep(c *call, j *agentJob, s *agentStep) {
	for _, f := range []struct {
		param string
		v     *string
	}{
		{"subsystem", &s.subsystem}, {"command", &s.command}, {"database_name", &s.database},
		{"database_user_name", &s.databaseUser}, {"proxy_name", &s.proxyName}, {"output_file_name", &s.outputFile},
	} {
		if c.has(f.param) {
			*f.v = c.str(f.param, "")
		}
	}
	for _, f := range []struct {
		param string
		v     *int
	}{
		{"cmdexec_success_code", &s.successCode}, {"on_success_action", &s.onSuccess},
		{"on_success_step_id", &s.onSuccessStep}, {"on_fail_action", &s.onFail}, {"on_fail_step_id", &s.onFailStep},
		{"retry_attempts", &s.retryAttempts}, {"retry_interval", &s.retryInterval}, {"proxy_id", &s.proxyID},
	} {
		if c.has(f.param) {
			*f.v = c.int(f.param, *f.v)
		}
	}
}

func (m *msdb) updateStep(c *call) {
	j := c.job()
	if j == nil {
		return
	}
	if s := c.step(j); s != nil {
		if c.has("step_name") {
			s.name = c.str("step_name", s.name)
		}
		m.setStep(c, j, s)
	}
}

func (m *msdb) deleteStep(c *call) {
	j := c.job()
	if j == nil {
		return
	}
	if c.int("step_id", -1) == 0 {
		j.steps = nil // step_id 0 deletes them all
		return
	}
	s := c.step(j)
	if s == nil {
		return
	}
	id := slices.Index(j.steps, s) + 1
	j.steps = slices.Delete(j.steps, id-1, id)
	// As msdb's sp_delete_jobstep: references past the deleted step move
	// down one; then every reference to the deleted step's number quits,
	// with success on success and failure on failure. After the renumbering
	// that number also names the step that followed the deleted one, so
	// references to it quit too.
	for _, o := range j.steps {
		for _, r := range []struct {
			field      string
			step, act  *int
			quit       int
			quitReason string
		}{
			{"@on_success_action", &o.onSuccessStep, &o.onSuccess, actionQuitSuccess, "success"},
			{"@on_fail_action", &o.onFailStep, &o.onFail, actionQuitFailure, "failure"},
		} {
			was := *r.step
			if *r.step > id {
				*r.step--
			}
			if *r.step != id {
				continue
			}
			if *r.act != r.quit {
				if was == id {
					j.note(m.file, c.stmt.line, Note, o.name, "", "%s went to step %d, %s, which sp_delete_jobstep deletes here; as in SQL Server, it quits with %s instead",
						r.field, was, quote(s.name), r.quitReason)
				} else {
					j.note(m.file, c.stmt.line, Note, o.name, "", "%s went to step %d, %s, which sp_delete_jobstep renumbers %d here and then, as for the deleted step %d, sets every reference to it to quit; as in SQL Server, it quits with %s instead",
						r.field, was, quote(j.steps[id-1].name), id, id, r.quitReason)
				}
			}
			*r.step, *r.act = 0, r.quit
		}
	}
}

// newSchedule reads the frequency parameters sp_add_jobschedule and
// sp_add_schedule share, with msdb's defaults: @freq_interval is 0 for
// both, @freq_type 0 (none) for sp_add_schedule and 1 (once) for
// sp_add_jobschedule. An end date or time of 0 is read as
// sp_verify_schedule reads it: no end date (99991231), and 23:59:59.
func (m *msdb) newSchedule(c *call, name string, typeDefault int) *agentSchedule {
	s := &agentSchedule{
		name: name, file: m.file, line: c.stmt.line,
		enabled:          c.int("enabled", 1) != 0,
		freqType:         c.int("freq_type", typeDefault),
		freqInterval:     c.int("freq_interval", 0),
		subdayType:       c.int("freq_subday_type", 0),
		subdayInterval:   c.int("freq_subday_interval", 0),
		relativeInterval: c.int("freq_relative_interval", 0),
		recurrence:       c.int("freq_recurrence_factor", 0),
		startDate:        c.int("active_start_date", 0),
		endDate:          c.int("active_end_date", 99991231),
		startTime:        c.int("active_start_time", 0),
		endTime:          c.int("active_end_time", 235959),
	}
	s.normalize()
	return s
}

// normalize reads an end date or time of 0 as sp_verify_schedule does.
func (s *agentSchedule) normalize() {
	if s.endDate == 0 {
		s.endDate = 99991231
	}
	if s.endTime == 0 {
		s.endTime = 235959
	}
}

// update sets the frequency parameters sp_update_schedule and
// sp_update_jobschedule give, keeping the others, and renames the schedule
// to @new_name.
func (m *msdb) update(c *call, s *agentSchedule) {
	if c.has("enabled") {
		s.enabled = c.int("enabled", 1) != 0
	}
	for _, f := range []struct {
		param string
		v     *int
	}{
		{"freq_type", &s.freqType}, {"freq_interval", &s.freqInterval}, {"freq_subday_type", &s.subdayType},
		{"freq_subday_interval", &s.subdayInterval}, {"freq_relative_interval", &s.relativeInterval},
		{"freq_recurrence_factor", &s.recurrence}, {"active_start_date", &s.startDate},
		{"active_end_date", &s.endDate}, {"active_start_time", &s.startTime}, {"active_end_time", &s.endTime},
	} {
		if c.has(f.param) {
			*f.v = c.int(f.param, *f.v)
		}
	}
	s.normalize()
	if name := strings.TrimSpace(c.str("new_name", "")); name != "" {
		m.unindexSchedule(s)
		s.name = name
		m.indexSchedule(s)
	}
}

func (m *msdb) addJobSchedule(c *call) {
	j := c.job()
	if j == nil {
		return
	}
	s := m.newSchedule(c, c.str("name", ""), freqOnce)
	if old := m.sameUID(c, s); old != nil {
		c.output("schedule_id", binding{sched: old})
		c.output("schedule_uid", binding{sched: old})
		if !old.jobs[j] {
			j.attach(m.file, c.stmt.line, old)
		}
		return
	}
	c.output("schedule_id", binding{sched: s})
	c.output("schedule_uid", binding{sched: s})
	if j.attach(m.file, c.stmt.line, s) {
		m.indexSchedule(s)
		m.rememberUID(s)
	}
}

func (m *msdb) addSchedule(c *call) {
	s := m.newSchedule(c, c.str("schedule_name", ""), 0)
	if old := m.sameUID(c, s); old != nil {
		c.output("schedule_id", binding{sched: old})
		c.output("schedule_uid", binding{sched: old})
		return
	}
	c.output("schedule_id", binding{sched: s})
	c.output("schedule_uid", binding{sched: s})
	if m.sharedSchedules >= maxSharedSchedules {
		m.finding(c.stmt.line, LeftOut, "sp_add_schedule: schedule %q is one more than the %d schedules one import takes; the call is ignored", s.name, maxSharedSchedules)
		return
	}
	m.sharedSchedules++
	m.indexSchedule(s)
	m.rememberUID(s)
}

// sameUID sets s.uid to the @schedule_uid a call gives. When a schedule of
// that uid exists, it returns it, changed to what the call says: msdb's
// sp_add_schedule updates the schedule of a known uid rather than adding
// one, which is how SSMS's script of each job that shares a schedule
// shares it again.
func (m *msdb) sameUID(c *call, s *agentSchedule) *agentSchedule {
	var old *agentSchedule
	b, ok := c.resolve("schedule_uid")
	switch {
	case !ok:
		return nil
	case b.sched != nil && !b.sched.deleted:
		// A variable an earlier call's @schedule_uid OUTPUT set: an OUTPUT
		// parameter passes its value in too.
		old = b.sched
	case b.v.kind == valString:
		s.uid = strings.ToLower(strings.Trim(b.v.text, "{} "))
		if strings.Trim(s.uid, "0-") == "" {
			s.uid = "" // the zero uid, which msdb reads as none
		}
		old = m.scheduleUIDs[s.uid]
	}
	if old == nil {
		return nil
	}
	m.unindexSchedule(old)
	old.name, old.enabled = s.name, s.enabled
	old.freqType, old.freqInterval, old.subdayType, old.subdayInterval = s.freqType, s.freqInterval, s.subdayType, s.subdayInterval
	old.relativeInterval, old.recurrence = s.relativeInterval, s.recurrence
	old.startDate, old.endDate, old.startTime, old.endTime = s.startDate, s.endDate, s.startTime, s.endTime
	m.indexSchedule(old)
	return old
}

// rememberUID records the schedule of a uid, if it was made with one.
func (m *msdb) rememberUID(s *agentSchedule) {
	if s.uid != "" {
		m.scheduleUIDs[s.uid] = s
	}
}

// indexSchedule and unindexSchedule keep m.schedules' index by name.
func (m *msdb) indexSchedule(s *agentSchedule) {
	key := nameKey(s.name)
	if m.schedules[key] == nil {
		m.schedules[key] = map[*agentSchedule]bool{}
	}
	m.schedules[key][s] = true
}

func (m *msdb) unindexSchedule(s *agentSchedule) {
	key := nameKey(s.name)
	delete(m.schedules[key], s)
	if len(m.schedules[key]) == 0 {
		delete(m.schedules, key)
	}
}

// dropSchedule deletes a schedule no job uses from sysschedules.
func (m *msdb) dropSchedule(s *agentSchedule) {
	m.unindexSchedule(s)
	if s.uid != "" && m.scheduleUIDs[s.uid] == s {
		delete(m.scheduleUIDs, s.uid)
	}
	s.deleted = true
}

// findSchedule finds the schedule a call names by its name parameter or
// by @schedule_id, or says why it finds none.
func (m *msdb) findSchedule(c *call, nameParam string) (*agentSchedule, string) {
	byName := func(name string) (*agentSchedule, string) {
		found := m.schedules[nameKey(name)]
		if len(found) > 1 {
			return nil, fmt.Sprintf("%d schedules are named %q (SQL Server refuses a name that is not unique): name one by @schedule_id", len(found), name)
		}
		for s := range found {
			return s, ""
		}
		return nil, fmt.Sprintf("no schedule named %q is created before this call", name)
	}
	if c.has(nameParam) {
		return byName(c.str(nameParam, ""))
	}
	b, _ := c.resolve("schedule_id")
	switch {
	case b.sched != nil && b.sched.deleted:
		return nil, fmt.Sprintf("schedule %q was deleted before this call", b.sched.name)
	case b.sched != nil:
		return b.sched, ""
	case b.v.kind == valSchedLookup:
		return byName(b.v.text)
	}
	return nil, "@schedule_id names a schedule this script does not create"
}

func (m *msdb) attachSchedule(c *call) {
	j := c.job()
	if j == nil {
		return
	}
	s, why := m.findSchedule(c, "schedule_name")
	if s == nil {
		m.finding(c.stmt.line, LeftOut, "sp_attach_schedule: %s; job %q does not get it", why, j.name)
		return
	}
	if !s.jobs[j] {
		j.attach(m.file, c.stmt.line, s)
	}
}

func (m *msdb) updateSchedule(c *call) {
	s, why := m.findSchedule(c, "name")
	if s == nil {
		m.finding(c.stmt.line, LeftOut, "sp_update_schedule: %s; the call is ignored", why)
		return
	}
	m.update(c, s)
}

// jobSchedule finds the schedule of a job that a call names by @name.
func (m *msdb) jobSchedule(c *call, j *agentJob) *agentSchedule {
	name := strings.TrimSpace(c.str("name", ""))
	var found []*agentSchedule
	for _, s := range j.schedules {
		if nameKey(s.name) == nameKey(name) {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		m.finding(c.stmt.line, LeftOut, "%s: job %q has no schedule named %q; the call is ignored", c.stmt.proc, j.name, name)
		return nil
	case 1:
		return found[0]
	}
	m.finding(c.stmt.line, LeftOut, "%s: job %q has %d schedules named %q (SQL Server refuses a name that is not unique); the call is ignored", c.stmt.proc, j.name, len(found), name)
	return nil
}

func (m *msdb) updateJobSchedule(c *call) {
	if j := c.job(); j != nil {
		if s := m.jobSchedule(c, j); s != nil {
			m.update(c, s)
		}
	}
}

func (m *msdb) detachSchedule(c *call) {
	j := c.job()
	if j == nil {
		return
	}
	s, why := m.findSchedule(c, "schedule_name")
	switch {
	case s == nil:
		m.finding(c.stmt.line, LeftOut, "sp_detach_schedule: %s; the call is ignored", why)
	case !s.jobs[j]:
		m.finding(c.stmt.line, LeftOut, "sp_detach_schedule: schedule %q is not attached to job %q; the call is ignored", s.name, j.name)
	default:
		j.detach(s)
		if c.int("delete_unused_schedule", 0) != 0 && len(s.jobs) == 0 {
			m.dropSchedule(s)
		}
	}
}

func (m *msdb) deleteJobSchedule(c *call) {
	j := c.job()
	if j == nil {
		return
	}
	keep := c.int("keep_schedule", 0) != 0
	var schedules []*agentSchedule
	if strings.EqualFold(strings.TrimSpace(c.str("name", "")), "ALL") {
		schedules = slices.Clone(j.schedules)
	} else if s := m.jobSchedule(c, j); s != nil {
		schedules = []*agentSchedule{s}
	}
	if !keep {
		for _, s := range schedules {
			if len(s.jobs) > 1 {
				m.finding(c.stmt.line, LeftOut, "sp_delete_jobschedule: schedule %q is attached to other jobs too; SQL Server refuses to delete it (detach it with sp_detach_schedule, or give @keep_schedule = 1); the call is ignored", s.name)
				return
			}
		}
	}
	for _, s := range schedules {
		j.detach(s)
		if !keep {
			m.dropSchedule(s)
		}
	}
}

func (m *msdb) deleteSchedule(c *call) {
	s, why := m.findSchedule(c, "schedule_name")
	switch {
	case s == nil:
		m.finding(c.stmt.line, LeftOut, "sp_delete_schedule: %s; the call is ignored", why)
		return
	case len(s.jobs) > 0 && c.int("force_delete", 0) == 0:
		m.finding(c.stmt.line, LeftOut, "sp_delete_schedule: schedule %q is attached to %d job(s); SQL Server deletes it only with @force_delete = 1; the call is ignored", s.name, len(s.jobs))
		return
	}
	for j := range s.jobs {
		j.detach(s)
	}
	m.dropSchedule(s)
}

// attach gives the job a schedule, within muster's bound on schedules,
// and reports whether it did.
func (j *agentJob) attach(file string, line int, s *agentSchedule) bool {
	if len(j.schedules) >= muster.MaxSchedules {
		j.note(file, line, LeftOut, "", s.name, "the job already has the %d schedules a muster job may have; this one is left out", muster.MaxSchedules)
		return false
	}
	j.schedules = append(j.schedules, s)
	if s.jobs == nil {
		s.jobs = map[*agentJob]bool{}
	}
	s.jobs[j] = true
	return true
}

// detach takes a schedule off the job.
func (j *agentJob) detach(s *agentSchedule) {
	j.schedules = slices.DeleteFunc(j.schedules, func(o *agentSchedule) bool { return o == s })
	delete(s.jobs, j)
}

func (m *msdb) addJobServer(c *call) {
	j := c.job()
	if j == nil {
		return
	}
	j.addServers(m.file, c.stmt.line, []string{c.server()})
}

// addServers adds servers to a job, each once (any case).
func (j *agentJob) addServers(file string, line int, servers []string) {
	for _, s := range servers {
		key := strings.ToLower(s)
		switch {
		case j.serverSet[key]:
		case len(j.serverSet) >= maxServers:
			j.note(file, line, LeftOut, "", "", "server %s is one more than the %d servers one job takes here; it is left out", quote(s), maxServers)
		default:
			j.serverSet[key] = true
			j.servers = append(j.servers, s)
		}
	}
}

func (m *msdb) deleteJobServer(c *call) {
	if j := c.job(); j != nil {
		j.removeServers([]string{c.server()})
	}
}

// removeServers takes servers off a job. They stay in j.servers, which
// the mapping reads through serverSet, so that removing costs the same
// however many servers the job has.
func (j *agentJob) removeServers(servers []string) {
	for _, s := range servers {
		delete(j.serverSet, strings.ToLower(s))
	}
}

func (m *msdb) applyToTargets(c *call, apply bool) {
	j := c.job()
	if j == nil {
		return
	}
	servers := splitList(c.str("target_servers", ""))
	groups := splitList(c.str("target_server_groups", ""))
	if !apply {
		j.removeServers(servers)
		for _, g := range groups {
			delete(j.groupSet, strings.ToLower(g))
		}
		return
	}
	j.addServers(m.file, c.stmt.line, servers)
	for _, g := range groups {
		key := strings.ToLower(g)
		switch {
		case j.groupSet[key]:
		case len(j.groupSet) >= maxServers:
			j.note(m.file, c.stmt.line, LeftOut, "", "", "group %q is one more than the %d groups one job takes here; it is left out", g, maxServers)
		default:
			j.groupSet[key] = true
			j.groups = append(j.groups, g)
		}
	}
}

// splitList splits sp_apply_job_to_targets' comma-separated lists.
func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func (m *msdb) addCategory(c *call) {
	if class := c.str("class", "JOB"); !strings.EqualFold(class, "JOB") {
		return // alert and operator categories have no equivalent, and need none
	}
	name := strings.TrimSpace(c.str("name", ""))
	if name != "" && !m.categorySet[strings.ToLower(name)] {
		m.categorySet[strings.ToLower(name)] = true
		m.categories = append(m.categories, name)
	}
}

func (m *msdb) addOperator(c *call) {
	name := strings.TrimSpace(c.str("name", ""))
	if name == "" {
		m.finding(c.stmt.line, LeftOut, "sp_add_operator: @name is required; the call is ignored")
		return
	}
	if m.findOperator(name) != nil {
		m.finding(c.stmt.line, LeftOut, "sp_add_operator: operator %q already exists (SQL Server refuses a second one); the call is ignored", name)
		return
	}
	o := &agentOperator{
		name: name, file: m.file, line: c.stmt.line,
		email:    strings.TrimSpace(c.str("email_address", "")),
		pager:    strings.TrimSpace(c.str("pager_address", "")),
		netsend:  strings.TrimSpace(c.str("netsend_address", "")),
		disabled: c.int("enabled", 1) == 0,
	}
	m.operators = append(m.operators, o)
	m.operatorIndex[nameKey(name)] = o
}

func (m *msdb) findOperator(name string) *agentOperator {
	return m.operatorIndex[nameKey(name)]
}

func (m *msdb) addGroup(c *call) {
	name := strings.TrimSpace(c.str("name", ""))
	if name != "" && m.findGroup(name) == nil {
		g := &agentGroup{name: name, file: m.file, line: c.stmt.line}
		m.groups = append(m.groups, g)
		m.groupIndex[nameKey(name)] = g
	}
}

func (m *msdb) addGroupMember(c *call) {
	name := c.str("group_name", "")
	g := m.findGroup(name)
	if g == nil {
		m.finding(c.stmt.line, LeftOut, "sp_add_targetsvrgrp_member: no group named %q is created before this call; the call is ignored", name)
		return
	}
	g.members = append(g.members, c.str("server_name", ""))
}

func (m *msdb) findGroup(name string) *agentGroup { return m.groupIndex[nameKey(name)] }
