package jobfile

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/musterhq/muster"
)

// MaxProblems bounds how many problems one error lists; a file that breaks
// more rules than this is usually not a job file at all.
const MaxProblems = 50

// problem is one thing wrong with a job file, at a place in it.
type problem struct {
	line, col int // 1-based; 0 when the problem is the whole file's
	msg       string
}

// problems collects what is wrong with a file, to be reported all at once.
type problems struct {
	file string
	list []problem
}

func (ps *problems) add(line, col int, format string, args ...any) {
	ps.list = append(ps.list, problem{line: line, col: col, msg: fmt.Sprintf(format, args...)})
}

// err returns every problem as one EINVALID error, a line for each in the
// compilers' FILE:LINE:COL form, in the order of the file; nil if none.
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	slices.SortStableFunc(ps.list, func(a, b problem) int {
		return cmp.Or(cmp.Compare(a.line, b.line), cmp.Compare(a.col, b.col))
	})
	lines := make([]string, 0, min(len(ps.list), MaxProblems)+1)
	for i, p := range ps.list {
		if i == MaxProblems {
			lines = append(lines, fmt.Sprintf("%s: and %d more problems", ps.file, len(ps.list)-MaxProblems))
			break
		}
		switch {
		case p.line == 0:
			lines = append(lines, fmt.Sprintf("%s: %s", ps.file, p.msg))
		default:
			lines = append(lines, fmt.Sprintf("%s:%d:%d: %s", ps.file, p.line, max(p.col, 1), p.msg))
		}
	}
	return muster.Errorf(muster.EINVALID, "%s", strings.Join(lines, "\n"))
}

// suggest returns the known key closest to an unknown one, or "" when none
// is close: one that starts with the other ("on_fail", "on_failure"), or
// within a couple of typing mistakes ("shel", "shell"; "stpes", "steps").
func suggest(unknown string, known []string) string {
	best, bestDist := "", 0
	u := strings.ToLower(unknown)
	for _, k := range known {
		d := editDistance(u, k)
		close := d <= max(2, len(k)/4) || (len(u) >= 3 && (strings.HasPrefix(k, u) || strings.HasPrefix(u, k)))
		if close && (best == "" || d < bestDist) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Damerau-Levenshtein distance (optimal string
// alignment): insertions, deletions, substitutions and swaps of two
// neighbours each cost one.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
