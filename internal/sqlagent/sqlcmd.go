package sqlagent

import (
	"maps"
	"strings"
	"unicode"
)

// sqlcmdNote is what the import says about a sqlcmd command or variable
// of a script: an :r it does not follow, a variable nothing sets.
type sqlcmdNote struct {
	line         int
	level, about string
}

// expandSQLCmd does what sqlcmd does with a deployment script's variables
// before T-SQL reads it: a line ":setvar NAME VALUE" (the value bare or in
// double quotes, "" standing for one) sets NAME, and ":setvar NAME" unsets
// it; every later $(NAME), in any case, is replaced with its value,
// wherever it stands. given are the variables sqlcmd is given on its
// command line (-v), by lower-cased name. The command lines become empty
// lines, so that line numbers stay those of the file.
//
// A $(NAME) nothing sets stays as written. In a script that uses sqlcmd
// (an :setvar or :r line, or variables given) sqlcmd would refuse it, and
// it is noted, once per name; in any other script it is text, such as a
// shell's $(pwd). SQL Server Agent's tokens are not sqlcmd variables.
func expandSQLCmd(text string, given map[string]string) (string, []sqlcmdNote) {
	if len(given) == 0 && !strings.Contains(text, ":") {
		return text, nil
	}
	var b strings.Builder
	var notes []sqlcmdNote
	vars := maps.Clone(given) // by lower-cased name
	if vars == nil {
		vars = map[string]string{}
	}
	usesSQLCmd := len(given) > 0
	noted := map[string]bool{}
	for i, line := range strings.SplitAfter(text, "\n") {
		body := strings.TrimRight(line, "\r\n")
		switch cmd, rest := sqlcmdCommand(body); cmd {
		case "setvar":
			if name, value, ok := setvar(rest); ok {
				vars[strings.ToLower(name)] = value
			} else if name != "" {
				delete(vars, strings.ToLower(name))
			}
			usesSQLCmd = true
			b.WriteString(line[len(body):])
			continue
		case "r":
			notes = append(notes, sqlcmdNote{line: i + 1, level: LeftOut,
				about: "sqlcmd's :r " + rest + " is not followed: name that file on the command line too, in the order the script reads it"})
			usesSQLCmd = true
			b.WriteString(line[len(body):])
			continue
		}
		if !usesSQLCmd {
			b.WriteString(line)
			continue
		}
		line = substitute(line, vars, func(name string) {
			if key := strings.ToLower(name); !noted[key] && !agentTokenName(name) {
				noted[key] = true
				notes = append(notes, sqlcmdNote{line: i + 1, level: Note,
					about: "$(" + name + ") is a sqlcmd variable that no :setvar before it sets and no --var gives: sqlcmd would refuse the script; it stays as written"})
			}
		})
		b.WriteString(line)
	}
	return b.String(), notes
}

// sqlcmdCommand reads a line holding one of the sqlcmd commands the import
// acts on, :setvar and :r (any case, after white space), and returns it
// lower-cased with the rest of the line; "" for any other line.
func sqlcmdCommand(line string) (string, string) {
	s := strings.TrimLeft(line, " \t")
	if !strings.HasPrefix(s, ":") {
		return "", ""
	}
	word, rest := cutWord(s[1:])
	switch cmd := strings.ToLower(word); {
	case cmd == "setvar", cmd == "r" && rest != "":
		return cmd, rest
	}
	return "", ""
}

// cutWord splits s at its first space or tab, trimming both parts.
func cutWord(s string) (string, string) {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i], strings.TrimSpace(s[i:])
	}
	return s, ""
}

// setvar reads the NAME [VALUE] of an :setvar line; ok is false when it
// gives no value, which unsets NAME.
func setvar(rest string) (name, value string, ok bool) {
	name, value = cutWord(rest)
	if value == "" {
		return name, "", false
	}
	if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
		value = strings.ReplaceAll(value[1:len(value)-1], `""`, `"`)
	}
	return name, value, true
}

// substitute replaces each $(NAME) of a variable that is set, and calls
// unset with the NAME of each other $(NAME) whose name is one sqlcmd's
// variables may have.
func substitute(line string, vars map[string]string, unset func(string)) string {
	var b strings.Builder
	for {
		i := strings.Index(line, "$(")
		j := strings.IndexByte(line[max(i, 0):], ')')
		if i < 0 || j < 0 {
			b.WriteString(line)
			return b.String()
		}
		name := line[i+2 : i+j]
		if v, ok := vars[strings.ToLower(name)]; ok {
			b.WriteString(line[:i])
			b.WriteString(v)
			line = line[i+j+1:]
			continue
		}
		if variableName(name) {
			unset(name)
		}
		b.WriteString(line[:i+2])
		line = line[i+2:]
	}
}

// variableName reports whether s is a name a sqlcmd variable may have:
// letters, digits, _ and -, starting with a letter or _.
func variableName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_' || unicode.IsLetter(r):
		case i > 0 && (r == '-' || unicode.IsDigit(r)):
		default:
			return false
		}
	}
	return s != ""
}

// agentTokenName reports whether name is that of a SQL Server Agent token,
// which a step's command may hold as $(NAME): it is not a sqlcmd variable.
func agentTokenName(name string) bool {
	switch strings.ToUpper(name) {
	case "A-DBN", "A-SVR", "A-ERR", "A-SEV", "A-MSG", "DATE", "INST", "JOBID", "JOBNAME", "MACH", "MSSA", "OSCMD",
		"SQLDIR", "SQLLOGDIR", "STEPCT", "STEPID", "SRVR", "TIME", "STRTTM", "STRTDT":
		return true
	}
	return false
}
