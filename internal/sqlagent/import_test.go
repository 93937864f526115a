package sqlagent_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/sqlagent"
)

// importText imports scripts given as name, text, name, text….
func importText(t *testing.T, opts sqlagent.Options, files ...string) *sqlagent.Result {
	t.Helper()
	var scripts []sqlagent.Script
	for i := 0; i+1 < len(files); i += 2 {
		scripts = append(scripts, sqlagent.Script{Name: files[i], Text: []byte(files[i+1])})
	}
	res, err := sqlagent.Import(scripts, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// hasFinding reports whether some finding says all of parts.
func hasFinding(res *sqlagent.Result, level string, parts ...string) bool {
	return slices.ContainsFunc(res.Findings, func(f sqlagent.Finding) bool {
		if f.Level != level {
			return false
		}
		for _, p := range parts {
			if !strings.Contains(f.String(), p) {
				return false
			}
		}
		return true
	})
}

func TestImportRefusesBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts sqlagent.Options
		want string
	}{
		{"connection", sqlagent.Options{Connections: map[string]string{"Sales": "sales db"}}, `connection map Sales: "sales db": a name may hold only`},
		{"target", sqlagent.Options{Targets: map[string]string{"SQL01": "-web1"}}, `target map SQL01: target name "-web1" may hold only`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sqlagent.Import(nil, tc.opts)
			if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an invalid error containing %q", err, tc.want)
			}
		})
	}
	big := make([]byte, sqlagent.MaxScriptSize+1)
	_, err := sqlagent.Import([]sqlagent.Script{{Name: "big.sql", Text: big}}, sqlagent.Options{})
	if muster.ErrorCode(err) != muster.EINVALID || !strings.Contains(err.Error(), "big.sql: the script is over") {
		t.Errorf("an oversized script: got %v, want an invalid error naming it", err)
	}
}

const oneJob = `EXEC sp_add_job @job_name = N'%s'
EXEC sp_add_jobstep @job_name = N'%s', @step_name = N'run', @subsystem = N'CmdExec', @command = N'true'
EXEC sp_add_jobserver @job_name = N'%s', @server_name = N'WEB1'
`

func job(name string) string { return strings.ReplaceAll(oneJob, "%s", name) }

// Scripts run in order, as on one server: a schedule made in one is
// attached in the next; variables end with their batch; a file that cannot
// be read is reported, and the others still import.
func TestImportSeveralScripts(t *testing.T) {
	res := importText(t, sqlagent.Options{},
		"schedules.sql", "EXEC sp_add_schedule @schedule_name = N'Nightly', @freq_type = 4, @freq_interval = 1, @active_start_time = 10000",
		"broken.sql", job("lost")+"EXEC sp_add_jobstep @command = N'never closed",
		"jobs.sql", job("a")+`EXEC sp_attach_schedule @job_name = N'a', @schedule_name = N'Nightly'
DECLARE @id uniqueidentifier
EXEC sp_add_job @job_name = N'b', @job_id = @id OUTPUT
GO
EXEC sp_add_jobstep @job_id = @id, @step_name = N'run', @command = N'SELECT 1'
`)
	var names []string
	for _, j := range res.Jobs {
		names = append(names, j.Name)
	}
	if !slices.Equal(names, []string{"a"}) {
		t.Errorf("imported %v, want [a] (b has no steps: its step named a variable of an ended batch)", names)
	}
	if len(res.Jobs) > 0 && (len(res.Jobs[0].Schedules) != 1 || res.Jobs[0].Schedules[0].At != "01:00") {
		t.Errorf("job a: schedules %+v, want Nightly at 01:00", res.Jobs[0].Schedules)
	}
	for _, want := range []struct{ level, text string }{
		{sqlagent.LeftOut, "broken.sql:4: the string starting here is never closed with ', so the file is not read"},
		{sqlagent.Note, "jobs.sql:8: sp_add_jobstep: @job_id: variable @id is not set in this batch"},
		{sqlagent.NotImported, `jobs.sql:6: job "b": the job has no steps`},
	} {
		if !hasFinding(res, want.level, want.text) {
			t.Errorf("no %s finding %q in %v", want.level, want.text, res.Findings)
		}
	}
}

