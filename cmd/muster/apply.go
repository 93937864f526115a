package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/jobfile"
)

func newApplyCmd() *cobra.Command {
	var cf clientFlags
	var file string
	var req catalog.ApplyRequest
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--dry-run] [--prune]",
		Short: "Create or update jobs from a file",
		Long: `Create or update the jobs in FILE (YAML; "-" reads standard input), by name.

The master applies the whole file or nothing, and posts each affected target
the instructions it needs in the same transaction: INSERT for a new or changed
job, UPDATE when only enabled or description changed, DELETE where a job no
longer runs. A job that has not changed posts nothing. Unknown keys, unknown
targets and invalid schedules are errors that name the job and the rule.

  jobs:
    - name: hello
      description: say hello
      enabled: true                # default
      targets: [web1, web2]
      steps:
        - name: greet
          shell: echo "hello from $MUSTER_TARGET"   # run by /bin/sh -c
        - name: list
          command: [ls, -l, /tmp]                   # argv, no shell
      schedules:
        - cron: "0 2 * * *"        # 5 fields, or 6 with seconds first

With --dry-run nothing changes and the differences are printed. With --prune,
jobs on the master that are not in FILE are deleted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := cf.format()
			if err != nil {
				return err
			}
			var r io.Reader = cmd.InOrStdin()
			name := "stdin"
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				r, name = f, file
			}
			if req.Jobs, err = jobfile.Read(name, r); err != nil {
				return err
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			res, err := c.Apply(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printAs(cmd.OutOrStdout(), format, res, func(w io.Writer) error {
				printApply(w, res)
				return nil
			})
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "the job file (required)")
	f.BoolVar(&req.DryRun, "dry-run", false, "show what would change, change nothing")
	f.BoolVar(&req.Prune, "prune", false, "delete jobs that are not in the file")
	cmd.MarkFlagRequired("file")
	return cmd
}

var actionMarks = map[string]string{
	catalog.ActionCreate: "+", catalog.ActionUpdate: "~", catalog.ActionDelete: "-", catalog.ActionUnchanged: "=",
}

func printApply(w io.Writer, res catalog.ApplyResult) {
	for _, c := range res.Changes {
		line := fmt.Sprintf("%s %s", actionMarks[c.Action], c.Job)
		switch c.Action {
		case catalog.ActionUnchanged:
			line += ": unchanged"
		case catalog.ActionDelete:
			line += ": deleted"
		default:
			line += fmt.Sprintf(" (version %d)", c.Version)
		}
		if len(c.Instructions) > 0 {
			line += ": " + strings.Join(c.Instructions, ", ")
		}
		fmt.Fprintln(w, line)
		if res.DryRun && c.Action != catalog.ActionUnchanged {
			for _, d := range c.Diff {
				fmt.Fprintln(w, "    "+d)
			}
		}
	}
	if res.DryRun {
		fmt.Fprintf(w, "dry run: nothing changed; %d instruction(s) would be posted\n", res.Posted)
		return
	}
	fmt.Fprintf(w, "%d instruction(s) posted\n", res.Posted)
}
