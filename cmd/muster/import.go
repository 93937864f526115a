package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/jobfile"
	"github.com/musterhq/muster/internal/sqlagent"
)

func newImportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Import jobs defined for another scheduler",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newImportSQLAgentCmd())
	return cmd
}

func newImportSQLAgentCmd() *cobra.Command {
	var cf clientFlags
	var dryRun, strict bool
	var connections, targets, variables []string
	cmd := &cobra.Command{
		Use:   "sqlagent FILE... [--dry-run] [-o table|json|yaml] [--connection-map DB=CONNECTION]... [--target-map SERVER=TARGET]... [--var NAME=VALUE]...",
		Short: "Import SQL Server Agent job scripts (SSMS, dbatools, hand-written T-SQL)",
		Long: `Read T-SQL scripts of SQL Server Agent jobs — SSMS's "Script Job as > CREATE
To", dbatools' Export-DbaScript, hand-written deployment scripts ("-" reads
standard input) — and apply the jobs they define, with their steps, flow,
retries, schedules, targets and groups.

Steps: CmdExec becomes a shell step; TSQL a sql step on the target connection
its database maps to with --connection-map DB=CONNECTION (by default, the
connection named as the database); PowerShell a shell step that runs the
script with pwsh. Servers (sp_add_jobserver, sp_apply_job_to_targets) become
targets, renamed with --target-map SERVER=TARGET or else lower-cased; the
server the script was written for, (local), has to be mapped, since muster
has no local jobs. Names become muster names: spaces and other characters
become '-'. A script written for sqlcmd has its $(NAME) variables replaced:
those its :setvar lines set, and those given with --var NAME=VALUE, as
sqlcmd -v gives them.

What has no equivalent (SSIS, Analysis Services and replication steps,
"when the computer is idle" schedules, proxies named by number, pager
notifications) is reported with its file, line, job, step and the reason;
the rest still imports. A job with a step muster cannot run is left out
whole.

With --dry-run nothing is applied and the master is not needed: the jobs are
printed as a job file (with -o yaml, only the job file, and the findings on
standard error). Without it, every target and group the jobs name must
exist; the operators the jobs notify are created if missing, the jobs are
applied as one change (all or nothing), then the alerts that carry their
e-mail notifications are created.

With --strict the import applies nothing, and exits 1, when anything was
left out: a whole job, or a part of one (a schedule, a notification, a
call of the script). A dry run with --strict prints its plan and exits 1
too, so that a migration script stops before it moves on.`,
		Example: `  muster import sqlagent jobs.sql --dry-run
  muster import sqlagent jobs.sql --dry-run -o yaml > jobs.yaml
  muster import sqlagent jobs.sql --target-map SQL01=db1 --target-map '(local)=db1' \
      --connection-map DBA=dba-tools
  muster import sqlagent jobs.sql --strict --target-map SQL01=db1`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := cf.format()
			if err != nil {
				return err
			}
			var opts sqlagent.Options
			if opts.Connections, err = parseMap("--connection-map", "DB=CONNECTION", connections); err != nil {
				return err
			}
			if opts.Targets, err = parseMap("--target-map", "SERVER=TARGET", targets); err != nil {
				return err
			}
			if opts.Variables, err = parseMap("--var", "NAME=VALUE", variables); err != nil {
				return err
			}
			scripts, err := readScripts(cmd.InOrStdin(), args)
			if err != nil {
				return err
			}
			res, err := sqlagent.Import(scripts, opts)
			if err != nil {
				return err
			}
			out := importOutput{DryRun: dryRun, Result: res}
			var refused error
			if strict {
				refused = leftOutRefusal(res)
			}
			if dryRun {
				if err := printImportPlan(cmd, format, out, refused != nil); err != nil {
					return err
				}
				return refused
			}
			if refused != nil {
				printFindings(cmd.ErrOrStderr(), res)
				return refused
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			if format == outputTable {
				printFindings(cmd.OutOrStdout(), res)
			}
			if err := applyImport(cmd.Context(), c, &out); err != nil {
				return err
			}
			return printAs(cmd.OutOrStdout(), format, out, func(w io.Writer) error {
				printImported(w, out)
				return nil
			})
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	f := cmd.Flags()
	f.BoolVar(&dryRun, "dry-run", false, "print what would be applied; apply nothing and contact no master")
	f.BoolVar(&strict, "strict", false, "apply nothing, and exit 1, if any job or part of one is left out")
	f.StringArrayVar(&connections, "connection-map", nil, "run the T-SQL steps of database DB on target connection CONNECTION, DB=CONNECTION (repeatable)")
	f.StringArrayVar(&targets, "target-map", nil, "run what SQL Server ran on SERVER on target TARGET, SERVER=TARGET (repeatable; (local) is the server the script was written for)")
	f.StringArrayVar(&variables, "var", nil, "replace the sqlcmd variable $(NAME) with VALUE, NAME=VALUE, as sqlcmd -v does (repeatable)")
	return cmd
}

// importOutput is what import prints with -o json or -o yaml: what the
// scripts define and, when applied, what was done.
type importOutput struct {
	DryRun bool `json:"dry_run"`
	*sqlagent.Result
	// Applied, when not a dry run.
	OperatorsCreated []string            `json:"operators_created,omitempty"`
	Apply            *muster.ApplyResult `json:"apply,omitempty"`
	AlertsCreated    []string            `json:"alerts_created,omitempty"`
}

// leftOutRefusal is --strict's error when the scripts did not carry over
// whole: how many jobs and parts of jobs were left out, each listed in the
// findings printed before it.
func leftOutRefusal(res *sqlagent.Result) error {
	jobs, parts := 0, 0
	for _, f := range res.Findings {
		switch f.Level {
		case sqlagent.NotImported:
			jobs++
		case sqlagent.LeftOut:
			parts++
		}
	}
	if jobs+parts == 0 {
		return nil
	}
	return muster.Errorf(muster.EPRECONDITION, "--strict: %d job(s) not imported and %d part(s) of jobs left out, each listed above; nothing was applied", jobs, parts)
}

// parseMap reads repeated KEY=VALUE flags.
func parseMap(flag, form string, pairs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, muster.Errorf(muster.EINVALID, "%s: %q is not %s", flag, p, form)
		}
		m[k] = v
	}
	return m, nil
}

