package sqlstore

import (
	"strings"

	"github.com/musterhq/muster"
)

// scopeJobs returns a condition that the job name in col is one a scope
// covers: one it names, or one starting with a prefix it names. It is
// FALSE for a scope that names no job.
func scopeJobs(a *args, col string, s muster.Scope) string {
	var conds, exact []string
	for _, j := range s.Jobs {
		if prefix, ok := strings.CutSuffix(j, "*"); ok {
			// substr counts characters on both engines; job names are ASCII.
			conds = append(conds, `substr(`+col+`, 1, `+a.add(len(prefix))+`) = `+a.add(prefix))
		} else {
			exact = append(exact, j)
		}
	}
	if len(exact) > 0 {
		conds = append(conds, in(a, col, exact))
	}
	if len(conds) == 0 {
		return `FALSE`
	}
	return `(` + strings.Join(conds, ` OR `) + `)`
}

// scopeTargetIDs returns a condition that the target id in col is a member
// of a group the scope names.
func scopeTargetIDs(a *args, col string, s muster.Scope) string {
	if len(s.Groups) == 0 {
		return `FALSE`
	}
	return col + ` IN (SELECT gm.target_id FROM group_members gm JOIN groups g ON g.id = gm.group_id WHERE ` +
		in(a, "g.name", s.Groups) + `)`
}

// scopeTargetNames returns a condition that the target name in col is a
// member of a group the scope names.
func scopeTargetNames(a *args, col string, s muster.Scope) string {
	if len(s.Groups) == 0 {
		return `FALSE`
	}
	return col + ` IN (SELECT t.name FROM group_members gm JOIN groups g ON g.id = gm.group_id JOIN targets t ON t.id = gm.target_id
		WHERE ` + in(a, "g.name", s.Groups) + `)`
}

// scopeJobOrTarget returns a condition that a row (an instruction, an
// event) is in the scope: of one of its jobs, or of no job and on a target
// in one of its groups, which targetCond says.
func scopeJobOrTarget(a *args, jobCol string, s muster.Scope, targetCond func(*args) string) string {
	return `(` + scopeJobs(a, jobCol, s) + ` OR (` + jobCol + ` = '' AND ` + targetCond(a) + `))`
}
