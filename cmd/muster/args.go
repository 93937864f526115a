package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// explainArgs makes every command under root that checks its arguments
// say, when they are too few or too many, which it takes (by the names its
// usage line gives them) and what it was given, with its usage: cobra's own
// "accepts 1 arg(s), received 0" names neither the argument nor the fix.
func explainArgs(root *cobra.Command) {
	for _, cmd := range root.Commands() {
		explainArgs(cmd)
		if check := cmd.Args; check != nil {
			cmd.Args = func(cmd *cobra.Command, args []string) error {
				if check(cmd, args) == nil {
					return nil
				}
				return argsError(cmd, args)
			}
		}
	}
}

// argsError says which arguments cmd takes and which it was given.
func argsError(cmd *cobra.Command, args []string) error {
	path := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
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
