package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// explainArgs makes every command under root that checks its arguments
// say, when they are too few or too many, which it takes (by the names its
// usage line gives them) and what it was given, with its usage: cobra's own
// "accepts 1 arg(s), received 0" names neither the argument nor the fix.
// Required flags left out are named likewise, as they are typed, where
// cobra said `required flag(s) "file" not set`: cobra checks the
// arguments first, so the check goes with theirs.
func explainArgs(root *cobra.Command) {
	for _, cmd := range root.Commands() {
		explainArgs(cmd)
		check := cmd.Args
		if check == nil {
			if cmd.HasSubCommands() {
				continue // cobra's own check names a mistyped subcommand
			}
			check = cobra.ArbitraryArgs
		}
		cmd.Args = func(cmd *cobra.Command, args []string) error {
			if check(cmd, args) != nil {
				return argsError(cmd, args)
			}
			return missingFlags(cmd)
		}
	}
}

// missingFlags returns the error naming cmd's required flags that were not
// given, or nil.
func missingFlags(cmd *cobra.Command) error {
	var missing []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if req := f.Annotations[cobra.BashCompOneRequiredFlag]; len(req) == 0 || req[0] != "true" || f.Changed {
			return
		}
		name := "--" + f.Name
		if f.Shorthand != "" {
			name = "-" + f.Shorthand + "/" + name
		}
		missing = append(missing, name)
	})
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%s: %s is required; usage: %s", commandPath(cmd), missing[0], cmd.UseLine())
	}
	return fmt.Errorf("%s: %s and %s are required; usage: %s", commandPath(cmd),
		strings.Join(missing[:len(missing)-1], ", "), missing[len(missing)-1], cmd.UseLine())
}

// commandPath is the command's path without the program's name.
func commandPath(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// argsError says which arguments cmd takes and which it was given.
func argsError(cmd *cobra.Command, args []string) error {
	path := commandPath(cmd)
	want := positional(cmd.Use)
	if len(args) == 0 && want != "" {
		return fmt.Errorf("%s: %s is missing; usage: %s", path, want, cmd.UseLine())
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = strconv.Quote(a)
	}
	list := strings.Join(quoted, ", ")
	if want == "" && cmd.HasSubCommands() {
		// A command that is also a group (muster target, muster
		// downloadlist): the word is most likely a mistyped subcommand.
		return unknownCommand(cmd, args[0])
	}
	if want == "" {
		return fmt.Errorf("%s takes no arguments, not %d (%s); usage: %s", path, len(args), list, cmd.UseLine())
	}
	given := fmt.Sprintf("%d arguments (%s)", len(args), list)
	if len(args) == 1 {
		given = fmt.Sprintf("1 argument (%s)", list)
	}
	return fmt.Errorf("%s takes %s, not %s; usage: %s", path, want, given, cmd.UseLine())
}

// positional returns the arguments a usage line names ("NAME",
// "GROUP TARGET..."): the words after the command's name, up to the first
// option, choice or flag.
func positional(use string) string {
	words := strings.Fields(use)
	var out []string
	for _, w := range words[min(1, len(words)):] {
		if strings.HasPrefix(w, "[") || strings.HasPrefix(w, "-") || w == "|" {
			break
		}
		out = append(out, w)
	}
	return strings.Join(out, " ")
}
