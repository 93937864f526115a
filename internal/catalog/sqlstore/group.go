package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/musterhq/muster"
)

// FindGroups lists groups with their members and the jobs naming them.
func (s *Queries) FindGroups(ctx context.Context) ([]muster.Group, error) {
	return collect(ctx, s.Q, func(r Rows) (g muster.Group, err error) {
		var members, jobs sql.NullString
		err = r.Scan(&g.Name, &members, &jobs)
		g.Targets, g.Jobs = split(members), split(jobs)
		return g, err
	}, `SELECT g.name,
			(SELECT string_agg(t.name, ',' ORDER BY t.name) FROM group_members gm JOIN targets t ON t.id = gm.target_id
				WHERE gm.group_id = g.id AND t.state <> 'defected'),
			(SELECT string_agg(j.name, ',' ORDER BY j.name) FROM job_groups jg JOIN jobs j ON j.id = jg.job_id WHERE jg.group_id = g.id)
		FROM groups g ORDER BY g.name`)
}

// GroupIDs resolves group names to ids; names it does not know are left
// out.
func (s *Queries) GroupIDs(ctx context.Context, names []string) (map[string]int64, error) {
	if len(names) == 0 {
		return map[string]int64{}, nil
	}
	a := &args{d: s.D}
	return nameIDs(ctx, s.Q, `SELECT name, id FROM groups WHERE `+in(a, "name", names), a.vals...)
}

// GroupMembers returns a group's active members by name.
func (s *Queries) GroupMembers(ctx context.Context, groupID int64) (map[string]int64, error) {
	return nameIDs(ctx, s.Q, `SELECT t.name, t.id FROM group_members gm JOIN targets t ON t.id = gm.target_id
		WHERE gm.group_id = $1 AND t.state = 'active'`, groupID)
}

// JobsNamingGroup returns the jobs that name a group, by name.
func (s *Queries) JobsNamingGroup(ctx context.Context, groupID int64) ([]string, error) {
	return texts(ctx, s.Q, `SELECT j.name FROM job_groups jg JOIN jobs j ON j.id = jg.job_id WHERE jg.group_id = $1 ORDER BY j.name`, groupID)
}

// InsertGroup creates a group; a name taken is ErrDuplicate.
func (s *Queries) InsertGroup(ctx context.Context, name string, at time.Time) error {
	_, err := s.Q.Exec(ctx, `INSERT INTO groups (name, created_at) VALUES ($1, $2)`, name, ms(at))
	return err
}

// RenameGroup renames a group and reports whether it exists; a name taken
// is ErrDuplicate.
func (s *Queries) RenameGroup(ctx context.Context, name, newName string) (bool, error) {
	n, err := s.Q.Exec(ctx, `UPDATE groups SET name = $1 WHERE name = $2`, newName, name)
	return n > 0, err
}

// DeleteGroup deletes a group and its memberships.
func (s *Queries) DeleteGroup(ctx context.Context, id int64) error {
	if _, err := s.Q.Exec(ctx, `DELETE FROM group_members WHERE group_id = $1`, id); err != nil {
		return err
	}
	_, err := s.Q.Exec(ctx, `DELETE FROM groups WHERE id = $1`, id)
	return err
}

// AddGroupMember adds a target to a group; a member already is
// ErrDuplicate.
func (s *Queries) AddGroupMember(ctx context.Context, groupID, targetID int64) error {
	_, err := s.Q.Exec(ctx, `INSERT INTO group_members (group_id, target_id) VALUES ($1, $2)`, groupID, targetID)
	return err
}

// RemoveGroupMember removes a target from a group and reports whether it
// was a member.
func (s *Queries) RemoveGroupMember(ctx context.Context, groupID, targetID int64) (bool, error) {
	n, err := s.Q.Exec(ctx, `DELETE FROM group_members WHERE group_id = $1 AND target_id = $2`, groupID, targetID)
	return n > 0, err
}
