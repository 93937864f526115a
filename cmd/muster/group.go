package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/httpapi"
)

func newGroupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "Manage target groups",
		Long: `Target groups are named sets of targets. A job that names a group in its
groups: runs on every member, live: adding a target to the group sends it the
group's jobs at once, removing it deletes them there (unless the job still
runs there by name or through another group, where it is sent the job again
if an override of the group changed it there). A target may be in several
groups. Group names hold letters, digits, '.', '-' and '_'.`,
		Example: `  muster group create web
  muster group add web web1 web2
  muster group list`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(
		groupAction("create NAME", "Create an empty group", cobra.ExactArgs(1), func(cmd *cobra.Command, c *httpapi.Client, args []string) error {
			if err := c.CreateGroup(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created group %s\n", args[0])
			return nil
		}),
		groupAction("delete NAME", "Delete a group no job and no active API key uses", cobra.ExactArgs(1), func(cmd *cobra.Command, c *httpapi.Client, args []string) error {
			if err := c.DeleteGroup(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted group %s\n", args[0])
			return nil
		}),
		groupAction("rename NAME NEW-NAME", "Rename a group (jobs keep targeting it)", cobra.ExactArgs(2), func(cmd *cobra.Command, c *httpapi.Client, args []string) error {
			if err := c.RenameGroup(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "renamed group %s to %s; update job files that name it\n", args[0], args[1])
			return nil
		}),
		groupAction("add GROUP TARGET...", "Add targets to a group; they receive its jobs", cobra.MinimumNArgs(2), groupMembers(false)),
		groupAction("remove GROUP TARGET...", "Remove targets from a group; its jobs are deleted there", cobra.MinimumNArgs(2), groupMembers(true)),
		newGroupListCmd(),
	)
	return cmd
}

// groupAction builds a group subcommand that calls the API once.
func groupAction(use, short string, args cobra.PositionalArgs, run func(*cobra.Command, *httpapi.Client, []string) error) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			return run(cmd, c, args)
		},
	}
	cf.register(cmd)
	return cmd
}

func groupMembers(remove bool) func(*cobra.Command, *httpapi.Client, []string) error {
	return func(cmd *cobra.Command, c *httpapi.Client, args []string) error {
		changes, err := c.GroupMembers(cmd.Context(), args[0], args[1:], remove)
		if err != nil {
			return err
		}
		verb := map[bool]string{false: "added %s to group %s", true: "removed %s from group %s"}[remove]
		fmt.Fprintf(cmd.OutOrStdout(), verb+"\n", strings.Join(args[1:], ", "), args[0])
		for _, ch := range changes {
			fmt.Fprintf(cmd.OutOrStdout(), "  job %s: %s\n", ch.Job, strings.Join(ch.Instructions, ", "))
		}
		return nil
	}
}

func newGroupListCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List groups, their members and the jobs that name them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return query(cmd, &cf, func(c *httpapi.Client) ([]muster.Group, error) {
				return c.Groups(cmd.Context())
			}, func(w io.Writer, groups []muster.Group) error {
				t := newTable(w, "GROUP", "TARGETS", "JOBS")
				for _, g := range groups {
					t.row(g.Name, dash(strings.Join(g.Targets, ", ")), dash(strings.Join(g.Jobs, ", ")))
				}
				return t.flush()
			})
		},
	}
	cf.register(cmd)
	cf.registerOutput(cmd)
	return cmd
}