// A script that deletes a job and creates it again replaces it; one that
// creates it twice keeps the first.
func TestImportReplacesDeletedJobs(t *testing.T) {
	res := importText(t, sqlagent.Options{}, "a.sql",
		job("backup")+`IF EXISTS (SELECT job_id FROM msdb.dbo.sysjobs_view WHERE name = N'backup')
EXEC msdb.dbo.sp_delete_job @job_name = N'backup', @delete_unused_schedule = 1
`+strings.ReplaceAll(job("backup"), "true", "echo second")+job("backup"))
	if len(res.Jobs) != 1 || res.Jobs[0].Steps[0].Shell != "echo second" {
		t.Fatalf("got %+v, want the second definition of backup", res.Jobs)
	}
	if !hasFinding(res, sqlagent.LeftOut, `sp_add_job: job "backup" already exists`) {
		t.Errorf("the third definition is not reported: %v", res.Findings)
	}
}

// Names that become the same muster name stay apart, and say so.
func TestImportKeepsNamesApart(t *testing.T) {
	res := importText(t, sqlagent.Options{}, "a.sql", job("Nightly backup")+job("Nightly-backup")+job("Nightly backup!"))
	var names []string
	for _, j := range res.Jobs {
		names = append(names, j.Name)
	}
	if want := []string{"Nightly-backup", "Nightly-backup-2", "Nightly-backup-3"}; !slices.Equal(names, want) {
		t.Errorf("got %v, want %v", names, want)
	}
	if !hasFinding(res, sqlagent.Note, `job "Nightly-backup": named "Nightly-backup-2" in muster`) {
		t.Errorf("the renaming is not reported: %v", res.Findings)
	}
}

// --connection-map and --target-map, in any case; (local) once mapped is a
// target like any other.
func TestImportMaps(t *testing.T) {
	res := importText(t, sqlagent.Options{
		Connections: map[string]string{"SALES": "sales-pg"},
		Targets:     map[string]string{"(LOCAL)": "db1", `sql02\inst`: "DB2"},
	}, "a.sql", `EXEC sp_add_job @job_name = N'j'
EXEC sp_add_jobstep @job_name = N'j', @step_name = N'one', @database_name = N'Sales', @command = N'SELECT 1', @on_success_action = 3
EXEC sp_add_jobstep @job_name = N'j', @step_name = N'two', @database_name = N'Other DB', @command = N'SELECT 2'
EXEC sp_add_jobserver @job_name = N'j'
EXEC sp_add_jobserver @job_name = N'j', @server_name = N'SQL02\INST'
EXEC sp_apply_job_to_targets @job_name = N'j', @target_servers = N'web9, (local)'
`)
	if len(res.Jobs) != 1 {
		t.Fatalf("findings %v", res.Findings)
	}
	j := res.Jobs[0]
	if j.Steps[0].Connection != "sales-pg" || j.Steps[1].Connection != "Other-DB" {
		t.Errorf("connections %q and %q, want sales-pg (mapped) and Other-DB (the database's name)", j.Steps[0].Connection, j.Steps[1].Connection)
	}
	if want := []string{"db1", "db2", "web9"}; !slices.Equal(j.Targets, want) {
		t.Errorf("targets %v, want %v", j.Targets, want)
	}
	if len(res.Unmapped) != 0 {
		t.Errorf("unmapped %v, want none", res.Unmapped)
	}
}

