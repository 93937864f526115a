package agent

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/musterhq/muster"
)

// A target knows every master of its group (masters sharing one catalog
// and one CA): those it was enlisted with, and those the masters announce
// in their poll replies. It talks to one, the current master, and moves to
// the next when that one stops answering (see client).

// movedTo records that the client left the master from for to, so that a
// restart starts with the master that answered last.
func (m *Main) movedTo(from, to string) {
	m.log.Warn("the master stopped answering; moving to the next master of the group", muster.LogMaster, to, "from", from)
	if err := m.store.setState(context.Background(), keyMasterURL, to); err != nil {
		m.log.Warn("the master in use could not be recorded", muster.LogMaster, to, muster.LogErr, err)
	}
}

// refreshMasters takes the masters a poll reply announces as the group's:
// kept for the next start, and used from now on. A reply that announces
// none (a master alone, or of an older build) leaves the list as it is.
//
// A reply that does not name the master in use, which answered it, is
// from a master whose --advertise is not how this target reaches it: that
// master stays in use, first in the list, until the target moves away
// from it. Taking the list as it is would leave a master that answers for
// one that may not (a mistyped port, a name this host cannot resolve).
func (m *Main) refreshMasters(ctx context.Context, masters []string) error {
	if len(masters) == 0 {
		return nil
	}
	if current := m.Master(); !slices.Contains(masters, current) {
		masters = append([]string{current}, masters...)
	}
	if slices.Equal(masters, m.masters) {
		return nil
	}
	if err := m.client.setMasters(masters, ""); err != nil {
		return err // the list is kept: a master sent nonsense
	}
	b, err := json.Marshal(masters)
	if err != nil {
		return err
	}
	if err := m.store.setState(ctx, keyMasters, string(b)); err != nil {
		return err
	}
	m.log.Info("the group's masters changed", "masters", masters, "was", m.masters)
	m.masters = masters
	return nil
}

// Master returns the URL of the master the target talks to.
func (m *Main) Master() string { return m.client.base().String() }
