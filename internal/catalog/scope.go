package catalog

import (
	"context"
	"fmt"
	"slices"

	"github.com/musterhq/muster"
)

// A scoped API key acts only on the jobs its scope names and on the targets
// in the groups it names (see muster.Scope). The logic below refuses the
// rest inside the transaction that would change it, so that what is
// checked is what is changed.

// outOfScope refuses an actor something outside its scope.
func outOfScope(by muster.Actor, what string) error {
	return muster.OutOfScope(by.Name, by.Scope, what)
}

// scopeTargets returns the targets a scope covers: the members of its
// groups.
func scopeTargets(ctx context.Context, r Reads, s muster.Scope) (map[string]bool, error) {
	ids, err := r.GroupIDs(ctx, s.Groups)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, id := range ids {
		members, err := r.GroupMembers(ctx, id)
		if err != nil {
			return nil, err
		}
		for name := range members {
			out[name] = true
		}
	}
	return out, nil
}

// ScopeTargets returns the targets a scope covers, by name: the members of
// its groups.
func (c *Catalog) ScopeTargets(ctx context.Context, s muster.Scope) (map[string]bool, error) {
	return scopeTargets(ctx, c.store, s)
}

// targetsInScope refuses a scoped actor any of the named targets that is
// not in one of its groups.
func (tx *tx) targetsInScope(by muster.Actor, field string, names []string) error {
	if !by.Scope.Limited() || len(names) == 0 {
		return nil
	}
	members, err := scopeTargets(tx.ctx, tx, by.Scope)
	if err != nil {
		return err
	}
	for _, n := range names {
		if !members[n] {
			return outOfScope(by, fmt.Sprintf("%s: target %q", field, n))
		}
	}
	return nil
}

// placementInScope refuses a scoped actor aiming job j (whose definition
// was old) at a group outside its scope, or at a target outside its
// groups. What the job named before may stay: an admin placed it.
func (tx *tx) placementInScope(by muster.Actor, old, j muster.Job) error {
	if !by.Scope.Limited() {
		return nil
	}
	for _, g := range j.Groups {
		if !slices.Contains(old.Groups, g) && !by.Scope.HasGroup(g) {
			return outOfScope(by, fmt.Sprintf("job %q: groups: group %q", j.Name, g))
		}
	}
	var added []string
	for _, t := range j.Targets {
		if !slices.Contains(old.Targets, t) {
			added = append(added, t)
		}
	}
	return tx.targetsInScope(by, fmt.Sprintf("job %q: targets", j.Name), added)
}
