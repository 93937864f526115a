package master

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/notify"
)

// AlertConfig configures how the master raises events and delivers the
// notifications its alerts call for.
type AlertConfig struct {
	// SMTP is the server e-mail goes through; e-mail cannot be sent when
	// its Addr is "".
	SMTP SMTPConfig
	// Retry are the waits between attempts at one delivery: it is tried at
	// most len(Retry)+1 times, then fails. A refusal (a 4xx reply, a 5xx
	// from an SMTP server) fails it at once.
	Retry []time.Duration
	// AttemptTimeout bounds one attempt.
	AttemptTimeout time.Duration
	// DetectInterval is how often the offline and no_success detectors look.
	DetectInterval time.Duration
	// NoSuccessGrace is how long after a start the master waits before it
	// judges no_success, so that runs spooled on targets while it was down
	// arrive first.
	NoSuccessGrace time.Duration
	// MaxIdle is the longest the dispatcher waits before it looks at the
	// outbox again when nothing wakes it.
	MaxIdle time.Duration
	// HTTPClient sends webhooks, as it is; when nil, one that does not
	// follow redirects and refuses link-local and unspecified addresses
	// (see notify.Webhook).
	HTTPClient *http.Client
}

// SMTPConfig is the SMTP server e-mail notifications go through.
type SMTPConfig struct {
	// Addr is host:port, e.g. smtp.example.com:587.
	Addr string
	// TLS is auto, starttls, tls or none (see notify.SMTPTLS); "" is auto.
	TLS string
	// From is the sender address.
	From string
	// Username, with the password in PasswordFile, authenticates (PLAIN,
	// only over TLS or to localhost).
	Username     string
	PasswordFile string
	// RootCAs verify the server's certificate; the system's when nil.
	RootCAs *x509.CertPool
}

// maxRetryAfter bounds how long a receiver's Retry-After delays the next
// attempt at a notification.
const maxRetryAfter = time.Hour

// DefaultAlertConfig returns the defaults: 18 attempts over about a day,
// so that a receiver down for an afternoon (a chat service's outage, a
// mail server's maintenance) still gets what was raised meanwhile;
// detectors every five seconds.
func DefaultAlertConfig() AlertConfig {
	return AlertConfig{
		Retry: []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
			15 * time.Minute, 30 * time.Minute, time.Hour, time.Hour, time.Hour, 2 * time.Hour, 2 * time.Hour,
			4 * time.Hour, 4 * time.Hour, 4 * time.Hour, 4 * time.Hour},
		AttemptTimeout: 30 * time.Second,
		DetectInterval: 5 * time.Second,
		NoSuccessGrace: 3 * time.Minute,
		MaxIdle:        5 * time.Second,
	}
}

// alerting raises the events the master detects itself and delivers
// notifications: a detector and a dispatcher, each a service.
type alerting struct {
	cfg     AlertConfig
	db      *catalog.Catalog
	now     func() time.Time
	log     *slog.Logger
	started time.Time
	keep    time.Duration // events older than this are deleted; 0 keeps them
	pruned  time.Time
	webhook *notify.Webhook
	smtp    *notify.SMTP // nil without an SMTP server

	dispatcher *service
	detector   *service
	// leader reports whether this master holds the catalog's singleton
	// duties: only that master detects events and delivers notifications.
	leader  func() bool
	startMu sync.Mutex

	// lanes send deliveries, one per address (see dispatchOnce).
	lanes   sync.WaitGroup
	lanesMu sync.Mutex
	busy    map[laneKey]bool
	ended   map[laneKey]bool // lanes that ended since the pass read what is due
	// sending are the deliveries a lane holds: a delivery readdressed while
	// a lane holds it (the operator's address changed) is not given to the
	// new address's lane until the old lane lets it go.
	sending   map[string]bool
	holdUntil time.Time // no lane starts before, after a failure to record
	holdErr   error
}

