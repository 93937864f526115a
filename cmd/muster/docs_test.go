package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Every muster command line the README, the docs and the runbooks show in a
// shell block, and every line of every command's Examples, names a command
// that exists, with flags that exist and parse, and as many arguments as the
// command takes. What the commands then do is shown by the scripts in
// testdata/script (runbooks.txtar runs the runbooks).
func TestDocumentedCommandsParse(t *testing.T) {
	pages := []string{"../../README.md"}
	for _, glob := range []string{"../../docs/*.md", "../../docs/runbooks/*.md"} {
		more, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, more...)
	}
	n := 0
	for _, page := range pages {
		doc, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range regexp.MustCompile("(?sm)^ *```sh\n(.*?)^ *```").FindAllStringSubmatch(string(doc), -1) {
			for _, args := range musterCommands(b[1]) {
				n++
				if err := checkCommandLine(args); err != nil {
					t.Errorf("%s, shell block %d: muster %s: %v", filepath.Base(page), i+1, strings.Join(args, " "), err)
				}
			}
		}
		// The prose names commands in passing (`muster job logs RUN-ID
		// -f`), often without what they need: those name a command
		// and flags that exist.
		prose := regexp.MustCompile("(?sm)^ *```.*?^ *```").ReplaceAllString(string(doc), "")
		for _, b := range regexp.MustCompile("`(muster [^`]+)`").FindAllStringSubmatch(prose, -1) {
			for _, args := range musterCommands(b[1]) {
				n++
				if err := checkCommandNamed(args); err != nil {
					t.Errorf("%s: `muster %s`: %v", filepath.Base(page), strings.Join(args, " "), err)
				}
			}
		}
	}
	if n < 100 {
		t.Errorf("found %d muster commands in the docs; there are more", n)
	}

	examples := 0
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		for _, args := range musterCommands(cmd.Example) {
			examples++
			if err := checkCommandLine(args); err != nil {
				t.Errorf("example of %q: muster %s: %v", cmd.CommandPath(), strings.Join(args, " "), err)
			}
		}
		for _, c := range cmd.Commands() {
			walk(c)
		}
	}
	walk(newRoot(io.Discard, io.Discard, nil))
	if examples < 50 {
		t.Errorf("found %d muster commands in the commands' examples; there are more", examples)
	}
}

// findCommand finds the command args name in a root made as Execute makes
// it, and returns the root, the command and the words after its name.
func findCommand(args []string) (root, cmd *cobra.Command, rest []string, err error) {
	root = newRoot(io.Discard, io.Discard, args)
	// What Execute adds to the commands before it runs one.
	root.InitDefaultVersionFlag()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd(args...)
	cmd, rest, err = root.Find(args)
	return root, cmd, rest, err
}

// checkCommandLine finds the command args name, parses its flags and checks
// its arguments, as running it would before it does anything.
func checkCommandLine(args []string) error {
	root, cmd, rest, err := findCommand(args)
	if err != nil {
		return err
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return err
	}
	if cmd == root {
		if v, _ := root.Flags().GetBool("version"); !v {
			return fmt.Errorf("no such command")
		}
		return nil
	}
	if !cmd.Runnable() {
		return fmt.Errorf("%q does nothing by itself", cmd.CommandPath())
	}
	return cmd.ValidateArgs(cmd.Flags().Args())
}

// checkCommandNamed finds the command args name and checks that each flag
// they name is one of its flags.
func checkCommandNamed(args []string) error {
	root, cmd, rest, err := findCommand(args)
	if err != nil {
		return err
	}
	cmd.InitDefaultHelpFlag()
	for _, w := range rest {
		name, _, _ := strings.Cut(strings.TrimLeft(w, "-"), "=")
		switch {
		case !strings.HasPrefix(w, "-") || name == "":
		case strings.HasPrefix(w, "--") && cmd.Flag(name) == nil,
			!strings.HasPrefix(w, "--") && cmd.Flags().ShorthandLookup(name[:1]) == nil:
			return fmt.Errorf("%q has no flag %s", cmd.CommandPath(), w)
		}
	}
	if cmd == root && len(rest) == 0 {
		return fmt.Errorf("no such command")
	}
	return nil
}

