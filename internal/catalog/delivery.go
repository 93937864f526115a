package catalog

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/musterhq/muster"
)

// dispatchBatch is how many events one DispatchEvents matches.
const dispatchBatch = 500

// DispatchEvents matches events not yet dispatched, oldest first, against
// the alerts, and records a pending delivery for each (alert, operator,
// channel) they call for, in one transaction with marking the events
// dispatched. An operator with no address gets a failed delivery on the
// "none" channel, so the history shows the alert fired. It returns how many
// events it dispatched (at most a batch; call again while it returns a full
// one) and how many deliveries it created. newID makes each delivery's id.
func (c *Catalog) DispatchEvents(ctx context.Context, newID func() string) (events, deliveries int, err error) {
	if waiting, err := c.store.UndispatchedEvents(ctx, 1); err != nil || len(waiting) == 0 {
		return 0, 0, err
	}
	err = c.update(ctx, func(tx *tx) error {
		events, deliveries = 0, 0
		tx.keepCredentials()
		routes, err := tx.AlertRoutes(ctx)
		if err != nil {
			return err
		}
		batch, err := tx.UndispatchedEvents(ctx, dispatchBatch)
		if err != nil || len(batch) == 0 {
			return err
		}
		for _, e := range batch {
			for _, r := range routes {
				if !enabledFor(r, e) || !r.Alert.Matches(e) {
					continue
				}
				for _, ch := range channels(r) {
					d := DeliveryRow{UID: newID(), EventID: e.ID, Alert: r.Alert.Name, OperatorID: r.OpID, Operator: r.OpName,
						Channel: ch.name, Address: ch.address, Status: muster.DeliveryPending, CreatedAt: tx.now}
					if ch.name == muster.ChannelNone {
						d.Status = muster.DeliveryFailed
						d.LastError = fmt.Sprintf("operator %s has no webhook or e-mail address; set one with `muster operator update %s --webhook URL`", r.OpName, r.OpName)
					} else {
						now := tx.now
						d.NextAttempt = &now
					}
					created, err := tx.InsertDelivery(ctx, d)
					if err != nil {
						return err
					}
					if created {
						deliveries++
					}
				}
			}
		}
		events = len(batch)
		ids := make([]int64, len(batch))
		for i, e := range batch {
			ids[i] = e.ID
		}
		return tx.MarkDispatched(ctx, ids)
	})
	return events, deliveries, err
}

// enabledFor reports whether the alert was enabled when e was raised: as
// it is now for an event raised since it was last enabled or disabled, as
// it was before for one raised earlier but matched only now. (An alert
// turned off and on again before the events raised in between are matched
// counts them as raised while it was off.)
func enabledFor(r AlertRoute, e muster.Event) bool {
	if e.ID > r.ChangedAfter {
		return r.Alert.Enabled
	}
	return !r.Alert.Enabled
}

type channel struct{ name, address string }

// channels lists where a route's operator is notified.
func channels(r AlertRoute) []channel {
	var out []channel
	if r.Webhook != "" {
		out = append(out, channel{muster.ChannelWebhook, r.Webhook})
	}
	if r.Email != "" {
		out = append(out, channel{muster.ChannelEmail, r.Email})
	}
	if len(out) == 0 {
		out = append(out, channel{muster.ChannelNone, ""})
	}
	return out
}

// PendingDelivery is a delivery due for an attempt, with what sending it
// takes.
type PendingDelivery struct {
	muster.Delivery
	// Secret is the operator's webhook secret now ("" if it was deleted).
	Secret string
}

// DueDeliveries returns pending deliveries whose next attempt is due, the
// earliest first: at most perAddress to each channel and address (so that
// the many to one address do not hide those to others), limit in all.
func (c *Catalog) DueDeliveries(ctx context.Context, perAddress, limit int) ([]PendingDelivery, error) {
	return c.store.DueDeliveries(ctx, c.opts.Now(), perAddress, limit)
}

