// Package sqlagent reads SQL Server Agent job scripts, the T-SQL batches of
// msdb procedure calls that SSMS ("Script Job as → CREATE To"), dbatools'
// Export-DbaScript and hand-written deployment scripts hold, and maps what
// they define onto muster: jobs with their steps, flow, retries, schedules,
// targets and groups, the operators they notify and the alerts that notify
// them.
//
// It is pure: text in, a Result out. It runs nothing, connects to nothing
// and reads no files; the caller gives it the scripts' bytes.
//
// # Reading T-SQL
//
// A script is read the way sqlcmd and SSMS read it: batches separated by a
// GO line; 'strings' and N'strings' with doubled quotes; -- and nested /* */
// comments; [bracketed] and "quoted" identifiers. Only what defines jobs is
// interpreted: EXEC (or EXECUTE) of the msdb procedures, with or without
// msdb.dbo. and EXEC @ReturnCode =, or named without EXEC as the first
// statement of a batch, as T-SQL allows; parameters named in any order or given
// by position; variables set by DECLARE, SET or SELECT to a constant, bound
// to a job by @job_id = @jobId OUTPUT or looked up by name in sysjobs. The
// transaction boilerplate (BEGIN TRANSACTION, IF (@@ERROR <> 0 …) GOTO
// QuitWithRollback, COMMIT) and IF NOT EXISTS guards are read past: every
// call counts, as it does when the script runs on a fresh msdb. Variables
// live until the end of their batch, as in SQL Server.
//
// A deployment script written for sqlcmd sets its variables with :setvar
// and uses them as $(NAME); they are replaced first, as sqlcmd replaces
// them. An :r line, which includes another file, is reported, not followed.
//
// # What carries over
//
// The procedures read are sp_add_job, sp_update_job, sp_delete_job,
// sp_add_jobstep, sp_update_jobstep, sp_delete_jobstep, sp_add_jobschedule,
// sp_update_jobschedule, sp_delete_jobschedule, sp_add_schedule,
// sp_update_schedule, sp_attach_schedule, sp_detach_schedule,
// sp_delete_schedule, sp_add_jobserver, sp_delete_jobserver,
// sp_apply_job_to_targets, sp_remove_job_from_targets, sp_add_category,
// sp_add_operator, sp_add_targetservergroup and sp_add_targetsvrgrp_member.
// Each does what msdb's procedure of that name does, down to how adding or
// deleting a step renumbers the steps after it and the references to them,
// and how changing a schedule several jobs share changes it for all of
// them; a call msdb would refuse is reported and changes nothing. What has no equivalent in muster is reported
// as a Finding, naming the file, line, job, step or schedule and the
// reason; the rest still imports. A job with a step that cannot run in
// muster (SSIS, Analysis Services, replication, ActiveX scripting) is left
// out whole, since running the other steps without it could do harm.
package sqlagent