// musterCommands returns the arguments of each muster command in a shell
// script: at the start of a line, after a pipe, &&, ; or &, or inside $( ),
// <( ) or >( ).
// Variables and command substitutions become the word X; comments,
// redirections and here-documents are left out. It is a shell for the
// docs' examples, not for every script.
func musterCommands(script string) [][]string {
	var (
		out     [][]string
		stack   [][]string // the words of each open command, innermost last
		word    strings.Builder
		inWord  bool
		heredoc []string // delimiters of here-documents begun on this line
		outer   []string // the words a $( ) interrupted, innermost last
	)
	stack = append(stack, nil)
	endWord := func() {
		if inWord {
			stack[len(stack)-1] = append(stack[len(stack)-1], word.String())
		}
		word.Reset()
		inWord = false
	}
	endCommand := func() {
		endWord()
		words := stack[len(stack)-1]
		stack[len(stack)-1] = nil
		// Skip assignments (X=… muster) and what runs muster (sudo -u muster
		// muster …, ssh host muster …): muster is the word followed by a
		// command name or --version (not go build -o muster, nor psql's
		// database muster).
		// A command whose program is muster (after assignments) is one
		// whatever word follows, so that a misspelled command is reported.
		program := 0
		for program < len(words) && strings.Contains(words[program], "=") && !strings.HasPrefix(words[program], "-") {
			program++
		}
		for i, w := range words {
			if w != "muster" && !strings.HasSuffix(w, "/muster") || i+1 == len(words) {
				continue
			}
			if next := words[i+1]; i == program || isCommandName(next) || next == "--version" || next == "-v" {
				out = append(out, words[i+1:])
				return
			}
		}
	}
	// redirect drops the word a redirection names.
	redirect := false
	lines := strings.Split(script, "\n")
	for l := 0; l < len(lines); l++ {
		line := lines[l]
		for i := 0; i < len(line); i++ {
			c := line[i]
			switch {
			case c == '\\' && i+1 == len(line):
				// A continuation: the command goes on on the next line.
				continue
			case c == '\\':
				i++
				word.WriteByte(line[i])
				inWord = true
			case c == '\'':
				j := strings.IndexByte(line[i+1:], '\'')
				if j < 0 {
					j = len(line) - i - 1
				}
				word.WriteString(line[i+1 : i+1+j])
				inWord = true
				i += j + 1
			case c == '"':
				// A quoted word; what it substitutes is X.
				j := i + 1
				depth := 0
				for ; j < len(line) && (line[j] != '"' || depth > 0); j++ {
					if strings.HasPrefix(line[j:], "$(") {
						depth++
					} else if line[j] == ')' && depth > 0 {
						depth--
					}
				}
				inner := line[i+1 : min(j, len(line))]
				out = append(out, musterCommands(inner)...)
				if strings.Contains(inner, "$") {
					word.WriteString("X")
				} else {
					word.WriteString(inner)
				}
				inWord = true
				i = j
			case strings.HasPrefix(line[i:], "$("), strings.HasPrefix(line[i:], "<("), strings.HasPrefix(line[i:], ">("):
				// The substitution (of a command's output, or of a file
				// that is its input or output) is a command of its own;
				// in the word it is part of, it is X.
				outer = append(outer, word.String())
				word.Reset()
				inWord = false
				stack = append(stack, nil)
				i++
			case c == ')' && len(stack) > 1:
				endCommand()
				stack = stack[:len(stack)-1]
				word.WriteString(outer[len(outer)-1] + "X")
				outer = outer[:len(outer)-1]
				inWord = true
			case c == '$':
				j := i + 1
				for j < len(line) && (line[j] == '_' || line[j] == '{' || line[j] == '}' || 'A' <= line[j] && line[j] <= 'Z' || 'a' <= line[j] && line[j] <= 'z' || '0' <= line[j] && line[j] <= '9') {
					j++
				}
				word.WriteString("X")
				inWord = true
				i = j - 1
			case c == '#' && !inWord:
				i = len(line)
			case c == '|' || c == ';' || c == '&':
				if redirect {
					redirect = false
					word.Reset()
					inWord = false
				}
				endCommand()
				if i+1 < len(line) && line[i+1] == c {
					i++
				}
			case strings.HasPrefix(line[i:], "<<"):
				endWord()
				j := i + 2
				for j < len(line) && (line[j] == ' ' || line[j] == '-') {
					j++
				}
				k := j
				for k < len(line) && line[k] != ' ' {
					k++
				}
				heredoc = append(heredoc, strings.Trim(line[j:k], `'"`))
				i = k - 1
			case c == '>' || c == '<':
				// 2>&1, > file, >> file: the next word is not an argument.
				if inWord && strings.Trim(word.String(), "0123456789") == "" {
					word.Reset()
					inWord = false
				}
				endWord()
				for i+1 < len(line) && (line[i+1] == '>' || line[i+1] == '&') {
					i++
				}
				if i+1 < len(line) && '0' <= line[i+1] && line[i+1] <= '9' {
					i++
					continue
				}
				redirect = true
			case c == ' ' || c == '\t':
				if redirect && inWord {
					word.Reset()
					inWord = false
					redirect = false
				}
				endWord()
			default:
				word.WriteByte(c)
				inWord = true
			}
		}
		if strings.HasSuffix(line, "\\") && !strings.HasSuffix(line, "\\\\") {
			continue
		}
		if redirect {
			word.Reset()
			inWord = false
			redirect = false
		}
		endCommand()
		for _, delim := range heredoc {
			for l+1 < len(lines) && strings.TrimSpace(lines[l+1]) != delim {
				l++
			}
			l++
		}
		heredoc = nil
	}
	return out
}