// readScripts reads the script files, "-" from in, each within
// sqlagent.MaxScriptSize.
func readScripts(in io.Reader, paths []string) ([]sqlagent.Script, error) {
	var scripts []sqlagent.Script
	for _, path := range paths {
		s, err := readScript(in, path)
		if err != nil {
			return nil, err
		}
		scripts = append(scripts, s)
	}
	return scripts, nil
}

func readScript(in io.Reader, path string) (sqlagent.Script, error) {
	r, name := in, "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return sqlagent.Script{}, err
		}
		defer f.Close()
		r, name = f, path
	}
	b, err := io.ReadAll(io.LimitReader(r, sqlagent.MaxScriptSize+1))
	if err != nil {
		return sqlagent.Script{}, fmt.Errorf("%s: %w", name, err)
	}
	return sqlagent.Script{Name: name, Text: b}, nil
}

// printImportPlan prints a dry run: the jobs as a job file, and what else
// the import would do in comments, so that the whole is a job file too.
// refused is whether --strict refuses the import for what was left out.
func printImportPlan(cmd *cobra.Command, format string, out importOutput, refused bool) error {
	w := cmd.OutOrStdout()
	switch format {
	case outputJSON:
		return printJSON(w, out)
	case outputYAML:
		// Standard output is a job file muster apply takes; the rest
		// goes to standard error, for a person.
		printFindings(cmd.ErrOrStderr(), out.Result)
		printPlanned(cmd.ErrOrStderr(), out.Result)
		return jobfile.Write(w, out.Jobs)
	}
	printFindings(w, out.Result)
	if err := jobfile.Write(w, out.Jobs); err != nil {
		return err
	}
	printPlanned(w, out.Result)
	if len(out.Unmapped) > 0 {
		// The import refuses the whole change while a server has no
		// target, so that no job runs on fewer servers than it did.
		fmt.Fprintln(w, "# dry run: nothing applied; the import would apply nothing until every server above has a --target-map")
		return nil
	}
	if refused {
		fmt.Fprintln(w, "# dry run: nothing applied; with --strict the import would apply nothing, since what is listed above was left out")
		return nil
	}
	operators := 0
	for _, o := range out.Operators {
		if o.Email != "" {
			operators++
		}
	}
	fmt.Fprintf(w, "# dry run: nothing applied; %d job(s), %d operator(s) and %d alert(s) would be applied\n",
		len(out.Jobs), operators, len(out.Alerts))
	return nil
}