// A job that starts at its last step runs it first and quits after it, as
// SQL Server Agent does.
func TestImportStartsAtTheLastStep(t *testing.T) {
	res := importText(t, sqlagent.Options{}, "a.sql", `EXEC sp_add_job @job_name = N'j', @start_step_id = 3
EXEC sp_add_jobstep @job_name = N'j', @step_name = N'a', @command = N'SELECT 1', @on_success_action = 3
EXEC sp_add_jobstep @job_name = N'j', @step_name = N'b', @command = N'SELECT 2', @on_success_action = 3, @on_fail_action = 3
EXEC sp_add_jobstep @job_name = N'j', @step_name = N'c', @command = N'SELECT 3', @on_fail_action = 4, @on_fail_step_id = 1
`)
	got := stepFlows(t, res)
	want := []flow{{"c", "quit_success", "goto:a"}, {"a", "", ""}, {"b", "goto:c", "goto:c"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// "Go to the next step" (3) on the last step has no step to go to: SQL
// Server Agent ends the job there with that step's outcome, a failure when
// it failed. The import leaves both actions at muster's defaults, whose
// meaning on the last step is the same (next ends the run succeeded,
// quit_failure ends it failed), and notes nothing.
func TestImportNextOnTheLastStepEndsWithItsOutcome(t *testing.T) {
	res := importText(t, sqlagent.Options{}, "a.sql", `EXEC sp_add_job @job_name = N'j'
EXEC sp_add_jobstep @job_name = N'j', @step_name = N'a', @command = N'SELECT 1', @on_success_action = 3, @on_fail_action = 3
EXEC sp_add_jobstep @job_name = N'j', @step_name = N'b', @command = N'SELECT 2', @on_success_action = 3, @on_fail_action = 3
EXEC sp_add_jobserver @job_name = N'j', @server_name = N'db1'
`)
	got := stepFlows(t, res)
	want := []flow{{"a", "", "next"}, {"b", "", ""}}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	last := res.Jobs[0].Steps[1]
	if got := last.FailureAction(); got != muster.ActionQuitFailure {
		t.Errorf("last step's failure action %q, want %q", got, muster.ActionQuitFailure)
	}
	if len(res.Findings) != 0 {
		t.Errorf("findings %v, want none", res.Findings)
	}
}

// A schedule that fires every few days, weeks or months counts them, in
// SQL Server, from its @active_start_date, and without one from the day
// it was made, which a script does not say: the import keeps the schedule
// and notes that its days may differ, naming the fix. With a start date,
// or every one, nothing is noted. Weeks every few weeks are not kept by
// setting start_date to that day (SQL Server's weeks start on Sunday,
// muster's on Monday, and a weekly schedule with Sundays is two): the fix
// is to give the script the start date and import it again.
func TestImportNotesAnEveryWithoutItsStartDate(t *testing.T) {
	const setStart, importAgain = "set start_date to that day", "add @active_start_date = that day to the script and import it again"
	for _, tc := range []struct {
		params string
		every  int // 0: no note
		fix    string
	}{
		{"@freq_type = 4, @freq_interval = 3, @active_start_time = 60000", 3, setStart},
		{"@freq_type = 8, @freq_interval = 2, @freq_recurrence_factor = 2", 2, importAgain},
		{"@freq_type = 8, @freq_interval = 3, @freq_recurrence_factor = 2", 2, importAgain},
		{"@freq_type = 16, @freq_interval = 1, @freq_recurrence_factor = 3", 3, setStart},
		{"@freq_type = 32, @freq_interval = 2, @freq_relative_interval = 1, @freq_recurrence_factor = 2, @freq_subday_type = 4, @freq_subday_interval = 30", 2, setStart},
		{"@freq_type = 4, @freq_interval = 3, @active_start_date = 20240130", 0, ""},
		{"@freq_type = 4, @freq_interval = 1", 0, ""},
		{"@freq_type = 8, @freq_interval = 2, @freq_recurrence_factor = 1", 0, ""},
	} {
		res := importText(t, sqlagent.Options{}, "s.sql", `EXEC sp_add_job @job_name = N'j'
EXEC sp_add_jobstep @job_name = N'j', @step_name = N's', @command = N'SELECT 1'
EXEC sp_add_jobserver @job_name = N'j', @server_name = N'SQL01'
EXEC sp_add_jobschedule @job_name = N'j', @name = N'x', `+tc.params+"\n")
		if len(res.Jobs) != 1 || len(res.Jobs[0].Schedules) == 0 {
			t.Fatalf("%s: jobs %v, findings %v", tc.params, res.Jobs, res.Findings)
		}
		var notes []string
		for _, f := range res.Findings {
			if strings.Contains(f.Message, "@active_start_date") {
				notes = append(notes, f.Level+": "+f.Message)
			}
		}
		want := 0
		if tc.every > 0 {
			want = 1
		}
		if len(notes) != want {
			t.Errorf("%s: notes on the start date %v, want %d", tc.params, notes, want)
			continue
		}
		if want == 1 && (!strings.HasPrefix(notes[0], sqlagent.Note+": ") ||
			!strings.Contains(notes[0], fmt.Sprintf("counts every %d ", tc.every)) ||
			!strings.Contains(notes[0], tc.fix)) {
			t.Errorf("%s: %q, want a note of the day SQL Server counts every %d from, and the fix", tc.params, notes[0], tc.every)
		}
	}
}

// sp_delete_jobstep renumbers the steps after the one it deletes, and the
// references to them, then sets every reference to the deleted step's
// number to quit (with success on success, with failure on failure), as
// msdb's procedure does: that number, after the renumbering, also names the
// step that followed the deleted one. The import does the same, and notes
// each reference it sets to quit.
func TestImportDeletesAStepAsMSDBDoes(t *testing.T) {
	res := importText(t, sqlagent.Options{}, "a.sql", `EXEC sp_add_job @job_name = N'Load'
EXEC sp_add_jobstep @job_name = N'Load', @step_name = N'Extract', @command = N'EXEC etl.Extract',
    @on_success_action = 4, @on_success_step_id = 2, @on_fail_action = 4, @on_fail_step_id = 5
EXEC sp_add_jobstep @job_name = N'Load', @step_name = N'Old transform', @command = N'EXEC etl.OldTransform',
    @on_success_action = 3, @on_fail_action = 4, @on_fail_step_id = 5
EXEC sp_add_jobstep @job_name = N'Load', @step_name = N'Transform', @command = N'EXEC etl.Transform',
    @on_success_action = 3, @on_fail_action = 4, @on_fail_step_id = 5
EXEC sp_add_jobstep @job_name = N'Load', @step_name = N'Publish', @command = N'EXEC etl.Publish',
    @on_success_action = 1, @on_fail_action = 4, @on_fail_step_id = 3
EXEC sp_add_jobstep @job_name = N'Load', @step_name = N'Report', @command = N'EXEC etl.Report', @on_success_action = 2
EXEC sp_add_jobserver @job_name = N'Load', @server_name = N'SQL01'
EXEC sp_delete_jobstep @job_name = N'Load', @step_id = 2
`)
	got := stepFlows(t, res)
	want := []flow{
		{"Extract", "quit_success", "goto:Report"}, // went to the deleted step
		{"Transform", "", "goto:Report"},
		{"Publish", "quit_success", ""}, // went to Transform, step 3, which became step 2
		{"Report", "quit_failure", ""},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, want := range []struct{ step, text string }{
		{"Extract", `@on_success_action went to step 2, "Old transform", which sp_delete_jobstep deletes here; as in SQL Server, it quits with success instead`},
		{"Publish", `@on_fail_action went to step 3, "Transform", which sp_delete_jobstep renumbers 2 here and then, as for the deleted step 2, sets every reference to it to quit; as in SQL Server, it quits with failure instead`},
	} {
		if !hasFinding(res, sqlagent.Note, `a.sql:12: job "Load": step "`+want.step+`": `+want.text) {
			t.Errorf("no note %q on step %s in %v", want.text, want.step, res.Findings)
		}
	}
}

// A script that changes schedules after making them (sp_update_schedule,
// sp_update_jobschedule), takes them off jobs (sp_detach_schedule,
// sp_delete_jobschedule) or deletes them (sp_delete_schedule) leaves each
// job with the schedules msdb would hold: a schedule shared by several
// jobs changes for all of them, and a change SQL Server refuses is
// reported and changes nothing.
func TestImportChangesSchedulesAsMSDBDoes(t *testing.T) {
	res := importText(t, sqlagent.Options{}, "a.sql", `EXEC sp_add_schedule @schedule_name = N'Nightly', @freq_type = 4, @freq_interval = 1, @active_start_time = 010000
EXEC sp_add_schedule @schedule_name = N'Hourly', @freq_type = 4, @freq_interval = 1, @freq_subday_type = 8, @freq_subday_interval = 1
`+job("a")+job("b")+job("c")+`EXEC sp_attach_schedule @job_name = N'a', @schedule_name = N'Nightly'
EXEC sp_attach_schedule @job_name = N'b', @schedule_name = N'Nightly'
EXEC sp_attach_schedule @job_name = N'b', @schedule_name = N'Hourly'
EXEC sp_add_jobschedule @job_name = N'c', @name = N'Weekly', @freq_type = 8, @freq_interval = 2, @freq_recurrence_factor = 1, @active_start_time = 60000
EXEC sp_add_jobschedule @job_name = N'c', @name = N'Old', @freq_type = 4, @freq_interval = 1
EXEC sp_add_jobschedule @job_name = N'c', @name = N'Paused', @freq_type = 4, @freq_interval = 1, @active_start_time = 120000
GO
EXEC sp_update_schedule @name = N'Nightly', @active_start_time = 020000
EXEC sp_detach_schedule @job_name = N'b', @schedule_name = N'Hourly'
EXEC sp_update_jobschedule @job_name = N'c', @name = N'Weekly', @new_name = N'Monday', @active_start_time = 70000
EXEC sp_delete_jobschedule @job_name = N'c', @name = N'Old'
EXEC sp_update_schedule @name = N'Paused', @enabled = 0
EXEC sp_delete_schedule @schedule_name = N'Nightly'
EXEC sp_delete_schedule @schedule_name = N'Hourly'
EXEC sp_attach_schedule @job_name = N'a', @schedule_name = N'Hourly'
`)
	got := map[string][]string{}
	for _, j := range res.Jobs {
		got[j.Name] = []string{}
		for _, s := range j.Schedules {
			got[j.Name] = append(got[j.Name], s.Name+" "+s.At)
		}
	}
	want := map[string][]string{"a": {"Nightly 02:00"}, "b": {"Nightly 02:00"}, "c": {"Monday 07:00"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("schedules %v, want %v", got, want)
	}
	for _, want := range []struct{ level, text string }{
		{sqlagent.LeftOut, `a.sql:24: sp_delete_schedule: schedule "Nightly" is attached to 2 job(s); SQL Server deletes it only with @force_delete = 1; the call is ignored`},
		{sqlagent.LeftOut, `a.sql:26: sp_attach_schedule: no schedule named "Hourly" is created before this call; job "a" does not get it`},
		{sqlagent.LeftOut, `a.sql:17: job "c": schedule "Paused": the schedule is disabled (@enabled = 0)`},
	} {
		if !hasFinding(res, want.level, want.text) {
			t.Errorf("no %s finding %q in %v", want.level, want.text, res.Findings)
		}
	}
	if hasFinding(res, sqlagent.LeftOut, "is not read") {
		t.Errorf("a schedule procedure is reported as not read: %v", res.Findings)
	}
}

// A step whose command holds SQL Server Agent tokens imports as written,
// and the report says what the tokens then do to the program that reads
// the command: /bin/sh and PowerShell run $(…) as a command, a database
// receives it as text.
func TestImportSaysWhatUnreplacedTokensDo(t *testing.T) {
	res := importText(t, sqlagent.Options{}, "a.sql", `EXEC sp_add_job @job_name = N'j'
EXEC sp_add_jobstep @job_name = N'j', @step_name = N'sql', @on_success_action = 3,
    @command = N'PRINT ''$(ESCAPE_SQUOTE(JOBNAME))'''
EXEC sp_add_jobstep @job_name = N'j', @step_name = N'shell', @subsystem = N'CmdExec', @on_success_action = 3,
    @command = N'sqlcmd -E -S $(ESCAPE_SQUOTE(SRVR)) -Q "EXEC dbo.Purge" -b'
EXEC sp_add_jobstep @job_name = N'j', @step_name = N'ps', @subsystem = N'PowerShell',
    @command = N'Get-Item SQLSERVER:\SQL\$(ESCAPE_NONE(SRVR))'
EXEC sp_add_jobserver @job_name = N'j', @server_name = N'SQL01'
`)
	if len(res.Jobs) != 1 || res.Jobs[0].Steps[1].Shell != `sqlcmd -E -S $(ESCAPE_SQUOTE(SRVR)) -Q "EXEC dbo.Purge" -b` {
		t.Fatalf("jobs %+v, findings %v", res.Jobs, res.Findings)
	}
	for _, want := range []struct{ step, text string }{
		{"sql", "tokens such as $(ESCAPE_SQUOTE(JOBNAME)), which muster does not replace: the database receives them as written"},
		{"shell", "tokens such as $(ESCAPE_SQUOTE(SRVR)), which muster does not replace: to /bin/sh, $(…) runs a command, so the step fails"},
		{"shell", "$MUSTER_JOB, $MUSTER_TARGET and $MUSTER_RUN_ID"},
		{"ps", "tokens such as $(ESCAPE_NONE(SRVR)), which muster does not replace: to PowerShell, $(…) outside single quotes runs a command"},
		{"ps", "$env:MUSTER_JOB"},
	} {
		if !hasFinding(res, sqlagent.LeftOut, `job "j": step "`+want.step+`": `, want.text) {
			t.Errorf("no finding %q on step %s in %v", want.text, want.step, res.Findings)
		}
	}
}

// sp_add_schedule's @freq_interval is 0 by default, as msdb declares it: a
// weekly or monthly schedule that does not name its days is one SQL Server
// refuses, and the import leaves it out saying so, rather than firing on
// Sundays or on the 1st.
func TestImportScheduleWithoutItsDays(t *testing.T) {
	res := importText(t, sqlagent.Options{}, "a.sql", job("j")+`EXEC sp_add_schedule @schedule_name = N'Weekly', @freq_type = 8, @freq_recurrence_factor = 1
EXEC sp_add_schedule @schedule_name = N'Monthly', @freq_type = 16, @freq_recurrence_factor = 1
EXEC sp_attach_schedule @job_name = N'j', @schedule_name = N'Weekly'
EXEC sp_attach_schedule @job_name = N'j', @schedule_name = N'Monthly'
`)
	if len(res.Jobs) != 1 || len(res.Jobs[0].Schedules) != 0 {
		t.Fatalf("jobs %+v, want j without schedules", res.Jobs)
	}
	for _, want := range []string{
		`a.sql:4: job "j": schedule "Weekly": @freq_interval 0 names no weekday`,
		`a.sql:5: job "j": schedule "Monthly": @freq_interval 0 is not a day of the month`,
	} {
		if !hasFinding(res, sqlagent.LeftOut, want) {
			t.Errorf("no finding %q in %v", want, res.Findings)
		}
	}
}

// SSMS scripts a schedule that several jobs share once for each job, with
// the same @schedule_uid: msdb's sp_add_schedule then finds the schedule of
// that uid and sp_add_jobschedule attaches it, so there is one schedule. A
// later change to it by name changes it for every job, and a later job can
// attach it by name.
func TestImportSharesASchedulesByItsUID(t *testing.T) {
	const nightly = `EXEC @ReturnCode = msdb.dbo.sp_add_jobschedule @job_id=@jobId, @name=N'Nightly', 
		@enabled=1, 
		@freq_type=4, 
		@freq_interval=1, 
		@freq_subday_type=1, 
		@active_start_date=20240115, 
		@active_end_date=99991231, 
		@active_start_time=10000, 
		@active_end_time=235959, 
		@schedule_uid=N'5d3b7a52-2f4c-4a8e-9d0b-0f3f0e6d8a11'
`
	script := func(name string) string {
		return `DECLARE @ReturnCode INT, @jobId BINARY(16)
EXEC @ReturnCode = msdb.dbo.sp_add_job @job_name=N'` + name + `', @job_id = @jobId OUTPUT
EXEC @ReturnCode = msdb.dbo.sp_add_jobstep @job_id=@jobId, @step_name=N'run', @subsystem=N'TSQL', @command=N'SELECT 1'
` + nightly + `EXEC @ReturnCode = msdb.dbo.sp_add_jobserver @job_id = @jobId, @server_name = N'SQL01'
GO
`
	}
	res := importText(t, sqlagent.Options{}, "a.sql", script("a")+script("b"), "b.sql", job("c")+`EXEC sp_attach_schedule @job_name = N'c', @schedule_name = N'Nightly'
EXEC sp_update_schedule @name = N'Nightly', @active_start_time = 030000
`)
	got := map[string][]string{}
	for _, j := range res.Jobs {
		for _, s := range j.Schedules {
			got[j.Name] = append(got[j.Name], s.Name+" "+s.At)
		}
	}
	want := map[string][]string{"a": {"Nightly 03:00"}, "b": {"Nightly 03:00"}, "c": {"Nightly 03:00"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("schedules %v, want %v; findings %v", got, want, res.Findings)
	}
}

// flow is where a step goes on success and on failure.
type flow struct{ name, success, failure string }

// stepFlows returns the flow of each step of the one job res imported.
func stepFlows(t *testing.T, res *sqlagent.Result) []flow {
	t.Helper()
	if len(res.Jobs) != 1 {
		t.Fatalf("findings %v", res.Findings)
	}
	var got []flow
	for _, s := range res.Jobs[0].Steps {
		got = append(got, flow{s.Name, s.OnSuccess, s.OnFailure})
	}
	return got
}

// SSMS saves scripts with Windows line endings, and a command typed in it
// holds them too. A target runs the command on Unix: its lines end with a
// line feed alone, so /bin/sh does not read a carriage return into the last
// word of each line, and the GO lines of a T-SQL step are reported.
func TestImportReadsWindowsLineEndings(t *testing.T) {
	script := strings.ReplaceAll(`EXEC sp_add_job @job_name = N'j'
EXEC sp_add_jobstep @job_name = N'j', @step_name = N'sql', @on_success_action = 3, @command = N'USE Sales
GO
EXEC dbo.Purge'
EXEC sp_add_jobstep @job_name = N'j', @step_name = N'shell', @subsystem = N'CmdExec', @command = N'cd /var/backups
tar czf sales.tgz sales'
EXEC sp_add_jobserver @job_name = N'j', @server_name = N'SQL01'
`, "\n", "\r\n")
	res := importText(t, sqlagent.Options{}, "a.sql", script)
	if len(res.Jobs) != 1 {
		t.Fatalf("findings %v", res.Findings)
	}
	steps := res.Jobs[0].Steps
	if got, want := steps[0].SQL, "USE Sales\nGO\nEXEC dbo.Purge"; got != want {
		t.Errorf("sql %q, want %q", got, want)
	}
	if got, want := steps[1].Shell, "cd /var/backups\ntar czf sales.tgz sales"; got != want {
		t.Errorf("shell %q, want %q", got, want)
	}
	if !hasFinding(res, sqlagent.Note, `a.sql:2: job "j": step "sql": its T-SQL holds 1 GO line(s)`) {
		t.Errorf("the GO line is not reported: %v", res.Findings)
	}
}

// A deployment script run with sqlcmd sets its variables with :setvar and
// uses them as $(name), anywhere in the text after that line, in any case.
// Tokens of SQL Server Agent and variables the script does not set stay as
// written; an :r include is reported, as the import does not follow it.
func TestImportSetsSQLCmdVariables(t *testing.T) {
	res := importText(t, sqlagent.Options{}, "deploy.sql", `:setvar JobName "Nightly ""purge"""
:SETVAR server SQL01
  :setvar db DBA
:r .\schedules.sql
EXEC msdb.dbo.sp_add_job @job_name=N'$(jobname)'
GO
EXEC msdb.dbo.sp_add_jobstep @job_name=N'$(JOBNAME)', @step_name=N'purge', @database_name=N'$(db)',
    @command=N'EXEC dbo.Purge @Job = ''$(ESCAPE_SQUOTE(JOBNAME))'', @Env = ''$(env)'''
EXEC msdb.dbo.sp_add_jobserver @job_name=N'$(jobname)', @server_name=N'$(server)'
`)
	if len(res.Jobs) != 1 {
		t.Fatalf("findings %v", res.Findings)
	}
	j := res.Jobs[0]
	if j.Name != "Nightly-purge" || !slices.Equal(j.Targets, []string{"sql01"}) || j.Steps[0].Connection != "DBA" {
		t.Errorf("job %q on %v, connection %q; want Nightly-purge on [sql01], connection DBA", j.Name, j.Targets, j.Steps[0].Connection)
	}
	if got, want := j.Steps[0].SQL, `EXEC dbo.Purge @Job = '$(ESCAPE_SQUOTE(JOBNAME))', @Env = '$(env)'`; got != want {
		t.Errorf("sql %q, want %q", got, want)
	}
	if !hasFinding(res, sqlagent.LeftOut, `deploy.sql:4: sqlcmd's :r .\schedules.sql is not followed`) {
		t.Errorf("the :r is not reported: %v", res.Findings)
	}
	if !hasFinding(res, sqlagent.Note, `job "Nightly \"purge\"": named "Nightly-purge" in muster`) {
		t.Errorf("the job's name is not the variable's value: %v", res.Findings)
	}
}

// A GO line in a T-SQL step's command is reported as sqlcmd reads one: in
// any case, with a repeat count, and with a comment after it.
func TestImportReportsEveryGOLineOfAStep(t *testing.T) {
	res := importText(t, sqlagent.Options{}, "a.sql", `EXEC sp_add_job @job_name = N'j'
EXEC sp_add_jobstep @job_name = N'j', @step_name = N'sql', @command = N'USE Sales
GO
EXEC dbo.Purge
  go 2
EXEC dbo.Shrink
GO -- the log too
EXEC dbo.ShrinkLog
SELECT 1 GO'
EXEC sp_add_jobserver @job_name = N'j', @server_name = N'SQL01'
`)
	if !hasFinding(res, sqlagent.Note, `a.sql:2: job "j": step "sql": its T-SQL holds 3 GO line(s)`) {
		t.Errorf("the GO lines are not all reported: %v", res.Findings)
	}
}

// SQL Server compares names without their trailing spaces, as a script
// generated from msdb's char columns pads them: the calls find the job,
// the schedule and the group they name however many spaces end the name.
func TestImportFindsNamesWithTrailingSpaces(t *testing.T) {
	res := importText(t, sqlagent.Options{}, "a.sql", `EXEC sp_add_job @job_name = N'Nightly'
EXEC sp_add_jobstep @job_name = N'Nightly   ', @step_name = N'run', @command = N'SELECT 1'
EXEC sp_add_schedule @schedule_name = N'Daily', @freq_type = 4, @freq_interval = 1
EXEC sp_attach_schedule @job_name = N'Nightly ', @schedule_name = N'Daily  '
EXEC sp_add_jobserver @job_name = N'Nightly ', @server_name = N'SQL01'
`)
	if len(res.Jobs) != 1 || len(res.Jobs[0].Steps) != 1 || len(res.Jobs[0].Schedules) != 1 || len(res.Jobs[0].Targets) != 1 {
		t.Fatalf("jobs %+v; findings %v", res.Jobs, res.Findings)
	}
}

// The variables a deployment script is given on sqlcmd's command line
// (sqlcmd -v Env=prod) are given in Options.Variables, in any case; an
// :setvar in the script sets one again, as it does for sqlcmd.
func TestImportGivesSQLCmdVariables(t *testing.T) {
	res := importText(t, sqlagent.Options{Variables: map[string]string{"ENV": "prod", "Server": "SQL09"}}, "deploy.sql", `EXEC sp_add_job @job_name = N'Purge $(Env)'
EXEC sp_add_jobstep @job_name = N'Purge $(env)', @step_name = N'run', @command = N'EXEC dbo.Purge'
EXEC sp_add_jobserver @job_name = N'Purge $(env)', @server_name = N'$(Server)'
:setvar Server SQL01
EXEC sp_add_jobserver @job_name = N'Purge $(env)', @server_name = N'$(Server)'
`)
	if len(res.Jobs) != 1 || res.Jobs[0].Name != "Purge-prod" || !slices.Equal(res.Jobs[0].Targets, []string{"sql01", "sql09"}) {
		t.Fatalf("jobs %+v; findings %v", res.Jobs, res.Findings)
	}
}

// In a script written for sqlcmd, a $(NAME) that no :setvar before it sets
// and --var does not give is one sqlcmd refuses to run the script with: it
// is reported once, where it first stands, and stays as written. SQL
// Server Agent's tokens are not sqlcmd's variables, and a script that uses
// no sqlcmd command is not read as one.
func TestImportReportsUnsetSQLCmdVariables(t *testing.T) {
	const body = `EXEC sp_add_job @job_name = N'Purge $(Env)'
EXEC sp_add_jobstep @job_name = N'Purge $(Env)', @step_name = N'run', @subsystem = N'CmdExec',
    @command = N'purge --server $(ESCAPE_SQUOTE(SRVR)) --job $(JOBID) --in $(Dir)'
EXEC sp_add_jobserver @job_name = N'Purge $(env)', @server_name = N'SQL01'
`
	res := importText(t, sqlagent.Options{}, "deploy.sql", ":setvar Dir /srv\n"+body)
	var got []string
	for _, f := range res.Findings {
		if strings.Contains(f.Message, "sqlcmd") {
			got = append(got, f.String())
		}
	}
	want := []string{`deploy.sql:2: $(Env) is a sqlcmd variable that no :setvar before it sets and no --var gives: sqlcmd would refuse the script; it stays as written`}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	res = importText(t, sqlagent.Options{}, "plain.sql", body)
	if hasFinding(res, sqlagent.Note, "sqlcmd") {
		t.Errorf("a script without sqlcmd commands is reported as one: %v", res.Findings)
	}
}

// A schedule that ends before it starts is one SQL Server refuses; the
// report names the script's fields, as the script wrote them.
func TestImportNamesTheDatesOfASchedulesThatEndsBeforeItStarts(t *testing.T) {
	res := importText(t, sqlagent.Options{}, "a.sql", job("j")+`EXEC sp_add_jobschedule @job_name = N'j', @name = N'Backwards', @freq_type = 4, @freq_interval = 1,
    @active_start_date = 20240201, @active_end_date = 20240101
`)
	if len(res.Jobs) != 1 || len(res.Jobs[0].Schedules) != 0 {
		t.Fatalf("jobs %+v", res.Jobs)
	}
	want := `a.sql:4: job "j": schedule "Backwards": @active_end_date 20240101 is before @active_start_date 20240201; the schedule is left out`
	if !hasFinding(res, sqlagent.LeftOut, want) {
		t.Errorf("no finding %q in %v", want, res.Findings)
	}
}

// A description longer than muster keeps is cut to its 1024 characters,
// not bytes: one of 1,500 accented letters keeps 1,024 of them.
func TestImportCutsALongDescriptionInCharacters(t *testing.T) {
	long := strings.Repeat("é", 1500)
	res := importText(t, sqlagent.Options{}, "a.sql", `EXEC sp_add_job @job_name = N'Nightly', @description = N'`+long+`'
EXEC sp_add_jobstep @job_name = N'Nightly', @step_name = N'run', @command = N'SELECT 1'
EXEC sp_add_jobserver @job_name = N'Nightly', @server_name = N'SQL01'
`)
	if len(res.Jobs) != 1 {
		t.Fatalf("jobs %+v; findings %v", res.Jobs, res.Findings)
	}
	if d := res.Jobs[0].Description; d != strings.Repeat("é", muster.MaxDescriptionLen) {
		t.Errorf("description of %d characters, want the first %d of the script's", utf8.RuneCountInString(d), muster.MaxDescriptionLen)
	}
	if err := res.Jobs[0].Validate(); err != nil {
		t.Errorf("the job imported: %v", err)
	}
}
