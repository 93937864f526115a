package sqlagent

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// procParams lists the parameters of each procedure the import reads, in the
// order the procedure declares them (Microsoft's reference for msdb), so
// that arguments given by position find their names.
func procParams(k string) ([]string, bool) {
	switch k {
	case "sp_add_job":
		return []string{"job_name", "enabled", "description", "start_step_id", "category_name", "category_id",
			"owner_login_name", "notify_level_eventlog", "notify_level_email", "notify_level_netsend", "notify_level_page",
			"notify_email_operator_name", "notify_netsend_operator_name", "notify_page_operator_name", "delete_level",
			"job_id", "originating_server"}, true
	case "sp_update_job":
		return []string{"job_id", "job_name", "new_name", "enabled", "description", "start_step_id", "category_name",
			"owner_login_name", "notify_level_eventlog", "notify_level_email", "notify_level_netsend", "notify_level_page",
			"notify_email_operator_name", "notify_netsend_operator_name", "notify_page_operator_name", "delete_level",
			"automatic_post"}, true
	case "sp_delete_job":
		return []string{"job_id", "job_name", "originating_server", "delete_history", "delete_unused_schedule"}, true
	case "sp_add_jobstep":
		return []string{"job_id", "job_name", "step_id", "step_name", "subsystem", "command", "additional_parameters",
			"cmdexec_success_code", "on_success_action", "on_success_step_id", "on_fail_action", "on_fail_step_id",
			"server", "database_name", "database_user_name", "retry_attempts", "retry_interval", "os_run_priority",
			"output_file_name", "flags", "proxy_id", "proxy_name", "step_uid"}, true
	case "sp_update_jobstep":
		return []string{"job_id", "job_name", "step_id", "step_name", "subsystem", "command", "additional_parameters",
			"cmdexec_success_code", "on_success_action", "on_success_step_id", "on_fail_action", "on_fail_step_id",
			"server", "database_name", "database_user_name", "retry_attempts", "retry_interval", "os_run_priority",
			"output_file_name", "flags", "proxy_id", "proxy_name"}, true
	case "sp_delete_jobstep":
		return []string{"job_id", "job_name", "step_id"}, true
	case "sp_add_jobschedule":
		return []string{"job_id", "job_name", "name", "enabled", "freq_type", "freq_interval", "freq_subday_type",
			"freq_subday_interval", "freq_relative_interval", "freq_recurrence_factor", "active_start_date",
			"active_end_date", "active_start_time", "active_end_time", "schedule_id", "automatic_post", "schedule_uid"}, true
	case "sp_add_schedule":
		return []string{"schedule_name", "enabled", "freq_type", "freq_interval", "freq_subday_type",
			"freq_subday_interval", "freq_relative_interval", "freq_recurrence_factor", "active_start_date",
			"active_end_date", "active_start_time", "active_end_time", "owner_login_name", "schedule_uid", "schedule_id",
			"originating_server"}, true
	case "sp_attach_schedule":
		return []string{"job_id", "job_name", "schedule_id", "schedule_name", "automatic_post"}, true
	case "sp_update_schedule":
		return []string{"schedule_id", "name", "new_name", "enabled", "freq_type", "freq_interval", "freq_subday_type",
			"freq_subday_interval", "freq_relative_interval", "freq_recurrence_factor", "active_start_date",
			"active_end_date", "active_start_time", "active_end_time", "owner_login_name", "automatic_post"}, true
	case "sp_update_jobschedule":
		return []string{"job_id", "job_name", "name", "new_name", "enabled", "freq_type", "freq_interval", "freq_subday_type",
			"freq_subday_interval", "freq_relative_interval", "freq_recurrence_factor", "active_start_date",
			"active_end_date", "active_start_time", "active_end_time", "automatic_post"}, true
	case "sp_detach_schedule":
		return []string{"job_id", "job_name", "schedule_id", "schedule_name", "delete_unused_schedule", "automatic_post"}, true
	case "sp_delete_jobschedule":
		return []string{"job_id", "job_name", "name", "keep_schedule", "automatic_post"}, true
	case "sp_delete_schedule":
		return []string{"schedule_id", "schedule_name", "force_delete", "automatic_post"}, true
	case "sp_add_jobserver":
		return []string{"job_id", "job_name", "server_name", "automatic_post"}, true
	case "sp_delete_jobserver":
		return []string{"job_id", "job_name", "server_name"}, true
	case "sp_apply_job_to_targets":
		return []string{"job_id", "job_name", "target_server_groups", "target_servers", "operation"}, true
	case "sp_remove_job_from_targets":
		return []string{"job_id", "job_name", "target_server_groups", "target_servers"}, true
	case "sp_add_category":
		return []string{"class", "type", "name"}, true
	case "sp_add_operator":
		return []string{"name", "enabled", "email_address", "pager_address", "weekday_pager_start_time",
			"weekday_pager_end_time", "saturday_pager_start_time", "saturday_pager_end_time", "sunday_pager_start_time",
			"sunday_pager_end_time", "pager_days", "netsend_address", "category_name"}, true
	case "sp_add_targetservergroup":
		return []string{"name"}, true
	case "sp_add_targetsvrgrp_member":
		return []string{"group_name", "server_name"}, true
	}
	return nil, false
}

