package sqlagent

import (
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/musterhq/muster"
)

// objectName turns a SQL Server name into a muster name (of a job, step,
// schedule, group, operator, connection or proxy): letters, digits, '.',
// '-' and '_', starting and ending with a letter or digit, at most
// muster.MaxNameLen long. Accents are dropped (é becomes e) and every other
// run of characters becomes one '-': "Nightly backup (full)" becomes
// "Nightly-backup-full". fallback stands in when nothing is left.
func objectName(s, fallback string) string {
	var b strings.Builder
	dash := false
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue // the accent of a decomposed letter
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '_' || r == '-'):
			// A dash next to a run of other characters stands for it:
			// "Backup - full" becomes "Backup-full".
			if dash && b.Len() > 0 && r != '-' && !strings.HasSuffix(b.String(), "-") {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
	}
	name := trimName(b.String())
	if name == "" {
		return fallback
	}
	return name
}

// trimName cuts a name to muster.MaxNameLen and drops what may not start
// or end it.
func trimName(name string) string {
	if len(name) > muster.MaxNameLen {
		name = name[:muster.MaxNameLen]
	}
	return strings.TrimFunc(name, func(r rune) bool { return r == '.' || r == '_' || r == '-' })
}

// nameSet hands out names unique within a set (a job's steps, the jobs of
// an import), compared without regard to case where SQL Server compares
// that way.
type nameSet map[string]bool

// unique returns name, or name-2, name-3… if it is taken, and takes it.
func (s nameSet) unique(name string) string {
	got := name
	for n := 2; s[strings.ToLower(got)]; n++ {
		suffix := "-" + strconv.Itoa(n)
		got = trimName(name[:min(len(name), muster.MaxNameLen-len(suffix))]) + suffix
	}
	s[strings.ToLower(got)] = true
	return got
}