// isCommandName reports whether name is one of muster's commands.
func isCommandName(name string) bool {
	for _, c := range commands {
		if c.name == name {
			return true
		}
	}
	return name == "help" || name == "completion"
}

// The shell the docs' examples are read with.
func TestMusterCommands(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   []string
	}{
		{"muster target list", []string{"target list"}},
		{"KEY=$(muster apikey create ci --role operator --ttl 90d)", []string{"apikey create ci --role operator --ttl 90d"}},
		{`muster enlist --token "$(muster token create --target web1)" \` + "\n    --name web1 &", []string{"token create --target web1", "enlist --token X --name web1"}},
		{"muster target --data /tmp/t &   # the daemon\nmuster job list -o json | jq .", []string{"target --data /tmp/t", "job list -o json"}},
		{"cat > jobs.yaml <<'YAML'\nmuster not-a-command\nYAML\nmuster apply -f jobs.yaml 2>&1 > out", []string{"apply -f jobs.yaml"}},
		{"sudo -u muster muster defect --data /var/lib/muster-target", []string{"defect --data /var/lib/muster-target"}},
		{"muster audit --target 'db 1' --since $SINCE", []string{"audit --target db 1 --since X"}},
		{"ssh web1 muster enlist --name web1", []string{"enlist --name web1"}},
		{"/home/you/muster/muster target list", []string{"target list"}},
		{"systemctl stop muster-target", nil},
		{"go build -o muster ./cmd/muster && ./muster dev", []string{"dev"}},
		{"psql -d muster -c 'VACUUM FULL targets'", nil},
		{"muster --version", []string{"--version"}},
		// A command line that begins with muster is one, whatever it
		// names: a misspelled command is reported, not skipped.
		{"muster jobz list", []string{"jobz list"}},
		{"source <(muster completion bash)", []string{"completion bash"}},
		{"X=1 muster frobnicate --now", []string{"frobnicate --now"}},
	} {
		var got []string
		for _, args := range musterCommands(tc.script) {
			got = append(got, strings.Join(args, " "))
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%q: got %q, want %q", tc.script, got, tc.want)
		}
	}
}

// No flag's default in the help is what this machine happens to have: help
// is read on one machine about another, so such a default is described.
func TestHelpDefaultsAreNotThisMachines(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		t.Skip("no host name")
	}
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.DefValue, host) {
				t.Errorf("%s --%s: the default shown is this host's name, %q", cmd.CommandPath(), f.Name, f.DefValue)
			}
		})
		for _, c := range cmd.Commands() {
			walk(c)
		}
	}
	walk(newRoot(io.Discard, io.Discard, nil))
}

// A duration's default in the help reads as a person writes it, 15m or 26h,
// not as Go prints it, 15m0s or 26h0m0s.
func TestHelpDurationDefaultsReadAsWritten(t *testing.T) {
	goForm := regexp.MustCompile(`\d[hm]0s$|\dh0m`)
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if goForm.MatchString(f.DefValue) {
				t.Errorf("%s --%s: the default shown is %q", cmd.CommandPath(), f.Name, f.DefValue)
			}
		})
		for _, c := range cmd.Commands() {
			walk(c)
		}
	}
	walk(newRoot(io.Discard, io.Discard, nil))
}

// Each command's help is wrapped for a terminal: a line of prose longer
// than 80 columns was a sentence edited without rewrapping it.
func TestHelpProseIsWrapped(t *testing.T) {
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		for _, line := range strings.Split(cmd.Long, "\n") {
			if !strings.HasPrefix(line, " ") && len([]rune(line)) > 80 {
				t.Errorf("%s: a line of %d columns: %q", cmd.CommandPath(), len([]rune(line)), line)
			}
		}
		for _, c := range cmd.Commands() {
			walk(c)
		}
	}
	walk(newRoot(io.Discard, io.Discard, nil))
}
