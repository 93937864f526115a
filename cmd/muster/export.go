package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/jobfile"
)

func newExportCmd() *cobra.Command {
	var cf clientFlags
	var category string
	cmd := &cobra.Command{
		Use:   "export [JOB...] [--category C] [-o yaml|json]",
		Short: "Write jobs as a job file that muster apply takes back unchanged",
		Long: `Write the jobs named, or those of a category (any case), or every job, as a
job file: the definitions the master holds, without what it sets itself
(versions) and without the defaults it fills in, so that applying the file
changes nothing. Keep the file in version control and apply it from there.

-o json writes the same file as JSON, which muster apply also reads.`,
		Example: `  muster export > jobs.yaml
  muster export backup reindex
  muster export --category "Database Maintenance" -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			format := cf.output
			if format != outputYAML && format != outputJSON {
				return fmt.Errorf("--output: %q is not yaml or json", format)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			all, err := c.JobsInCategory(cmd.Context(), category)
			if err != nil {
				return err
			}
			if category != "" && len(all) == 0 {
				// Most likely mistyped, and the file, empty, would
				// delete every job if applied with --prune.
				return noSuchCategory(cmd.Context(), c, category)
			}
			jobs := make([]muster.Job, 0, len(all))
			for _, j := range all {
				if len(args) == 0 || slices.Contains(args, j.Name) {
					jobs = append(jobs, j.Job)
				}
			}
			var missing []string
			for _, name := range args {
				if !slices.ContainsFunc(jobs, func(j muster.Job) bool { return j.Name == name }) {
					missing = append(missing, fmt.Sprintf("%q", name))
				}
			}
			if len(missing) > 0 {
				where := ""
				if category != "" {
					where = fmt.Sprintf(" in category %q", category)
				}
				return muster.Errorf(muster.ENOTFOUND, "no job named %s%s", strings.Join(missing, ", "), where)
			}
			if format == outputJSON {
				return jobfile.WriteJSON(cmd.OutOrStdout(), jobs)
			}
			return jobfile.Write(cmd.OutOrStdout(), jobs)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVarP(&cf.output, "output", "o", outputYAML, "output format: yaml or json")
	cmd.Flags().StringVar(&category, "category", "", "only the jobs of this category")
	return cmd
}

// noSuchCategory is the error for a category no job has, naming those
// the jobs have.
func noSuchCategory(ctx context.Context, c *httpapi.Client, category string) error {
	all, err := c.JobsInCategory(ctx, "")
	if err != nil {
		return err
	}
	var names []string
	for _, j := range all {
		if j.Category != "" && !slices.Contains(names, strconv.Quote(j.Category)) {
			names = append(names, strconv.Quote(j.Category))
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		return muster.Errorf(muster.ENOTFOUND, "--category: no job is in category %q; no job has a category", category)
	}
	return muster.Errorf(muster.ENOTFOUND, "--category: no job is in category %q; the categories are %s", category, strings.Join(names, ", "))
}
