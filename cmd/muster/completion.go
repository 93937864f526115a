package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/musterhq/muster/internal/httpapi"
)

// nameKind is a kind of name the master holds, which the shells'
// completion offers.
type nameKind int

const (
	jobNames nameKind = iota + 1
	targetNames
	groupNames
	operatorNames
	alertNames
)

// argNames are the names each command's arguments take, in order; with
// more, the last kind goes on for every further argument.
type argNames struct {
	kinds []nameKind
	more  bool
}

// completedArgs gives, by command path, the names a command's arguments
// complete with.
var completedArgs = map[string]argNames{
	"muster job show":        {kinds: []nameKind{jobNames}},
	"muster job start":       {kinds: []nameKind{jobNames}},
	"muster job stop":        {kinds: []nameKind{jobNames}},
	"muster job delete":      {kinds: []nameKind{jobNames}},
	"muster job enable":      {kinds: []nameKind{jobNames}},
	"muster job disable":     {kinds: []nameKind{jobNames}},
	"muster job history":     {kinds: []nameKind{jobNames}},
	"muster rollout list":    {kinds: []nameKind{jobNames}},
	"muster export":          {kinds: []nameKind{jobNames}, more: true},
	"muster target show":     {kinds: []nameKind{targetNames}},
	"muster target set":      {kinds: []nameKind{targetNames}},
	"muster target poll":     {kinds: []nameKind{targetNames}},
	"muster target delete":   {kinds: []nameKind{targetNames}},
	"muster target pause":    {kinds: []nameKind{targetNames}, more: true},
	"muster target resume":   {kinds: []nameKind{targetNames}, more: true},
	"muster target resync":   {kinds: []nameKind{targetNames}, more: true},
	"muster group add":       {kinds: []nameKind{groupNames, targetNames}, more: true},
	"muster group remove":    {kinds: []nameKind{groupNames, targetNames}, more: true},
	"muster group delete":    {kinds: []nameKind{groupNames}},
	"muster group rename":    {kinds: []nameKind{groupNames}},
	"muster operator update": {kinds: []nameKind{operatorNames}},
	"muster operator delete": {kinds: []nameKind{operatorNames}},
	"muster alert delete":    {kinds: []nameKind{alertNames}},
	"muster alert enable":    {kinds: []nameKind{alertNames}},
	"muster alert disable":   {kinds: []nameKind{alertNames}},
}

// completedFlags gives, by flag name, the names a flag of a command that
// talks to the master completes with: each names something that exists.
var completedFlags = map[string]nameKind{
	"job":      jobNames,
	"target":   targetNames,
	"group":    groupNames,
	"notify":   operatorNames,
	"operator": operatorNames,
	"alert":    alertNames,
}

// addCompletions makes the shells' completion offer, under root, the
// master's names for the arguments and flags that take them, and the
// values of -o and --role.
func addCompletions(root *cobra.Command) {
	for _, cmd := range root.Commands() {
		addCompletions(cmd)
		if cmd.Flag("addr") == nil {
			continue // a daemon or a local command: its arguments are files
		}
		if spec, ok := completedArgs[cmd.CommandPath()]; ok {
			cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
				i := len(args)
				if i >= len(spec.kinds) {
					if !spec.more {
						return nil, cobra.ShellCompDirectiveNoFileComp
					}
					i = len(spec.kinds) - 1
				}
				return masterNames(cmd, spec.kinds[i], prefix), cobra.ShellCompDirectiveNoFileComp
			}
		}
		for flag, kind := range completedFlags {
			if cmd.Flags().Lookup(flag) == nil || cmd.CommandPath() == "muster token create" { // a name to be
				continue
			}
			cmd.RegisterFlagCompletionFunc(flag, func(cmd *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
				return masterNames(cmd, kind, prefix), cobra.ShellCompDirectiveNoFileComp
			})
		}
		if f := cmd.Flags().Lookup("output"); f != nil {
			values := []string{outputTable, outputJSON, outputYAML}
			if f.DefValue == outputYAML { // muster export
				values = []string{outputYAML, outputJSON}
			}
			cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
		}
		if cmd.Flags().Lookup("role") != nil {
			cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions([]string{"admin", "operator", "reader"}, cobra.ShellCompDirectiveNoFileComp))
		}
	}
}

// completionWait bounds how long completion waits for the master: a shell
// waiting on a tab key must not hang on a master that does not answer.
const completionWait = 3 * time.Second

// masterNames returns the names of a kind that start with prefix, read from
// the master the command's flags and the environment point at; none if it
// cannot be read.
func masterNames(cmd *cobra.Command, kind nameKind, prefix string) []string {
	cf := clientFlags{}
	if f := cmd.Flag("addr"); f != nil {
		cf.addr = f.Value.String()
	}
	if f := cmd.Flag("token"); f != nil {
		cf.token = f.Value.String()
	}
	if f := cmd.Flag("cacert"); f != nil {
		cf.cacert = f.Value.String()
	}
	c, err := cf.client()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completionWait)
	defer cancel()
	names, err := listNames(ctx, c, kind)
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// listNames reads the names of a kind from the master.
func listNames(ctx context.Context, c *httpapi.Client, kind nameKind) ([]string, error) {
	var names []string
	switch kind {
	case jobNames:
		jobs, err := c.Jobs(ctx)
		for _, j := range jobs {
			names = append(names, j.Name)
		}
		return names, err
	case targetNames:
		targets, err := c.Targets(ctx, "")
		for _, t := range targets {
			names = append(names, t.Name)
		}
		return names, err
	case groupNames:
		groups, err := c.Groups(ctx)
		for _, g := range groups {
			names = append(names, g.Name)
		}
		return names, err
	case operatorNames:
		ops, err := c.Operators(ctx)
		for _, o := range ops {
			names = append(names, o.Name)
		}
		return names, err
	case alertNames:
		alerts, err := c.Alerts(ctx)
		for _, a := range alerts {
			names = append(names, a.Name)
		}
		return names, err
	}
	return nil, nil
}