// newAlerting checks the configuration (a zero field takes its default)
// and reads the SMTP password.
func newAlerting(mcfg Config, log *slog.Logger) (*alerting, error) {
	cfg := mcfg.Alerts
	def := DefaultAlertConfig()
	if cfg.Retry == nil {
		cfg.Retry = def.Retry
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&cfg.AttemptTimeout, def.AttemptTimeout}, {&cfg.DetectInterval, def.DetectInterval}, {&cfg.MaxIdle, def.MaxIdle},
		{&cfg.NoSuccessGrace, def.NoSuccessGrace}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	a := &alerting{cfg: cfg, now: mcfg.Now, log: log, keep: mcfg.HistoryMaxAge, webhook: &notify.Webhook{Client: cfg.HTTPClient, Now: mcfg.Now}}
	var err error
	if a.smtp, err = smtpSender(cfg.SMTP, mcfg.Name, mcfg.Now); err != nil {
		return nil, err
	}
	// Alone, it holds the duties; a master tells it when it does.
	a.leader = func() bool { return true }
	a.dispatcher = newService("alert dispatcher", log, a.dispatchOnce)
	a.detector = newService("event detector", log, a.detectOnce)
	return a, nil
}

// start starts the detector and the dispatcher on db. Deliveries left
// pending by a previous process are resumed.
func (a *alerting) start(db *catalog.Catalog) {
	a.db = db
	a.dispatcher.Start()
	a.detector.Start()
}

// lead is told that this master took the singleton duties at now: its
// detectors count targets' polls from then, not holding the time without a
// leader against them.
func (a *alerting) lead(now time.Time) {
	a.startMu.Lock()
	a.started = now
	a.startMu.Unlock()
	a.detector.Wake()
	a.dispatcher.Wake()
}

// since returns when this master took the duties.
func (a *alerting) since() time.Time {
	a.startMu.Lock()
	defer a.startMu.Unlock()
	return a.started
}

// smtpSender checks the SMTP settings and reads the password file.
func smtpSender(c SMTPConfig, hello string, now func() time.Time) (*notify.SMTP, error) {
	if c.Addr == "" {
		if c.From != "" || c.Username != "" || c.PasswordFile != "" || c.TLS != "" {
			return nil, errors.New("--smtp-addr: the SMTP server is required with the other --smtp flags")
		}
		return nil, nil
	}
	if !strings.Contains(c.Addr, ":") {
		return nil, fmt.Errorf("--smtp-addr: %q is not host:port, such as smtp.example.com:587", c.Addr)
	}
	if err := muster.ValidateEmail("--smtp-from", c.From); err != nil || c.From == "" {
		return nil, fmt.Errorf("--smtp-from: the sender address, such as muster@example.com, is required with --smtp-addr")
	}
	mode, err := notify.ParseSMTPTLS(c.TLS)
	if err != nil {
		return nil, fmt.Errorf("--smtp-tls: %v", err)
	}
	s := &notify.SMTP{Addr: c.Addr, TLS: mode, From: c.From, Username: c.Username, Hello: hello, RootCAs: c.RootCAs, Now: now}
	if (c.Username == "") != (c.PasswordFile == "") {
		return nil, errors.New("--smtp-user and --smtp-password-file: give both or neither")
	}
	if host, _, _ := net.SplitHostPort(c.Addr); c.Username != "" && mode == notify.SMTPTLSNone && !notify.IsLocalhost(host) {
		return nil, errors.New("--smtp-user: the password is sent only over TLS or to localhost; drop --smtp-tls none")
	}
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--smtp-password-file: %w", err)
		}
		s.Password = strings.TrimRight(string(b), "\r\n")
	}
	return s, nil
}

// wake tells the dispatcher that events may be waiting.
func (a *alerting) wake() {
	if a != nil {
		a.dispatcher.Wake()
	}
}

// stop stops both services, waiting for attempts under way to end.
func (a *alerting) stop() {
	if a != nil {
		a.detector.Stop()
		a.dispatcher.Stop()
		a.lanes.Wait()
	}
}

// Deliveries are sent in lanes, one lane per address: a lane sends the
// deliveries due to its address one at a time, in order, while lanes run in
// parallel, so a receiver that is slow or does not answer delays only what
// goes to it. A pass reads at most lanePage due deliveries for each
// address, dueBatch in all, and at most maxLanes lanes run at once.
// digestMin or more deliveries due at once to one address, one after
// another, of one alert and one event, go as one notification, a digest
// (notify.NewDigest), of at most lanePage: a fleet that goes offline
// together is told in a few requests or mails, not one for each target.
const (
	lanePage  = 100
	dueBatch  = 1024
	maxLanes  = 32
	digestMin = 3
)