// printFindings lists what did not carry over as it was.
func printFindings(w io.Writer, res *sqlagent.Result) {
	if len(res.Findings) == 0 {
		return
	}
	fmt.Fprintln(w, "# What did not carry over as it was:")
	for _, f := range res.Findings {
		fmt.Fprintf(w, "#   %s: %s\n", strings.ReplaceAll(f.Level, "_", " "), f)
	}
}

// printPlanned lists what an import does besides applying the jobs.
func printPlanned(w io.Writer, res *sqlagent.Result) {
	for _, u := range res.Unmapped {
		fmt.Fprintf(w, "# needs --target-map: %s (jobs %s): %s\n", u.Server, strings.Join(u.Jobs, ", "), u.Reason)
	}
	for _, o := range res.Operators {
		// The import creates only the operators the scripts give an
		// address; it refuses to go on without the others.
		if o.Email == "" {
			fmt.Fprintf(w, "# operator %s: the scripts give it no address, so the master must have it already\n", o.Name)
			continue
		}
		fmt.Fprintf(w, "# operator %s (e-mail %s), created if the master has none of that name\n", o.Name, o.Email)
	}
	for _, a := range res.Alerts {
		fmt.Fprintf(w, "# alert %s: %s of job %s notifies %s\n", a.Name, a.Event, a.Job, strings.Join(a.Notify, ", "))
	}
}

// printImported says what an import did.
func printImported(w io.Writer, out importOutput) {
	for _, o := range out.OperatorsCreated {
		fmt.Fprintf(w, "created operator %s\n", o)
	}
	if out.Apply != nil {
		printApply(w, *out.Apply, false)
	}
	for _, a := range out.AlertsCreated {
		fmt.Fprintf(w, "created alert %s\n", a)
	}
}

