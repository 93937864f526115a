-- What does not carry over, job by job, and what carries over changed.
USE [msdb]
GO

-- An SSIS step: the whole job stays behind, whatever else it holds.
DECLARE @jobId uniqueidentifier
EXEC msdb.dbo.sp_add_job @job_name = N'Load warehouse', @job_id = @jobId OUTPUT
EXEC msdb.dbo.sp_add_jobstep @job_id = @jobId, @step_name = N'Truncate staging', @subsystem = N'TSQL',
    @database_name = N'Staging', @command = N'TRUNCATE TABLE dbo.Orders', @on_success_action = 3
EXEC msdb.dbo.sp_add_jobstep @job_id = @jobId, @step_name = N'Run package', @subsystem = N'SSIS',
    @command = N'/ISSERVER "\"\SSISDB\ETL\Warehouse\Load.dtsx\"" /SERVER "\"SQL01\""'
EXEC msdb.dbo.sp_add_jobserver @job_id = @jobId, @server_name = N'SQL01'
GO

-- A job run by a proxy named by number only: it would run as the daemon's user.
DECLARE @jobId uniqueidentifier
EXEC msdb.dbo.sp_add_job @job_name = N'Archive exports', @job_id = @jobId OUTPUT
EXEC msdb.dbo.sp_add_jobstep @job_id = @jobId, @step_name = N'Move files', @subsystem = N'CmdExec',
    @command = N'mv /srv/exports/*.csv /srv/archive/', @proxy_id = 3
GO

-- What carries over with findings.
DECLARE @jobId uniqueidentifier, @sql nvarchar(max) = N'EXEC msdb.dbo.sp_add_job @job_name = N''hidden'''
EXEC (@sql)
EXEC msdb.dbo.sp_add_job @job_name = N'Clean-up', @delete_level = 1, @notify_level_email = 1,
    @notify_email_operator_name = N'DBA Team', @notify_level_page = 2, @notify_page_operator_name = N'DBA Team',
    @owner_login_name = N'CONTOSO\sqlagent', @job_id = @jobId OUTPUT
EXEC msdb.dbo.sp_add_jobstep @job_id = @jobId, @step_name = N'Purge', @subsystem = N'PowerShell',
    @command = N'Get-ChildItem -Path "/srv/exports" -Filter *.csv |
    Where-Object { $_.LastWriteTime -lt (Get-Date).AddDays(-30) } |
    Remove-Item', @on_success_action = 3, @proxy_name = N'File Mover',
    @output_file_name = N'C:\Logs\cleanup-$(ESCAPE_NONE(JOBID)).log'
EXEC msdb.dbo.sp_add_jobstep @job_id = @jobId, @step_name = N'Compact', @subsystem = N'CmdExec',
    @command = N'C:\Tools\compact.exe /s:D:\exports', @cmdexec_success_code = 1
EXEC msdb.dbo.sp_add_jobstep @job_id = @jobId, @step_name = N'Shrink log', @database_name = N'Exports',
    @command = N'DBCC SHRINKFILE (Exports_log, 1024)
GO
UPDATE dbo.Maintenance SET LastShrink = SYSDATETIME() WHERE Job = N''$(ESCAPE_SQUOTE(JOBNAME))''',
    @database_user_name = N'maint'
EXEC msdb.dbo.sp_add_jobschedule @job_id = @jobId, @name = N'When idle', @freq_type = 128
EXEC msdb.dbo.sp_add_jobschedule @job_id = @jobId, @name = N'Old nightly', @enabled = 0, @freq_type = 4, @freq_interval = 1
EXEC msdb.dbo.sp_add_jobschedule @job_id = @jobId, @name = N'Overnight', @freq_type = 4, @freq_interval = 1,
    @freq_subday_type = 8, @freq_subday_interval = 3, @active_start_time = 220000, @active_end_time = 50000
EXEC msdb.dbo.sp_add_jobschedule @job_id = @jobId, @name = N'Weekend nights', @freq_type = 8, @freq_interval = 65,
    @freq_recurrence_factor = 1, @freq_subday_type = 4, @freq_subday_interval = 45, @active_start_time = 230000,
    @active_end_time = 13000
EXEC msdb.dbo.sp_add_jobschedule @job_id = @jobId, @name = N'Fortnightly overnight', @freq_type = 8, @freq_interval = 2,
    @freq_recurrence_factor = 2, @freq_subday_type = 8, @freq_subday_interval = 1, @active_start_time = 230000,
    @active_end_time = 20000
EXEC msdb.dbo.sp_add_jobschedule @job_id = @jobId, @name = N'February 30', @freq_type = 16, @freq_interval = 30,
    @freq_recurrence_factor = 12, @active_start_date = 20240201
EXEC msdb.dbo.sp_add_jobserver @job_id = @jobId, @server_name = N'(local)'
EXEC msdb.dbo.sp_add_jobserver @job_id = @jobId, @server_name = N'SQL03\REPORTS'
EXEC msdb.dbo.sp_add_jobserver @job_id = @jobId, @server_name = N'SQL04\ARCHIVE'
EXEC msdb.dbo.sp_add_alert @name = N'Severity 17', @severity = 17
EXEC msdb.dbo.sp_start_job @job_name = N'Clean-up'
EXEC msdb.dbo.sp_add_targetservergroup @name = N'Archive servers'
EXEC msdb.dbo.sp_add_targetsvrgrp_member @group_name = N'Archive servers', @server_name = N'SQL03\REPORTS'
EXEC msdb.dbo.sp_add_jobstep @job_name = N'Nonexistent', @step_name = N'Lost', @command = N'SELECT 1'
GO