// laneKey is the address a lane serves.
type laneKey struct{ channel, address string }

// dispatchOnce matches new events against the alerts, then starts a lane
// for each address with deliveries due and none running. A lane wakes the
// dispatcher when it ends. It returns how long to wait before the next
// pass: until the next retry is due, at most MaxIdle.
func (a *alerting) dispatchOnce(ctx context.Context) (time.Duration, error) {
	if !a.leader() {
		return a.cfg.MaxIdle, nil
	}
	now := a.now()
	if hold, err := a.held(now); hold > 0 {
		// An attempt could not be recorded: do not make it again at once.
		return hold, err
	}
	for {
		n, _, err := a.db.DispatchEvents(ctx, newUID)
		if err != nil {
			return a.cfg.MaxIdle, err
		}
		if n == 0 {
			break
		}
	}
	a.lanesMu.Lock()
	clear(a.ended)
	a.lanesMu.Unlock()
	due, err := a.db.DueDeliveries(ctx, lanePage, dueBatch)
	if err != nil {
		return a.cfg.MaxIdle, err
	}
	for _, queue := range byAddress(due) {
		key := laneKey{queue[0].Channel, queue[0].Address}
		if queue = a.claimLane(key, queue); queue == nil {
			continue // a lane sends it; a lane that ends wakes us
		}
		a.lanes.Add(1)
		go a.runLane(ctx, key, queue)
	}
	wait := a.cfg.MaxIdle
	next, ok, err := a.db.NextDeliveryAt(ctx, now)
	if ok {
		wait = min(wait, max(next.Sub(a.now()), 0))
	}
	return wait, err
}

// claimLane marks key's lane running with the deliveries of queue no
// other lane holds, and returns them; nil when it may not start: not while
// it runs, nor when it ended after this pass read what is due (what was
// read may already be sent), nor with nothing to send.
func (a *alerting) claimLane(key laneKey, queue []catalog.PendingDelivery) []catalog.PendingDelivery {
	a.lanesMu.Lock()
	defer a.lanesMu.Unlock()
	if a.busy[key] || a.ended[key] || len(a.busy) >= maxLanes {
		return nil
	}
	var free []catalog.PendingDelivery
	for _, d := range queue {
		if !a.sending[d.ID] {
			free = append(free, d)
		}
	}
	if len(free) == 0 {
		return nil
	}
	if a.busy == nil {
		a.busy, a.sending = map[laneKey]bool{}, map[string]bool{}
	}
	a.busy[key] = true
	for _, d := range free {
		a.sending[d.ID] = true
	}
	return free
}

// runLane sends queue, one delivery at a time, then frees its lane and
// wakes the dispatcher.
func (a *alerting) runLane(ctx context.Context, key laneKey, queue []catalog.PendingDelivery) {
	defer a.lanes.Done()
	defer a.dispatcher.Wake()
	defer func() {
		a.lanesMu.Lock()
		for _, d := range queue {
			delete(a.sending, d.ID)
		}
		delete(a.busy, key)
		if a.ended == nil {
			a.ended = map[laneKey]bool{}
		}
		a.ended[key] = true
		a.lanesMu.Unlock()
	}()
	for _, group := range digests(queue) {
		if ctx.Err() != nil || !a.leader() {
			return
		}
		// What the lane read may have changed since: the operator's address
		// (its pending deliveries go to the new one, which another lane
		// serves), its secret, or the delivery failed.
		now, err := a.stillHere(ctx, key, group)
		if err != nil {
			a.hold(err)
			return
		}
		for _, part := range splitSmall(now) {
			if err := a.deliver(ctx, part); err != nil {
				if errors.Is(err, catalog.ErrNotLeader) {
					// Deposed: no lane starts until the lease's next check
					// has told this master, nor says more of it.
					err = nil
				}
				a.hold(err)
				return
			}
		}
	}
}

// stillHere returns those of group that are still pending to key's
// address, as they are now, in group's order.
func (a *alerting) stillHere(ctx context.Context, key laneKey, group []catalog.PendingDelivery) ([]catalog.PendingDelivery, error) {
	ids := make([]string, len(group))
	for i, d := range group {
		ids[i] = d.ID
	}
	pending, err := a.db.PendingDeliveries(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read the deliveries to send: %w", err)
	}
	current := make(map[string]catalog.PendingDelivery, len(pending))
	for _, p := range pending {
		current[p.ID] = p
	}
	var out []catalog.PendingDelivery
	for _, d := range group {
		if p, ok := current[d.ID]; ok && p.Channel == key.channel && p.Address == key.address {
			out = append(out, p)
		}
	}
	return out, nil
}

