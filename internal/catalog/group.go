package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/musterhq/muster"
)

// groupIDs resolves group names to ids; an unknown name is an error naming
// it.
func (tx *tx) groupIDs(field string, names []string) (map[string]int64, error) {
	ids, err := tx.GroupIDs(tx.ctx, names)
	if err != nil {
		return nil, err
	}
	var unknown []string
	for _, n := range names {
		if _, ok := ids[n]; !ok {
			unknown = append(unknown, fmt.Sprintf("%q", n))
		}
	}
	if len(unknown) > 0 {
		return nil, muster.Errorf(muster.EINVALID, "%s: no group named %s; `muster group list` shows them", field, strings.Join(unknown, ", "))
	}
	return ids, nil
}

// lockGroupJobs takes a group's row, then the rows of the jobs naming it,
// and returns those jobs' names as they are once taken. No job can start
// naming the group until commit (a write of jobs shares every group's row
// first), and one deleted meanwhile is not among them.
func (tx *tx) lockGroupJobs(id int64) ([]string, error) {
	if err := tx.LockGroup(tx.ctx, id); err != nil {
		return nil, err
	}
	names, err := tx.JobsNamingGroup(tx.ctx, id)
	if err != nil || len(names) == 0 {
		return names, err
	}
	if err := tx.LockJobs(tx.ctx, names); err != nil {
		return nil, err
	}
	return tx.JobsNamingGroup(tx.ctx, id)
}

// group resolves one group name; an unknown one is ENOTFOUND.
func (tx *tx) group(name string) (int64, error) {
	ids, err := tx.GroupIDs(tx.ctx, []string{name})
	if err != nil {
		return 0, err
	}
	id, ok := ids[name]
	if !ok {
		return 0, muster.Errorf(muster.ENOTFOUND, "no group named %q", name)
	}
	return id, nil
}

// CreateGroup creates an empty group.
func (c *Catalog) CreateGroup(ctx context.Context, name string, by muster.Actor) error {
	if err := muster.ValidateName("group name", name); err != nil {
		return err
	}
	return c.update(ctx, func(tx *tx) error {
		err := tx.InsertGroup(ctx, name, tx.now)
		if errors.Is(err, ErrDuplicate) {
			return muster.Errorf(muster.ECONFLICT, "a group named %q already exists", name)
		}
		if err != nil {
			return err
		}
		return tx.audit(by, muster.AuditEntry{Action: muster.AuditGroupCreate, Object: "group " + name})
	})
}

// RenameGroup renames a group. Jobs keep targeting it, and their group
// overrides follow it to its new name; what each target receives does not
// change. (Job files naming the old name must be updated before their next
// apply.)
func (c *Catalog) RenameGroup(ctx context.Context, name, newName string, by muster.Actor) error {
	if err := muster.ValidateName("new group name", newName); err != nil {
		return err
	}
	if newName == name {
		return muster.Errorf(muster.EINVALID, "new group name: %q is the group's name already", newName)
	}
	return c.update(ctx, func(tx *tx) error {
		// The jobs naming the group, read as they are before the rename.
		var before []storedJob
		if id, err := tx.group(name); err == nil {
			names, err := tx.lockGroupJobs(id)
			if err != nil {
				return err
			}
			for _, n := range names {
				sj, err := tx.loadJob(n)
				if err != nil {
					return err
				}
				before = append(before, sj)
			}
		}
		found, err := tx.RenameGroup(ctx, name, newName)
		switch {
		case errors.Is(err, ErrDuplicate):
			return muster.Errorf(muster.ECONFLICT, "a group named %q already exists", newName)
		case err != nil:
			return err
		case !found:
			return muster.Errorf(muster.ENOTFOUND, "no group named %q", name)
		}
		// Every job naming the group now names it by its new name: the
		// entry concerns each of them.
		e := muster.AuditEntry{Action: muster.AuditGroupRename, Object: "group " + newName,
			Changes: []string{fmt.Sprintf("name: %s -> %s", name, newName)}}
		// Keys scoped to the group keep covering it: left naming the old
		// name, a key would cover nothing, then the members of any group
		// later given that name.
		keys, err := tx.LockAPIKeys(ctx)
		if err != nil {
			return err
		}
		for _, k := range keys {
			i := slices.Index(k.Scopes, "group:"+name)
			if i < 0 {
				continue
			}
			scopes := slices.Clone(k.Scopes)
			scopes[i] = "group:" + newName
			if err := tx.SetAPIKeyScopes(ctx, k.ID, scopes); err != nil {
				return err
			}
			e.Changes = append(e.Changes, fmt.Sprintf("API key %s: its scope group:%s now names group:%s", k.Name, name, newName))
		}
		for _, old := range before {
			e.Jobs = append(e.Jobs, old.job.Name)
			j, renamed := old.job, false
			j.Overrides = slices.Clone(j.Overrides)
			for i := range j.Overrides {
				if j.Overrides[i].Group == name {
					j.Overrides[i].Group, renamed = newName, true
				}
			}
			if !renamed {
				continue
			}
			j.Groups = slices.Clone(j.Groups)
			for i := range j.Groups {
				if j.Groups[i] == name {
					j.Groups[i] = newName
				}
			}
			slices.Sort(j.Groups)
			ch, err := tx.updateJob(old, j, by.Name)
			if err != nil {
				return err
			}
			e.Changes = append(e.Changes, fmt.Sprintf("job %s: its override of group %s now names %s (version %d)", j.Name, name, newName, ch.Version))
			for _, in := range ch.Instructions {
				e.Changes = append(e.Changes, "posted "+in+" ("+j.Name+")")
			}
			e.Targets = append(e.Targets, postedTargets(ch)...)
		}
		return tx.audit(by, e)
	})
}

