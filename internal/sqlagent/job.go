package sqlagent

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/schedule"
)

// builtinCategory reports whether k (lower case) is one of SQL Server's
// default job categories: a job in one has no category to speak of. This
// package's lookup tables are switches, not maps, so that nothing is built
// when the program starts: the target daemon, which is this binary too,
// never imports jobs.
func builtinCategory(k string) bool {
	switch k {
	case "[uncategorized (local)]",
		"[uncategorized (multi-server)]",
		"[uncategorized]":
		return true
	}
	return false
}

// isDefaultDescription reports whether k (lower case) is what SQL Server
// (and SSMS's script of a job) stores when a job has no description.
func isDefaultDescription(k string) bool {
	switch k {
	case "no description available.",
		"no description available":
		return true
	}
	return false
}

// job maps one job, or reports why it cannot carry over. An owner other
// than sa is reported: a T-SQL step of a job owned by a login that is not
// sysadmin runs with that login's rights, which a connection's user
// replaces.
func (mp *mapping) job(j *agentJob) (muster.Job, bool) {
	f := &stepFindings{file: j.file}
	steps := mp.steps(j, f)
	if len(j.steps) == 0 {
		f.blockers = append(f.blockers, Finding{File: j.file, Line: j.line, Level: NotImported,
			Message: "the job has no steps (sp_add_jobstep); a muster job needs at least one"})
	}
	if len(j.steps) > muster.MaxSteps {
		f.blockers = append(f.blockers, Finding{File: j.file, Line: j.line, Level: NotImported,
			Message: fmt.Sprintf("the job has %d steps; a muster job has at most %d", len(j.steps), muster.MaxSteps)})
	}
	if len(f.blockers) > 0 {
		mp.notImported(j, f.blockers)
		return muster.Job{}, false
	}

	mj := muster.NewJob()
	mj.Name = objectName(j.name, "job")
	mj.Enabled = j.enabled
	mj.Steps = steps
	mj.Description = strings.TrimSpace(j.description)
	if isDefaultDescription(strings.ToLower(mj.Description)) {
		mj.Description = ""
	}
	if d := []rune(mj.Description); len(d) > muster.MaxDescriptionLen {
		mj.Description = string(d[:muster.MaxDescriptionLen])
		f.notes = append(f.notes, Finding{File: j.file, Line: j.line, Level: Note,
			Message: fmt.Sprintf("its description is cut to muster's %d characters", muster.MaxDescriptionLen)})
	}
	mj.Category = category(j.category)
	if j.owner != "" && !strings.EqualFold(j.owner, "sa") {
		f.notes = append(f.notes, Finding{File: j.file, Line: j.line, Level: Note,
			Message: fmt.Sprintf("owner %s is not carried over: muster jobs have no owner; the role of an API token decides who may change them", quote(j.owner))})
	}
	if j.deleteLevel != 0 {
		f.notes = append(f.notes, Finding{File: j.file, Line: j.line, Level: LeftOut,
			Message: fmt.Sprintf("@delete_level %d (delete the job after it runs) has no equivalent; the job stays", j.deleteLevel)})
	}
	mp.schedules(j, &mj, f)
	unmapped := mp.targets(j, &mj, f)

	if err := mp.validate(&mj); err != nil {
		mp.notImported(j, []Finding{{File: j.file, Line: j.line, Level: NotImported, Message: muster.ErrorMessage(err)}})
		return muster.Job{}, false
	}
	mj.Name = mp.jobNames.unique(mj.Name)
	if mj.Name != j.name {
		f.notes = append([]Finding{{File: j.file, Line: j.line, Level: Note,
			Message: fmt.Sprintf("named %q in muster (names hold letters, digits, '.', '-' and '_')", mj.Name)}}, f.notes...)
	}
	for _, u := range unmapped {
		mp.recordUnmapped(u, mj.Name)
	}
	mp.notifications(j, mj.Name, f)
	for _, fd := range append(j.findings, f.notes...) {
		fd.Job = j.name
		mp.res.Findings = append(mp.res.Findings, fd)
	}
	return mj, true
}

// notImported reports a job left out, with why.
func (mp *mapping) notImported(j *agentJob, why []Finding) {
	for _, fd := range why {
		fd.Job, fd.Level = j.name, NotImported
		fd.Message += "; the job is not imported"
		mp.res.Findings = append(mp.res.Findings, fd)
	}
}

// validate checks the job as muster apply will, so that one bad job is
// reported here and the rest still apply.
func (mp *mapping) validate(j *muster.Job) error {
	j.Normalize()
	if err := j.Validate(); err != nil {
		return err
	}
	return schedule.ValidateAll(j.Schedules, time.UTC)
}