// digests splits a lane's queue into what is sent as one notification:
// runs of digestMin or more deliveries of one alert and one event together,
// every other delivery alone. A digest is one operator's, signed with its
// secret: operators that share an address (one team's relay) may have
// secrets of their own. Each operator's deliveries keep their order.
func digests(queue []catalog.PendingDelivery) [][]catalog.PendingDelivery {
	var out [][]catalog.PendingDelivery
	for _, q := range byOperator(queue) {
		out = append(out, runs(q)...)
	}
	return out
}

// byOperator splits deliveries into one queue per operator, in the order
// their operators first come, each in the order given.
func byOperator(queue []catalog.PendingDelivery) [][]catalog.PendingDelivery {
	var queues [][]catalog.PendingDelivery
	index := map[string]int{}
	for _, d := range queue {
		i, ok := index[d.Operator]
		if !ok {
			i = len(queues)
			index[d.Operator] = i
			queues = append(queues, nil)
		}
		queues[i] = append(queues[i], d)
	}
	return queues
}

// runs splits one operator's queue, in its order, into runs of digestMin or
// more deliveries of one alert and one event, and every other delivery
// alone.
func runs(queue []catalog.PendingDelivery) [][]catalog.PendingDelivery {
	var out [][]catalog.PendingDelivery
	for i := 0; i < len(queue); {
		j := i + 1
		for j < len(queue) && queue[j].Alert == queue[i].Alert && queue[j].Event.Name == queue[i].Event.Name {
			j++
		}
		if j-i >= digestMin {
			out = append(out, queue[i:j])
		} else {
			for k := i; k < j; k++ {
				out = append(out, queue[k:k+1])
			}
		}
		i = j
	}
	return out
}

// splitSmall returns part as one digest, or, when it is too small for
// one, each of its deliveries alone.
func splitSmall(part []catalog.PendingDelivery) [][]catalog.PendingDelivery {
	if len(part) >= digestMin {
		return [][]catalog.PendingDelivery{part}
	}
	out := make([][]catalog.PendingDelivery, len(part))
	for i := range part {
		out[i] = part[i : i+1]
	}
	return out
}

// hold stops new lanes for MaxIdle after an attempt could not be recorded,
// or, with err nil, after this master found that it lost the duties.
func (a *alerting) hold(err error) {
	a.lanesMu.Lock()
	defer a.lanesMu.Unlock()
	a.holdUntil, a.holdErr = a.now().Add(a.cfg.MaxIdle), err
}

// held returns how long new lanes are still held, and why.
func (a *alerting) held(now time.Time) (time.Duration, error) {
	a.lanesMu.Lock()
	defer a.lanesMu.Unlock()
	return a.holdUntil.Sub(now), a.holdErr
}

// byAddress splits deliveries, in the order given, into one queue per
// address, each in that order.
func byAddress(due []catalog.PendingDelivery) [][]catalog.PendingDelivery {
	var queues [][]catalog.PendingDelivery
	index := map[laneKey]int{}
	for _, d := range due {
		key := laneKey{d.Channel, d.Address}
		i, ok := index[key]
		if !ok {
			i = len(queues)
			index[key] = i
			queues = append(queues, nil)
		}
		queues[i] = append(queues[i], d)
	}
	return queues
}