// DeleteGroup deletes a group that no job names.
func (c *Catalog) DeleteGroup(ctx context.Context, name string, by muster.Actor) error {
	return c.update(ctx, func(tx *tx) error {
		id, err := tx.group(name)
		if err != nil {
			return err
		}
		if err := tx.LockGroup(ctx, id); err != nil {
			return err
		}
		jobs, err := tx.JobsNamingGroup(ctx, id)
		if err != nil {
			return err
		}
		if len(jobs) > 0 {
			return muster.Errorf(muster.EPRECONDITION, "group %q is used by job(s) %s; remove it from their groups: first", name, strings.Join(jobs, ", "))
		}
		// A key left naming a deleted group would cover the members of
		// any group later given its name, as a renamed group's would
		// (see RenameGroup): the group stays while a key may use it.
		keys, err := tx.LockAPIKeys(ctx)
		if err != nil {
			return err
		}
		var holders []string
		for _, k := range keys {
			if slices.Contains(k.Scopes, "group:"+name) && k.key(tx.now).State == muster.KeyActive {
				holders = append(holders, k.Name)
			}
		}
		if len(holders) > 0 {
			return muster.Errorf(muster.EPRECONDITION, "group %q is in the scope of API key(s) %s, which would cover any group later given its name; revoke them first (`muster apikey revoke NAME`)",
				name, strings.Join(holders, ", "))
		}
		if err := tx.DeleteGroup(ctx, id); err != nil {
			return err
		}
		return tx.audit(by, muster.AuditEntry{Action: muster.AuditGroupDelete, Object: "group " + name})
	})
}

// SetGroupMembers adds (or, with remove, removes) targets to a group, and
// reconciles every job naming the group in the same transaction: a target
// that joins receives an INSERT of each of them, one that leaves a DELETE
// (unless the job still runs there by name or through another group).
func (c *Catalog) SetGroupMembers(ctx context.Context, group string, targets []string, remove bool, by muster.Actor) ([]muster.JobChange, error) {
	var changes []muster.JobChange
	err := c.update(ctx, func(tx *tx) error {
		changes = nil
		gid, err := tx.group(group)
		if err != nil {
			return err
		}
		names := normalizeTargets(targets)
		for i, n := range names {
			if j := slices.Index(names[:i], n); j >= 0 {
				return muster.Errorf(muster.EINVALID, "targets[%d]: target %q is listed twice (targets[%d])", i, n, j)
			}
		}
		tids, err := tx.targetIDs("targets", names)
		if err != nil {
			return err
		}
		jobs, err := tx.lockGroupJobs(gid)
		if err != nil {
			return err
		}
		// The group deleted or renamed on another master since it was
		// read (its row taken, this waited for it): run again, and find
		// the name as it is now.
		if again, err := tx.GroupIDs(ctx, []string{group}); err != nil {
			return err
		} else if again[group] != gid {
			return fmt.Errorf("group %q changed while its members were: %w", group, ErrRetry)
		}
		before := map[string]storedJob{}
		for _, name := range jobs {
			if before[name], err = tx.loadJob(name); err != nil {
				return err
			}
		}
		for _, t := range names {
			if remove {
				was, err := tx.RemoveGroupMember(ctx, gid, tids[t])
				if err != nil {
					return err
				}
				if !was {
					return muster.Errorf(muster.EPRECONDITION, "target %q is not a member of group %q", t, group)
				}
			} else if err := tx.AddGroupMember(ctx, gid, tids[t]); errors.Is(err, ErrDuplicate) {
				return muster.Errorf(muster.ECONFLICT, "target %q is already a member of group %q", t, group)
			} else if err != nil {
				return err
			}
		}
		if !remove {
			// A target deleted on another master since it was read: its
			// deletion held its row, which the membership waited for, and
			// cleared its memberships before this one was made. Run again:
			// the target is then refused, naming how it left.
			still, err := tx.TargetIDs(ctx, names)
			if err != nil {
				return err
			}
			if len(still) != len(names) {
				return fmt.Errorf("group %q: a target left while it was added: %w", group, ErrRetry)
			}
		}
		e := muster.AuditEntry{Action: muster.AuditGroupAdd, Object: "group " + group, Targets: names}
		if remove {
			e.Action = muster.AuditGroupRemove
		}
		for _, name := range jobs {
			old := before[name]
			ch := muster.JobChange{Job: name, Action: muster.ActionUpdate, Version: old.job.Version}
			if err := tx.reconcile(old, old.job, false, &ch); err != nil {
				return err
			}
			if len(ch.Instructions) > 0 {
				changes = append(changes, ch)
				e.Jobs = append(e.Jobs, name)
				for _, in := range ch.Instructions {
					e.Changes = append(e.Changes, "posted "+in+" ("+name+")")
				}
			}
		}
		return tx.audit(by, e)
	})
	return changes, err
}

// FindGroups lists groups with their members and the jobs naming them.
func (c *Catalog) FindGroups(ctx context.Context) ([]muster.Group, error) {
	return c.store.FindGroups(ctx)
}
