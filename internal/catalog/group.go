package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/sqlite"
)

// Group is a named set of targets (SQL Server's target server group). Its
// name follows muster.ValidateName, so it holds no commas, as SQL Server
// requires.
type Group struct {
	Name    string   `json:"name"`
	Targets []string `json:"targets"`
	Jobs    []string `json:"jobs"` // the jobs that name the group
}

// groupIDs resolves group names to ids; an unknown name is an error naming it.
func (tx *tx) groupIDs(field string, names []string) (map[string]int64, error) {
	ids := map[string]int64{}
	var unknown []string
	for _, n := range names {
		var id int64
		err := tx.QueryRow(`SELECT id FROM groups WHERE name = ?`, n).Scan(&id)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			unknown = append(unknown, fmt.Sprintf("%q", n))
		case err != nil:
			return nil, err
		default:
			ids[n] = id
		}
	}
	if len(unknown) > 0 {
		return nil, muster.Errorf(muster.EINVALID, "%s: no group named %s; `muster group list` shows them", field, strings.Join(unknown, ", "))
	}
	return ids, nil
}

// CreateGroup creates an empty group.
func (db *DB) CreateGroup(ctx context.Context, name string) error {
	if err := muster.ValidateName("group name", name); err != nil {
		return err
	}
	return db.update(ctx, func(tx *tx) error {
		_, err := tx.Exec(`INSERT INTO groups (name, created_at) VALUES (?, ?)`, name, ms(tx.now))
		if sqlite.IsUniqueViolation(err) {
			return muster.Errorf(muster.ECONFLICT, "a group named %q already exists", name)
		}
		return err
	})
}

// RenameGroup renames a group. Jobs keep targeting it (job files naming the
// old name must be updated before their next apply).
func (db *DB) RenameGroup(ctx context.Context, name, newName string) error {
	if err := muster.ValidateName("new group name", newName); err != nil {
		return err
	}
	return db.update(ctx, func(tx *tx) error {
		res, err := tx.Exec(`UPDATE groups SET name = ? WHERE name = ?`, newName, name)
		if sqlite.IsUniqueViolation(err) {
			return muster.Errorf(muster.ECONFLICT, "a group named %q already exists", newName)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return muster.Errorf(muster.ENOTFOUND, "no group named %q", name)
		}
		return nil
	})
}

// DeleteGroup deletes a group that no job names.
func (db *DB) DeleteGroup(ctx context.Context, name string) error {
	return db.update(ctx, func(tx *tx) error {
		ids, err := tx.groupIDs("name", []string{name})
		if err != nil {
			return muster.Errorf(muster.ENOTFOUND, "no group named %q", name)
		}
		jobs, err := tx.jobsNamingGroup(ids[name])
		if err != nil {
			return err
		}
		if len(jobs) > 0 {
			return muster.Errorf(muster.EPRECONDITION, "group %q is used by job(s) %s; remove it from their groups: first", name, strings.Join(jobs, ", "))
		}
		_, err = tx.Exec(`DELETE FROM groups WHERE id = ?`, ids[name])
		return err
	})
}

func (tx *tx) jobsNamingGroup(groupID int64) ([]string, error) {
	return tx.names(`SELECT j.name FROM job_groups jg JOIN jobs j ON j.id = jg.job_id WHERE jg.group_id = ? ORDER BY j.name`, groupID)
}

// SetGroupMembers adds (or, with remove, removes) targets to a group, and
// reconciles every job naming the group in the same transaction: a target
// that joins receives an INSERT of each of them, one that leaves a DELETE
// (unless the job still runs there by name or through another group).
func (db *DB) SetGroupMembers(ctx context.Context, group string, targets []string, remove bool) ([]JobChange, error) {
	var changes []JobChange
	err := db.update(ctx, func(tx *tx) error {
		gids, err := tx.groupIDs("group", []string{group})
		if err != nil {
			return muster.Errorf(muster.ENOTFOUND, "no group named %q", group)
		}
		gid := gids[group]
		for i, t := range targets {
			targets[i] = muster.NormalizeTargetName(t)
		}
		tids, err := tx.targetIDs("targets", targets)
		if err != nil {
			return err
		}
		jobs, err := tx.jobsNamingGroup(gid)
		if err != nil {
			return err
		}
		before := map[string]storedJob{}
		for _, name := range jobs {
			if before[name], err = tx.loadJob(name); err != nil {
				return err
			}
		}
		for _, t := range targets {
			if remove {
				res, err := tx.Exec(`DELETE FROM group_members WHERE group_id = ? AND target_id = ?`, gid, tids[t])
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n == 0 {
					return muster.Errorf(muster.EPRECONDITION, "target %q is not a member of group %q", t, group)
				}
			} else {
				if _, err := tx.Exec(`INSERT INTO group_members (group_id, target_id) VALUES (?, ?)`, gid, tids[t]); sqlite.IsUniqueViolation(err) {
					return muster.Errorf(muster.ECONFLICT, "target %q is already a member of group %q", t, group)
				} else if err != nil {
					return err
				}
			}
		}
		for _, name := range jobs {
			old := before[name]
			c := JobChange{Job: name, Action: ActionUpdate, Version: old.job.Version}
			if err := tx.reconcile(old, old.job, false, &c); err != nil {
				return err
			}
			if len(c.Instructions) > 0 {
				changes = append(changes, c)
			}
		}
		return nil
	})
	return changes, err
}

// FindGroups lists groups with their members and the jobs naming them.
func (db *DB) FindGroups(ctx context.Context) ([]Group, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT g.name,
			(SELECT GROUP_CONCAT(t.name, ',') FROM group_members gm JOIN targets t ON t.id = gm.target_id
				WHERE gm.group_id = g.id AND t.state <> 'defected'),
			(SELECT GROUP_CONCAT(j.name, ',') FROM job_groups jg JOIN jobs j ON j.id = jg.job_id WHERE jg.group_id = g.id)
		FROM groups g ORDER BY g.name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	groups := []Group{}
	for rows.Next() {
		var g Group
		var members, jobs sql.NullString
		if err := rows.Scan(&g.Name, &members, &jobs); err != nil {
			return nil, err
		}
		g.Targets, g.Jobs = splitSorted(members), splitSorted(jobs)
		groups = append(groups, g)
	}
	return groups, rows.Err()
}

func splitSorted(s sql.NullString) []string {
	if !s.Valid || s.String == "" {
		return []string{}
	}
	parts := strings.Split(s.String, ",")
	slices.Sort(parts)
	return parts
}