// deliver makes one attempt at a notification (one delivery, or a digest
// of several) and records it for each: delivered, to be retried after the
// next wait of the Retry list, or failed. A digest refused for its size is
// sent again at once in two halves, each split again if refused so, down
// to one notification a request (fewer than digestMin go one at a time):
// only what is too large alone fails. It returns only an error recording
// the attempt, or asking whether this master still holds the duties
// (catalog.ErrNotLeader when it does not: it sends nothing then).
func (a *alerting) deliver(ctx context.Context, group []catalog.PendingDelivery) error {
	// The duties may have moved since this master last heard of its lease:
	// it may have been frozen past it, and resumed with this lane where it
	// stopped. The database says whether it holds them now, just before
	// the notification goes, so that it does not send what the master that
	// took them over sends. (What it sent just before it was cut off, and
	// could not record, the other sends again: receivers drop a repeat by
	// its delivery id.)
	if err := a.db.HoldsDuties(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, catalog.ErrNotLeader) {
			return err
		}
		return fmt.Errorf("check that this master holds the duties before a notification: %w", err)
	}
	d := group[0]
	n := notify.NewNotification(d.Delivery)
	if len(group) > 1 {
		ds := make([]muster.Delivery, len(group))
		for i, g := range group {
			ds[i] = g.Delivery
		}
		n = notify.NewDigest(ds)
	}
	actx, cancel := context.WithTimeout(ctx, a.cfg.AttemptTimeout)
	err := a.send(actx, d, n)
	cancel()
	if ctx.Err() != nil {
		return nil // stopping: this attempt does not count, and is made again at the next start
	}
	if len(group) > 1 && notify.IsTooLarge(err) {
		half := len(group) / 2
		for _, part := range [][]catalog.PendingDelivery{group[:half], group[half:]} {
			for _, p := range splitSmall(part) {
				if ctx.Err() != nil {
					return nil
				}
				if err := a.deliver(ctx, p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, d := range group {
		attempt := catalog.DeliveryAttempt{Err: err}
		if err != nil {
			if n := d.Attempts + 1; !notify.IsPermanent(err) && n <= len(a.cfg.Retry) {
				// A receiver that asks to be left alone longer is, up
				// to an hour.
				wait := max(a.cfg.Retry[n-1], min(notify.RetryAfter(err), maxRetryAfter))
				attempt.RetryAt = a.now().Add(wait)
			} else {
				a.log.Warn("notification failed", "alert", d.Alert, "operator", d.Operator, "channel", d.Channel,
					"event", d.Event.Name, "attempts", n, muster.LogErr, err)
			}
		}
		if err := a.db.RecordDeliveryAttempt(context.WithoutCancel(ctx), d.ID, attempt); err != nil {
			return fmt.Errorf("record a notification attempt: %w", err)
		}
	}
	return nil
}

// send makes one attempt at sending n to d's address.
func (a *alerting) send(ctx context.Context, d catalog.PendingDelivery, n notify.Notification) error {
	switch d.Channel {
	case muster.ChannelWebhook:
		if d.Secret == "" {
			return &notify.Error{Message: fmt.Sprintf("operator %s has no webhook secret", d.Operator), Permanent: true}
		}
		return a.webhook.Send(ctx, d.Address, d.Secret, n)
	case muster.ChannelEmail:
		if a.smtp == nil {
			return &notify.Error{Message: "the master has no SMTP server: start it with --smtp-addr and --smtp-from", Permanent: true}
		}
		return a.smtp.Send(ctx, d.Address, n)
	}
	return &notify.Error{Message: fmt.Sprintf("no channel %q", d.Channel), Permanent: true}
}

// eventPruneInterval is how often events past the history retention
// (HistoryMaxAge) are deleted.
const eventPruneInterval = time.Hour

// detectOnce raises target_offline and target_online, and, once the grace
// after a start has passed, no_success; it wakes the dispatcher when it
// raised anything. About once an hour it deletes the events, and their
// notifications, that are older than the history is kept.
func (a *alerting) detectOnce(ctx context.Context) (time.Duration, error) {
	if !a.leader() {
		return a.cfg.DetectInterval, nil
	}
	started := a.since()
	n, err := a.db.DetectPresence(ctx, started)
	if err == nil && !a.now().Before(started.Add(a.cfg.NoSuccessGrace)) {
		var more int
		more, err = a.db.DetectNoSuccess(ctx)
		n += more
	}
	if n > 0 {
		a.dispatcher.Wake()
	}
	if now := a.now(); err == nil && a.keep > 0 && now.Sub(a.pruned) >= eventPruneInterval {
		var pruned int64
		if pruned, err = a.db.PruneEvents(ctx, now.Add(-a.keep)); err == nil {
			a.pruned = now
			if pruned > 0 {
				a.log.Info("history retention deleted events", "deleted", pruned)
			}
		}
	}
	if errors.Is(err, catalog.ErrNotLeader) {
		// Deposed while frozen: the lease's next check tells the master.
		err = nil
	}
	return a.cfg.DetectInterval, err
}
