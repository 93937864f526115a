package sqlagent

import (
	"maps"
	"strings"
)

// sqlcmdInclude is an :r line of a script, which sqlcmd replaces with the
// file it names and the import does not follow.
type sqlcmdInclude struct {
	line int
	file string
}

// expandSQLCmd does what sqlcmd does with a deployment script's variables
// before T-SQL reads it: a line ":setvar NAME VALUE" (the value bare or in
// double quotes, "" standing for one) sets NAME, and ":setvar NAME" unsets
// it; every later $(NAME), in any case, is replaced with its value,
// wherever it stands. A $(…) the script does not set is left as written:
// SQL Server Agent's tokens look the same, and a variable sqlcmd is given
// with -v is not in the script. The command lines become empty lines, so
// that line numbers stay those of the file; the :r lines, which include
// another file, are returned. given are the variables sqlcmd is given on
// its command line, by lower-cased name.
func expandSQLCmd(text string, given map[string]string) (string, []sqlcmdInclude) {
	if len(given) == 0 && !strings.Contains(text, ":") {
		return text, nil
	}
	var b strings.Builder
	var includes []sqlcmdInclude
	vars := maps.Clone(given) // by lower-cased name
	if vars == nil {
		vars = map[string]string{}
	}
	for i, line := range strings.SplitAfter(text, "\n") {
		body := strings.TrimRight(line, "\r\n")
		switch cmd, rest := sqlcmdCommand(body); cmd {
		case "setvar":
			if name, value, ok := setvar(rest); ok {
				vars[strings.ToLower(name)] = value
			} else if name != "" {
				delete(vars, strings.ToLower(name))
			}
			b.WriteString(line[len(body):])
			continue
		case "r":
			includes = append(includes, sqlcmdInclude{line: i + 1, file: rest})
			b.WriteString(line[len(body):])
			continue
		}
		if len(vars) == 0 {
			b.WriteString(line)
			continue
		}
		b.WriteString(substitute(line, vars))
	}
	return b.String(), includes
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

// substitute replaces each $(NAME) of a variable that is set.
func substitute(line string, vars map[string]string) string {
	var b strings.Builder
	for {
		i := strings.Index(line, "$(")
		j := strings.IndexByte(line[max(i, 0):], ')')
		if i < 0 || j < 0 {
			b.WriteString(line)
			return b.String()
		}
		if v, ok := vars[strings.ToLower(line[i+2:i+j])]; ok {
			b.WriteString(line[:i])
			b.WriteString(v)
			line = line[i+j+1:]
			continue
		}
		b.WriteString(line[:i+2])
		line = line[i+2:]
	}
}