// applyImport applies an import: it checks that the master has every
// target and group the jobs name, and that no alert of the same name says
// otherwise, before changing anything; then it creates the missing
// operators, applies the jobs in one change and creates the alerts.
func applyImport(ctx context.Context, c *httpapi.Client, out *importOutput) error {
	res := out.Result
	if len(res.Unmapped) > 0 {
		var names []string
		for _, u := range res.Unmapped {
			names = append(names, fmt.Sprintf("%s (jobs %s)", u.Server, strings.Join(u.Jobs, ", ")))
		}
		return muster.Errorf(muster.EINVALID, "no target for %s: name one with --target-map SERVER=TARGET; nothing was applied", strings.Join(names, ", "))
	}
	if len(res.Jobs) == 0 {
		return muster.Errorf(muster.EINVALID, "the scripts define no job that carries over; nothing was applied")
	}
	if err := checkPlacement(ctx, c, res.Jobs); err != nil {
		return err
	}
	operators, err := c.Operators(ctx)
	if err != nil {
		return err
	}
	alerts, err := c.Alerts(ctx)
	if err != nil {
		return err
	}
	var newAlerts []sqlagent.Alert
	for _, a := range res.Alerts {
		i := slices.IndexFunc(alerts, func(x muster.Alert) bool { return x.Name == a.Name })
		switch {
		case i < 0:
			newAlerts = append(newAlerts, a)
		case alerts[i].Event != a.Event || alerts[i].Job != a.Job || !slices.Equal(alerts[i].Notify, a.Notify):
			return muster.Errorf(muster.ECONFLICT, "alert %q already exists and says something else (%s of job %q notifies %s); delete or rename it, then import again; nothing was applied",
				a.Name, alerts[i].Event, alerts[i].Job, strings.Join(alerts[i].Notify, ", "))
		}
	}
	var newOperators []sqlagent.Operator
	var noAddress []string
	for _, o := range res.Operators {
		switch {
		case slices.ContainsFunc(operators, func(x muster.Operator) bool { return x.Name == o.Name }):
		case o.Email == "":
			noAddress = append(noAddress, o.Name)
		default:
			newOperators = append(newOperators, o)
		}
	}
	if len(noAddress) > 0 {
		return muster.Errorf(muster.EINVALID, "the scripts give no address for operator %s, and the master has none of that name: create it first (muster operator create NAME --email ADDRESS); nothing was applied",
			strings.Join(noAddress, ", "))
	}
	// The master checks the jobs before anything is created for them.
	if _, err := c.Apply(ctx, httpapi.ApplyRequest{Jobs: res.Jobs, DryRun: true}); err != nil {
		return err
	}
	for _, o := range newOperators {
		if _, err := c.CreateOperator(ctx, httpapi.OperatorRequest{Name: o.Name, Email: o.Email}); err != nil {
			return fmt.Errorf("operator %s: %w", o.Name, err)
		}
		out.OperatorsCreated = append(out.OperatorsCreated, o.Name)
	}
	applied, err := c.Apply(ctx, httpapi.ApplyRequest{Jobs: res.Jobs})
	if err != nil {
		return err
	}
	out.Apply = &applied
	for _, a := range newAlerts {
		if _, err := c.CreateAlert(ctx, httpapi.AlertRequest{Name: a.Name, Event: a.Event, Job: a.Job, Notify: a.Notify}); err != nil {
			return fmt.Errorf("the jobs are applied, but alert %s was not created: %w", a.Name, err)
		}
		out.AlertsCreated = append(out.AlertsCreated, a.Name)
	}
	return nil
}

// checkPlacement refuses, naming them all, the targets and groups the jobs
// name that the master does not have.
func checkPlacement(ctx context.Context, c *httpapi.Client, jobs []muster.Job) error {
	targets, err := c.Targets(ctx, "")
	if err != nil {
		return err
	}
	groups, err := c.Groups(ctx)
	if err != nil {
		return err
	}
	var missing []string
	seen := map[string]bool{}
	for _, j := range jobs {
		for _, t := range j.Targets {
			ok := slices.ContainsFunc(targets, func(x muster.Target) bool { return x.Name == t && !slices.Contains(x.Flags, muster.FlagDeleted) })
			if !ok && !seen["target "+t] {
				seen["target "+t] = true
				missing = append(missing, fmt.Sprintf("target %s (job %s)", t, j.Name))
			}
		}
		for _, g := range j.Groups {
			ok := slices.ContainsFunc(groups, func(x muster.Group) bool { return x.Name == g })
			if !ok && !seen["group "+g] {
				seen["group "+g] = true
				missing = append(missing, fmt.Sprintf("group %s (job %s)", g, j.Name))
			}
		}
	}
	if len(missing) > 0 {
		return muster.Errorf(muster.ENOTFOUND, "the master has no %s: enlist the targets (or map the servers to targets with --target-map) and create the groups (muster group create), then import again; nothing was applied",
			strings.Join(missing, ", "))
	}
	return nil
}
