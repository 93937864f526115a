/*
   Deployment script for the reporting jobs, kept in the ops repository.
   /* Nested comments are T-SQL: this one ends here */ and this text is
   still inside the outer comment: GO is not a batch separator here.
GO
*/
USE msdb;
GO

-- Operators and categories first.
EXECUTE dbo.sp_add_operator @name = N'Reporting on-call', @email_address = N'reporting-oncall@example.com';
EXEC sp_add_operator N'Night shift', 1, N'night@example.com; night-lead@example.com', N'5551234@pager.example.com';
EXEC msdb..sp_add_category @name = N'Reports';
GO

-- One schedule, shared by both jobs: the first weekday of every month at 06:00.
DECLARE @month_start INT;
EXEC msdb.dbo.sp_add_schedule
    @schedule_name = N'Month start',
    @freq_type = 32,               -- monthly, relative
    @freq_interval = 9,            -- weekday
    @freq_relative_interval = 1,   -- first
    @freq_recurrence_factor = 1,
    @active_start_time = 060000,
    @schedule_id = @month_start OUTPUT;

DECLARE @job sysname = N'Monthly sales report', @db sysname;
SET @db = N'Sales';

EXEC msdb.dbo.sp_add_job @job_name = @job, @description = N'Sales figures for the month, mailed to finance',
    @category_name = N'Reports', @notify_level_email = 3, @notify_email_operator_name = N'Reporting on-call';
EXEC msdb.dbo.sp_add_jobstep @job_name = @job, @step_name = N'Build', @database_name = @db,
    @command = N'EXEC report.BuildMonthlySales @Month = NULL;', @on_success_action = 3;
EXEC msdb.dbo.sp_add_jobstep @job_name = @job, @step_name = N'Mail', @subsystem = N'CmdExec',
    @command = N'/opt/reports/bin/mail-report --report monthly-sales --to finance@example.com',
    @retry_attempts = 1, @retry_interval = 10;
-- Step 1 was forgotten: insert it before the others, which move down.
EXEC msdb.dbo.sp_add_jobstep @job_name = @job, @step_id = 1, @step_name = N'Wait for the warehouse load',
    @subsystem = N'CMDEXEC', @command = N'/opt/reports/bin/wait-for-load --max 2h',
    @on_success_action = 3, @on_fail_action = 4, @on_fail_step_id = 3;
EXEC msdb.dbo.sp_attach_schedule @job_name = @job, @schedule_id = @month_start;
EXEC msdb.dbo.sp_apply_job_to_targets @job_name = @job, @target_servers = N'REPORT01, REPORT02', @target_server_groups = N'Finance';
GO

EXEC msdb.dbo.sp_add_job N'Quarter close', 0, N'Quarter-end ledger close';
EXEC msdb.dbo.sp_add_jobstep @job_name = N'Quarter close', @step_name = N'Check', @subsystem = N'TSQL',
    @database_name = N'Ledger', @command = N'EXEC close.CheckPeriod', @on_success_action = 3, @on_fail_action = 2;
EXEC msdb.dbo.sp_add_jobstep @job_name = N'Quarter close', @step_name = N'Close', @subsystem = N'TSQL',
    @database_name = N'Ledger', @command = N'EXEC close.ClosePeriod';
EXEC msdb.dbo.sp_add_jobstep @job_name = N'Quarter close', @step_name = N'Recover', @subsystem = N'TSQL',
    @database_name = N'Ledger', @command = N'EXEC close.ReopenPeriod', @on_success_action = 4, @on_success_step_id = 1;
-- Runs from the Close step; Check runs only when Recover sends it there.
EXEC msdb.dbo.sp_update_job @job_name = N'Quarter close', @start_step_id = 2;
EXEC msdb.dbo.sp_attach_schedule @job_name = N'Quarter close', @schedule_name = N'Month start';
EXEC msdb.dbo.sp_add_jobschedule @job_name = N'Quarter close', @name = N'Quarter end', @freq_type = 16,
    @freq_interval = 1, @freq_recurrence_factor = 3, @active_start_date = 20240401, @active_start_time = 220000;
EXEC msdb.dbo.sp_add_jobschedule @job_name = N'Quarter close', @name = N'Audit rerun', @freq_type = 1,
    @active_start_date = 20271231, @active_start_time = 235900;
EXEC msdb.dbo.sp_add_jobschedule @job_name = N'Quarter close', @name = N'After restart', @freq_type = 64;
EXEC msdb.dbo.sp_add_jobschedule @job_name = N'Quarter close', @name = N'Last Friday', @freq_type = 32,
    @freq_interval = 6, @freq_relative_interval = 16, @freq_recurrence_factor = 1, @active_start_time = 183000,
    @active_end_date = 20301231;
EXEC msdb.dbo.sp_add_jobserver @job_name = N'Quarter close', @server_name = N'LEDGER01';
EXEC msdb.dbo.sp_update_job @job_name = N'Quarter close', @notify_level_email = 2, @notify_email_operator_name = N'Night shift';
GO