// notCarriedReason says, for SQL Server Agent procedures whose effect has no
// place in a job definition, why they are left out.
func notCarriedReason(k string) (string, bool) {
	switch k {
	case "sp_add_alert":
		return "SQL Server alerts fire on error numbers, severities and performance conditions; muster alerts fire on job and target events (muster alert create)", true
	case "sp_add_notification":
		return "SQL Server alert notifications have no equivalent; muster alerts name the operators they notify (muster alert create)", true
	case "sp_add_proxy":
		return "proxies are defined on each target, in its settings file (proxies:), not on the master", true
	case "sp_grant_proxy_to_subsystem":
		return "proxies are defined on each target, in its settings file (proxies:), not on the master", true
	case "sp_grant_login_to_proxy":
		return "proxies are defined on each target, in its settings file (proxies:), not on the master", true
	case "sp_start_job":
		return "a script that defines jobs does not start them here; start one with muster job start", true
	case "sp_stop_job":
		return "a script that defines jobs does not stop them here; stop one with muster job stop", true
	case "sp_msx_enlist":
		return "targets enlist with muster enlist, run on the target", true
	case "sp_msx_defect":
		return "targets defect with muster defect, run on the target", true
	case "sp_post_msx_operation":
		return "muster posts every change itself; muster post sends the rest", true
	}
	return "", false
}

// bind gives each argument of a call its parameter's name, taking those
// given by position in the procedure's order. It reports each argument the
// procedure does not take.
func bind(c stmt, order []string) (map[string]arg, []string) {
	named := make(map[string]arg, len(c.args))
	var problems []string
	for i, a := range c.args {
		name := a.name
		if name == "" {
			if i >= len(order) {
				problems = append(problems, fmt.Sprintf("%s takes %d parameters; argument %d is one too many", c.proc, len(order), i+1))
				continue
			}
			name = order[i]
		}
		if !slices.Contains(order, name) {
			problems = append(problems, fmt.Sprintf("@%s is not a parameter of %s; it is ignored", name, c.proc))
			continue
		}
		named[name] = a
	}
	return named, problems
}

// number reads an integer literal as T-SQL does: decimal, or 0x
// hexadecimal, with an optional sign; a string holding one converts too.
func number(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	var n int64
	var err error
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		var u uint64
		u, err = strconv.ParseUint(h, 16, 32)
		n = int64(u)
	} else {
		n, err = strconv.ParseInt(s, 10, 32)
	}
	if err != nil {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}