// PendingDeliveries returns those of the deliveries ids that are still
// pending, as they are now: an operator's address or secret may have
// changed since they were read (their pending deliveries go to the new
// address), or they may have been failed meanwhile. They come in no order.
func (c *Catalog) PendingDeliveries(ctx context.Context, ids []string) ([]PendingDelivery, error) {
	return c.store.PendingDeliveries(ctx, ids)
}

// NextDeliveryAt returns when the earliest pending delivery that is due
// after after is due, or ok false when none is.
func (c *Catalog) NextDeliveryAt(ctx context.Context, after time.Time) (at time.Time, ok bool, err error) {
	return c.store.NextDeliveryAt(ctx, after)
}

// HoldsDuties asks the database whether this master holds the singleton
// duties now (see Store.HoldsDuties): nil when it does, ErrNotLeader when
// it does not.
func (c *Catalog) HoldsDuties(ctx context.Context) error { return c.store.HoldsDuties(ctx) }

// DeliveryAttempt is the outcome of one attempt to send a delivery.
type DeliveryAttempt struct {
	// Err is why the attempt failed; nil when it was delivered.
	Err error
	// RetryAt is when to try again after a failure; zero to give up, which
	// fails the delivery.
	RetryAt time.Time
}

// RecordDeliveryAttempt records an attempt at the pending delivery id. The
// error is stored as text: what is not UTF-8 in it (a receiver's answer
// may hold anything), and a NUL, become U+FFFD.
func (c *Catalog) RecordDeliveryAttempt(ctx context.Context, id string, a DeliveryAttempt) error {
	return c.update(ctx, func(tx *tx) error {
		status, lastErr := muster.DeliveryDelivered, ""
		if a.Err != nil {
			lastErr = muster.TruncateMessage(storable(strings.ToValidUTF8(a.Err.Error(), "\uFFFD")))
		}
		var next, delivered *time.Time
		switch {
		case a.Err == nil:
			now := tx.now
			delivered = &now
		case a.RetryAt.IsZero():
			status = muster.DeliveryFailed
		default:
			status = muster.DeliveryPending
			next = &a.RetryAt
		}
		return tx.RecordDeliveryAttempt(ctx, id, status, lastErr, next, delivered)
	})
}

// DeliveryFilter selects deliveries. Empty fields match any.
type DeliveryFilter struct {
	Alert    string
	Operator string
	Status   muster.DeliveryStatus
	Limit    int // the newest this many; 100 when zero
	// Cursor reads on after the page that named it as its next. Empty for
	// the newest.
	Cursor string
	// BeforeKey bounds the notifications to those the catalog numbered
	// below it; 0 for no bound. The catalog sets it from Cursor for its
	// store.
	BeforeKey int64
}

// StoredDelivery is a notification as the store keeps it: with the number
// the catalog gave it when it was made, which orders the alert history.
type StoredDelivery struct {
	muster.Delivery
	Key int64
}

// deliveryList names the alert history in its cursors.
const deliveryList = "alert history"

// FindDeliveries returns deliveries with their events, newest first: the
// alert history.
func (c *Catalog) FindDeliveries(ctx context.Context, f DeliveryFilter) ([]muster.Delivery, error) {
	list, _, err := c.FindDeliveriesPage(ctx, f)
	return list, err
}

// FindDeliveriesPage returns a page of the alert history, newest first
// (in the order the notifications were made), and the cursor of the next
// page: empty when no notification the filter selects is older than the
// page's last.
func (c *Catalog) FindDeliveriesPage(ctx context.Context, f DeliveryFilter) ([]muster.Delivery, string, error) {
	key, err := decodeCursor(deliveryList, f.Cursor, 1, 0)
	if err != nil {
		return nil, "", err
	}
	if key != nil {
		f.BeforeKey = key[0]
	}
	limit := cmp.Or(f.Limit, 100)
	f.Limit = limit + 1 // one more tells whether there is a next page
	rows, err := c.store.FindDeliveries(ctx, f)
	if err != nil {
		return nil, "", err
	}
	rows, next := pageOf(rows, limit, deliveryList, func(r StoredDelivery) []int64 { return []int64{r.Key} })
	out := make([]muster.Delivery, len(rows))
	for i, r := range rows {
		out[i] = r.Delivery
	}
	return out, next, nil
}
