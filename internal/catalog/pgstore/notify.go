package pgstore

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// note is what a master tells the others of a commit, as a notification's
// payload (at most 8000 bytes: the targets are split over several).
type note struct {
	From    string  `json:"f"`
	Targets []int64 `json:"t,omitempty"`
	Poke    []int64 `json:"p,omitempty"`
	Runs    bool    `json:"r,omitempty"`
	Events  bool    `json:"e,omitempty"`
	Masters bool    `json:"m,omitempty"`
	// Credentials: an API key, a certificate or a target's identity may
	// have changed.
	Credentials bool `json:"c,omitempty"`
}

// notePage bounds the targets one notification names.
const notePage = 500

// Notify tells the other masters, when the transaction commits, what it
// changed: NOTIFY is delivered at commit, and not at all on rollback.
// The notifications are held, to go with the COMMIT. With no other master
// serving the catalog (SetPeers) there is no one to tell: the only
// listener is this master's own, and delivering to it would cost the
// COMMIT the signal to its backend and the machine the work of both.
func (t *txQueries) Notify(ctx context.Context, c catalog.Commit) error {
	if t.s.alone.Load() {
		return nil
	}
	first := note{From: t.s.self, Runs: len(c.Runs) > 0, Events: c.Events, Masters: c.Masters, Credentials: c.Credentials}
	notes := []note{first}
	for len(c.Targets) > 0 || len(c.Poke) > 0 {
		n := &notes[len(notes)-1]
		if len(n.Targets)+len(n.Poke) >= notePage {
			notes = append(notes, note{From: t.s.self})
			n = &notes[len(notes)-1]
		}
		if len(c.Targets) > 0 {
			k := min(len(c.Targets), notePage-len(n.Targets))
			n.Targets, c.Targets = append(n.Targets, c.Targets[:k]...), c.Targets[k:]
		} else {
			k := min(len(c.Poke), notePage-len(n.Poke))
			n.Poke, c.Poke = append(n.Poke, c.Poke[:k]...), c.Poke[k:]
		}
	}
	for _, n := range notes {
		b, err := json.Marshal(n)
		if err != nil {
			return err
		}
		t.tx.hold(`SELECT pg_notify($1, $2)`, t.s.channel, string(b)) // sent with the COMMIT
	}
	return nil
}

// SetPeers tells the store whether other masters serve the catalog; it
// assumes they do until told. A master that starts while this one
// believes itself alone misses at most the notifications of commits made
// before this one hears of it (its own start is notified, as this one
// listens whatever it believes), which its periodic check against the
// catalog makes up for.
func (s *Store) SetPeers(others bool) { s.alone.Store(!others) }

// Listen delivers the other masters' commits until ctx ends, on a
// connection of its own; after a broken connection it reconnects, and
// tells fn that notifications may have been missed.
func (s *Store) Listen(ctx context.Context, fn func(c catalog.Commit, missed bool)) {
	broken := false
	for failures := 0; ctx.Err() == nil; failures++ {
		err := s.listen(ctx, func() {
			if broken {
				fn(catalog.Commit{}, true)
			}
			failures = 0
		}, fn)
		if ctx.Err() != nil {
			return
		}
		broken = true
		wait := min(100*time.Millisecond<<min(failures, 6), 5*time.Second)
		s.log.Warn("listening to the catalog's notifications failed; other masters' posts wake polls at the next check until it is back",
			muster.LogErr, err, muster.LogRetryIn, wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// listen runs one listening connection until it breaks; listening calls
// up once it listens.
func (s *Store) listen(ctx context.Context, up func(), fn func(c catalog.Commit, missed bool)) error {
	conn, err := pgx.ConnectConfig(ctx, s.conn)
	if err != nil {
		return classify(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return classify(err)
	}
	up()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return classify(err)
		}
		var msg note
		if err := json.Unmarshal([]byte(n.Payload), &msg); err != nil || msg.From == s.self {
			continue
		}
		c := catalog.Commit{Targets: msg.Targets, Poke: msg.Poke, Events: msg.Events, Masters: msg.Masters, Credentials: msg.Credentials}
		if msg.Runs {
			c.Runs = []string{""}
		}
		fn(c, false)
	}
}