// category maps a SQL Server category: the built-in "[Uncategorized …]"
// ones are no category; the rest is kept as one line of text.
func category(c string) string {
	c = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(c, "")))
	if builtinCategory(strings.ToLower(c)) {
		return ""
	}
	if len(c) > muster.MaxCategoryLen {
		c = strings.TrimSpace(strings.ToValidUTF8(c[:muster.MaxCategoryLen], ""))
	}
	return c
}

// schedules maps the job's schedules, naming each uniquely.
func (mp *mapping) schedules(j *agentJob, mj *muster.Job, f *stepFindings) {
	taken := nameSet{}
	for _, s := range j.schedules {
		m := s.toMuster(objectName(s.name, ""))
		at := func(level, format string, args ...any) {
			f.notes = append(f.notes, Finding{File: s.file, Line: s.line, Level: level, Schedule: s.name, Message: fmt.Sprintf(format, args...)})
		}
		switch {
		case m.leftOut != "":
			at(LeftOut, "%s; the schedule is left out", m.leftOut)
			continue
		case len(mj.Schedules)+len(m.schedules) > muster.MaxSchedules:
			at(LeftOut, "the job has more schedules than the %d a muster job may have; this one is left out", muster.MaxSchedules)
			continue
		}
		for i, ms := range m.schedules {
			if ms.Name == "" {
				ms.Name = muster.DefaultScheduleName(len(mj.Schedules))
			}
			ms.Name = taken.unique(ms.Name)
			if i == 0 && s.name != "" && ms.Name != s.name {
				at(Note, "named %q in muster", ms.Name)
			}
			mj.Schedules = append(mj.Schedules, ms)
		}
		if m.note != "" {
			at(Note, "%s", m.note)
		}
	}
}

// unmappedServer is a server of a job that maps to no target, and why.
type unmappedServer struct{ server, reason string }

// targets maps the job's servers to targets and its target server groups
// to groups, and returns the servers that map to no target.
func (mp *mapping) targets(j *agentJob, mj *muster.Job, f *stepFindings) []unmappedServer {
	var unmapped []unmappedServer
	seen, seenServer := map[string]bool{}, map[string]bool{}
	for _, server := range j.servers {
		key := strings.ToLower(server)
		if !j.serverSet[key] || seenServer[key] {
			continue
		}
		seenServer[key] = true
		t, reason := mp.target(server)
		switch {
		case reason != "":
			unmapped = append(unmapped, unmappedServer{server, reason})
		case !seen[t]:
			seen[t] = true
			mj.Targets = append(mj.Targets, t)
		}
	}
	taken := map[string]bool{}
	for _, g := range j.groups {
		if !j.groupSet[strings.ToLower(g)] {
			continue
		}
		name := objectName(g, "group")
		if taken[name] {
			continue
		}
		taken[name] = true
		if name != g {
			f.notes = append(f.notes, Finding{File: j.file, Line: j.line, Level: Note,
				Message: fmt.Sprintf("target server group %q is group %q in muster", g, name)})
		}
		mj.Groups = append(mj.Groups, name)
	}
	if len(j.serverSet) == 0 && len(j.groupSet) == 0 {
		f.notes = append(f.notes, Finding{File: j.file, Line: j.line, Level: Note,
			Message: "the script names no server for it (sp_add_jobserver, sp_apply_job_to_targets); it runs nowhere until it names targets"})
	}
	return unmapped
}

// localServer reports whether k (lower case) is a name that means the
// server the script was written for.
func localServer(k string) bool {
	switch k {
	case "(local)",
		".",
		"localhost",
		"(localhost)":
		return true
	}
	return false
}

// target maps a SQL Server name to a target name, or says why it cannot.
func (mp *mapping) target(server string) (string, string) {
	if t, ok := mp.targetMap[strings.ToLower(server)]; ok {
		return t, ""
	}
	if localServer(strings.ToLower(server)) {
		return "", "the job runs on the server the script was written for (the SQL Server master itself), and muster has no local jobs: name the target to run it on with --target-map '" + server + "=TARGET'"
	}
	t := muster.NormalizeTargetName(server)
	if err := muster.ValidateTargetName("server", t); err != nil {
		return "", fmt.Sprintf("%s is not a valid target name (letters, digits, '.', '-' and '_'): name the target with --target-map '%s=TARGET'", quote(server), server)
	}
	return t, ""
}

// recordUnmapped records that a job runs on a server with no target
// name, once per server.
func (mp *mapping) recordUnmapped(u unmappedServer, job string) {
	key := strings.ToLower(u.server)
	i, ok := mp.unmappedIndex[key]
	if !ok {
		mp.res.Unmapped = append(mp.res.Unmapped, Unmapped{Server: u.server, Reason: u.reason})
		i = len(mp.res.Unmapped) - 1
		mp.unmappedIndex[key] = i
	}
	mp.res.Unmapped[i].Jobs = append(mp.res.Unmapped[i].Jobs, job)
}
