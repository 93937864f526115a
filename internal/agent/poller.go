package agent

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/schedule"
)

// errDefecting stops the poll loop after a DEFECT was applied.
var errDefecting = errors.New("defecting")

// pollLoop long-polls the master and applies what it sends, for ever. Any
// failure to reach the master is retried with capped backoff; the target
// carries on running its jobs meanwhile.
//
// Once polls work again the log says which came back: the master, or the
// store that could not commit an instruction (a full data directory), while
// the master answered throughout.
func (m *Main) pollLoop(ctx context.Context) {
	var last error // the last failure, until a poll works again
	failures := 0
	m.retryLoop(ctx, always, "poll failed; jobs keep running from the local copy", "", func(ctx context.Context) error {
		err := m.pollOnce(ctx)
		switch {
		case err != nil:
			last = err
			failures++
		case last != nil:
			var held *applyError
			if errors.As(last, &held) {
				m.log.Info("the instructions that could not be applied are applied now", muster.LogFailures, failures)
			} else {
				m.log.Info("the master is reachable again", muster.LogFailures, failures)
			}
			last, failures = nil, 0
		}
		return err
	})
}

// applyError is an instruction the target could not apply for a failure of
// its own (its store), not the instruction's: it is applied again at the
// next poll.
type applyError struct {
	seq int64
	err error
}

func (e *applyError) Error() string { return fmt.Sprintf("apply instruction %d: %v", e.seq, e.err) }
func (e *applyError) Unwrap() error { return e.err }

// pollOnce sends owed acks, makes one poll, and applies its instructions.
// Until the target has caught up with its master after starting, it asks
// the master not to hold the poll, and tells the scheduler once it has
// applied everything (a reply with nothing new) or failed to reach the
// master: the schedules wait for that (see scheduler.run).
func (m *Main) pollOnce(ctx context.Context) (err error) {
	wait, caughtUp := m.cfg.PollWait, false
	select {
	case <-m.sched.heard:
	default:
		wait = 0
		defer func() {
			if err != nil || caughtUp {
				m.sched.heardMaster()
			}
		}()
	}
	if err := m.flushAcks(ctx); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, m.cfg.PollWait+30*time.Second)
	defer cancel()
	resp, err := m.client.poll(pctx, m.enl.Cursor, m.enl.Epoch, wait, m.heartbeat(ctx))
	if err != nil {
		if ctx.Err() == nil {
			m.counters.pollErrors.Add(1)
		}
		return err
	}
	m.counters.lastPoll.Store(m.cfg.Now().UnixMilli())
	m.checkClockSkew(ctx, resp.ServerTime)
	if resp.ResyncRequired || resp.Epoch != m.enl.Epoch {
		return m.resync(ctx, resp)
	}
	if err := inOrder(resp.Instructions); err != nil {
		return err
	}
	if err := m.setPaused(ctx, resp.Paused); err != nil {
		return err
	}
	if err := m.refreshMasters(ctx, resp.Masters); err != nil {
		m.log.Warn("the masters a poll reply announced are not used", "masters", resp.Masters, muster.LogErr, err)
	}
	var launched []*activeRun
	m.replyTrace = m.trace.reply(resp.ServerTime)
	caughtUp = true
	for i, in := range resp.Instructions {
		if in.Seq <= m.enl.Cursor {
			continue // already applied: a replayed reply
		}
		caughtUp = false
		ar, err := m.apply(ctx, in, resp.ServerTime)
		if ar != nil {
			launched = append(launched, ar)
		}
		if err != nil {
			if errors.Is(err, errDefecting) {
				<-ctx.Done() // Run stops this loop, then defects
				return nil
			}
			m.stopAhead(resp.Instructions[i:], err)
			return &applyError{seq: in.Seq, err: err}
		}
	}
	// The acks (and the next poll) wait until the steps just launched have
	// started, so as not to compete with their spawn for the CPU; the
	// master needs the acks only for its bookkeeping.
	waitSpawned(ctx, launched, spawnWait)
	return m.flushAcks(ctx)
}

// stopAhead carries out the STOPs among pending, whose first instruction
// could not be applied (a full disk cannot commit it), without committing
// them: killing a step needs no disk, and the step may be what fills it.
// Each is applied again, in order, once the instructions before it are.
// A STOP of a job named by a waiting instruction before it waits too:
// carried out ahead of that job's START, it would stop the run the START,
// in order, skips, and let the START launch another.
func (m *Main) stopAhead(pending []agentproto.Instruction, cause error) {
	held := map[string]bool{}
	for i, in := range pending {
		if i > 0 && in.Operation == muster.OpStop && !held[in.Job] && !held[""] && m.exec.isRunning(in.Job) {
			m.log.Warn("carrying out a STOP ahead of an instruction that cannot be applied yet", muster.LogSeq, in.Seq, muster.LogJob, in.Job,
				"waiting", pending[0].Seq, muster.LogErr, cause)
			m.exec.stop(in.Job, "stopped by the operator")
		}
		held[in.Job] = true
	}
}

// inOrder refuses a reply whose instructions are not in increasing
// sequence order, as a master sends them: applied as they came, one after
// a higher one would be skipped as replayed, and never acknowledged.
func inOrder(ins []agentproto.Instruction) error {
	for i := 1; i < len(ins); i++ {
		if ins[i].Seq <= ins[i-1].Seq {
			return muster.Errorf(muster.EINVALID, "the master's reply is out of order: instruction %d comes after %d; none of it is applied",
				ins[i].Seq, ins[i-1].Seq)
		}
	}
	return nil
}

// heartbeat is what the next poll reports about the target. The spool
// counts the runs waiting in memory for a full disk too.
func (m *Main) heartbeat(ctx context.Context) heartbeat {
	depth, oldest := m.spool(ctx)
	return heartbeat{
		LocalTime:    m.now(),
		TimeZone:     m.tzName,
		PollInterval: m.enl.PollInterval,
		SpoolDepth:   depth,
		SpoolOldest:  oldest,
		SpoolDropped: m.store.spoolDropped(ctx),
		ClockOffset:  m.clockOffset.Load(),
		Paused:       m.paused.Load(),
		DiskFull:     m.diskFull(),
		Tracking:     m.cg.processTracking(),
	}
}

// spawnWait bounds how long acks wait for launched steps to start.
const spawnWait = 100 * time.Millisecond

// waitSpawned waits until every run has started its first step (or ended),
// for at most d.
func waitSpawned(ctx context.Context, runs []*activeRun, d time.Duration) {
	if len(runs) == 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for _, ar := range runs {
		select {
		case <-ar.spawned:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// resync asks the master to re-post everything this target should hold,
// because the catalog's epoch changed (a restored or re-created master) or
// the master does not know the cursor.
func (m *Main) resync(ctx context.Context, resp agentproto.PollResponse) error {
	m.log.Warn("resyncing with the master", "epoch", resp.Epoch, "held_epoch", m.enl.Epoch, "cursor", m.enl.Cursor)
	r, err := m.client.resync(ctx, m.enl.Cursor)
	if err != nil {
		return err
	}
	err = m.store.update(ctx, func(tx *sql.Tx) error {
		if err := setState(ctx, tx, keyEpoch, r.Epoch); err != nil {
			return err
		}
		return setState(ctx, tx, keyCursor, strconv.FormatInt(r.After, 10))
	})
	if err != nil {
		return err
	}
	m.enl.Epoch, m.enl.Cursor = r.Epoch, r.After
	return nil
}

// flushAcks sends the acks the store owes the master.
func (m *Main) flushAcks(ctx context.Context) error {
	for {
		acks, err := m.store.pendingAcks(ctx)
		if err != nil || len(acks) == 0 {
			return err
		}
		if err := m.client.ack(ctx, acks); err != nil {
			return err
		}
		if err := m.store.dropAcks(ctx, acks[len(acks)-1].Seq); isFull(err) {
			// The master has them: they go again, harmlessly, at the next
			// poll. Meanwhile the poll goes on, and says the disk is full.
			return nil
		} else if err != nil {
			return err
		}
	}
}

// apply carries out one instruction. Its effect, the cursor and the ack are
// committed in one local transaction, so a crash leaves the instruction
// either wholly applied or not at all. An instruction that cannot be
// applied is acknowledged with its error and the cursor still advances:
// other jobs are never held up by it.
func (m *Main) apply(ctx context.Context, in agentproto.Instruction, serverTime time.Time) (*activeRun, error) {
	// SYNC-TIME and RE-ENLIST talk to the master: they are done before the
	// local transaction, which only records their outcome (both may be
	// repeated if a crash comes in between).
	var exchanged error
	switch in.Operation {
	case muster.OpSyncTime:
		exchanged = m.syncTime(ctx)
	case muster.OpReEnlist:
		exchanged = m.reEnlist(ctx)
	}
	if ctx.Err() != nil || muster.ErrorCode(exchanged) == muster.EUNAVAILABLE {
		// The master could not be reached (or is going away), or the
		// target is: the instruction is kept, for the next poll to carry
		// out, not failed.
		return nil, cmp.Or(ctx.Err(), exchanged)
	}
	var started *activeRun
	err := m.store.update(ctx, func(tx *sql.Tx) error {
		// A failed instruction must leave nothing half-applied: its writes
		// are undone to this savepoint, and only the cursor and the ack are
		// committed.
		if _, err := tx.ExecContext(ctx, `SAVEPOINT apply`); err != nil {
			return err
		}
		var applyErr error
		if m.cfg.FailInstruction != nil {
			applyErr = m.cfg.FailInstruction(in)
		}
		switch {
		case applyErr != nil:
		case in.Operation == muster.OpInsert:
			applyErr = m.applyInsert(ctx, tx, in)
		case in.Operation == muster.OpUpdate:
			applyErr = m.applyUpdate(ctx, tx, in)
		case in.Operation == muster.OpDelete:
			applyErr = m.applyDelete(ctx, tx, in)
		case in.Operation == muster.OpStart:
			if started, applyErr = m.applyStart(ctx, tx, in, serverTime); applyErr == nil {
				applyErr = m.exec.trim(ctx, tx)
			}
		case in.Operation == muster.OpStop:
			applyErr = m.exec.stop(in.Job, "stopped by the operator")
		case in.Operation == muster.OpDefect:
			// Acknowledged here; the defect itself runs once every loop has
			// stopped (see Run).
		case in.Operation == muster.OpSetPoll:
			applyErr = m.applySetPoll(ctx, tx, in)
		case in.Operation == muster.OpSyncTime, in.Operation == muster.OpReEnlist:
			applyErr = exchanged
		default:
			applyErr = fmt.Errorf("%s: this target (muster %s) does not support this operation; upgrade it", in.Operation, muster.Version)
		}
		if applyErr != nil {
			m.log.Warn("instruction failed", muster.LogSeq, in.Seq, muster.LogOperation, in.Operation, muster.LogJob, in.Job, muster.LogErr, applyErr)
			if _, err := tx.ExecContext(ctx, `ROLLBACK TO apply`); err != nil {
				return err
			}
			if started != nil {
				m.exec.forget(started)
				started = nil
			}
			if err := m.instructionFailed(ctx, tx, in, applyErr); err != nil {
				return err
			}
		}
		if err := applied(ctx, tx, in.Seq, applyErr); err != nil {
			return err
		}
		if started != nil {
			// Its process starts while this commits.
			m.exec.arm(started)
		}
		return nil
	})
	if err != nil {
		if started != nil {
			m.exec.forget(started)
		}
		if m.unrecorded.seq != in.Seq {
			m.unrecorded.seq, m.unrecorded.err = in.Seq, err
		}
		return nil, err
	}
	m.unrecorded.seq, m.unrecorded.err = 0, nil
	m.enl.Cursor = in.Seq
	m.trace.committed(m.replyTrace, started)
	if started != nil {
		// The run is committed with the cursor; only now may its step run
		// (an armed step's process started during the commit, and waits at
		// its gate), first of all: the uploader is woken once the step has
		// run for startSaveDelay, or has ended. A crash in between leaves a
		// run recorded as running with no process, which the next start
		// records as abandoned.
		m.exec.launch(started)
	}
	if in.Operation == muster.OpSetPoll {
		m.reloadPollInterval(ctx)
	}
	switch in.Operation {
	case muster.OpDefect:
		m.log.Warn("the master posted DEFECT: this target is leaving it")
		if err := m.flushAcks(ctx); err != nil {
			m.log.Warn("the DEFECT could not be acknowledged; defecting anyway", muster.LogErr, err)
		}
		m.defectAsked()
		return started, errDefecting
	case muster.OpStart:
		if started == nil {
			m.wakeUploader() // a skipped run
		}
	case muster.OpInsert, muster.OpUpdate, muster.OpDelete:
		m.sched.jobsChanged()
	}
	return started, nil
}

// decodeStrict decodes an instruction payload, refusing fields this target
// does not know: a newer master's step kind must fail loudly, not be
// dropped and run as something else. A key given twice, or spelled in
// another case than its field, is refused too (jsonhttp.Unmarshal), not
// taken as one of its readings: a step's command is the one the master
// meant, or none.
func decodeStrict(in agentproto.Instruction, v any) error {
	if err := jsonhttp.Unmarshal(in.Payload, v); err != nil {
		return fmt.Errorf("%s %q: cannot read the payload (this target runs muster %s): %v", in.Operation, in.Job, muster.Version, err)
	}
	return nil
}

// applyInsert upserts a whole job at its version. An older version than the
// one held is a replay and changes nothing.
func (m *Main) applyInsert(ctx context.Context, tx *sql.Tx, in agentproto.Instruction) error {
	var w agentproto.InsertPayload
	if err := decodeStrict(in, &w); err != nil {
		return err
	}
	j := w.Domain()
	if j.Name != in.Job {
		return fmt.Errorf("INSERT %q: the payload is job %q", in.Job, j.Name)
	}
	if err := j.Validate(); err != nil {
		return fmt.Errorf("INSERT: %v", err)
	}
	if err := m.canRun(j); err != nil {
		return fmt.Errorf("INSERT %q: %v", j.Name, err)
	}
	held, ok, err := m.store.job(ctx, tx, j.Name)
	if err != nil {
		return err
	}
	if ok && held.Version > j.Version {
		return nil
	}
	return putJob(ctx, tx, j, m.cfg.Now())
}

// canRun checks a job against what only this target knows: its zone, its
// proxies and its connections. A job that needs something the target lacks
// fails its INSERT, visibly, instead of failing every run.
func (m *Main) canRun(j muster.Job) error {
	loc, err := m.jobLocation(j)
	if err != nil {
		return err
	}
	if err := schedule.ValidateAll(j.Schedules, loc); err != nil {
		return err
	}
	set := m.cfg.Settings
	for i, s := range j.Steps {
		if s.RunAs != "" {
			if !set.AllowDownloadedJobsToMatchProxyName {
				return fmt.Errorf("steps[%d] %q: run_as %q: the job step requires a proxy, but proxy matching is disabled on the target (allow_downloaded_jobs_to_match_proxy_name in its settings)", i, s.Name, s.RunAs)
			}
			if _, err := m.proxyUser(s.RunAs); err != nil {
				return fmt.Errorf("steps[%d] %q: %v", i, s.Name, err)
			}
		}
		if s.Connection != "" {
			if _, ok := set.Connections[s.Connection]; !ok {
				return fmt.Errorf("steps[%d] %q: connection %q not found on the target", i, s.Name, s.Connection)
			}
		}
	}
	return nil
}

// jobLocation is the zone a job's schedules fire in: its own, else the
// target's. A zone is read from the time zone database once; the
// scheduler asks again for every held job at every reload.
func (m *Main) jobLocation(j muster.Job) (*time.Location, error) {
	if j.TimeZone == "" {
		return m.loc, nil
	}
	if loc, ok := m.zones.Load(j.TimeZone); ok {
		return loc.(*time.Location), nil
	}
	loc, err := schedule.LoadZone(j.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("time_zone: %q is not an IANA time zone", j.TimeZone)
	}
	m.zones.Store(j.TimeZone, loc)
	return loc, nil
}

// applyUpdate changes a held job's header.
func (m *Main) applyUpdate(ctx context.Context, tx *sql.Tx, in agentproto.Instruction) error {
	var u agentproto.UpdatePayload
	if err := decodeStrict(in, &u); err != nil {
		return err
	}
	held, ok, err := m.store.job(ctx, tx, in.Job)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("UPDATE %q: the job is not on this target (did its INSERT fail?)", in.Job)
	}
	if held.Version > u.Version {
		return nil
	}
	held.Enabled, held.Description, held.Version = u.Enabled, u.Description, u.Version
	return putJob(ctx, tx, held, m.cfg.Now())
}

// applyDelete removes a job, or every job when the instruction names none.
// A job that is not held is already deleted.
func (m *Main) applyDelete(ctx context.Context, tx *sql.Tx, in agentproto.Instruction) error {
	var err error
	if in.Job == "" {
		_, err = tx.ExecContext(ctx, `DELETE FROM jobs`)
	} else {
		_, err = tx.ExecContext(ctx, `DELETE FROM jobs WHERE name = ?`, in.Job)
	}
	return err
}

// applyStart records the run a START asks for: running (to be launched after
// commit), or skipped when the START expired on the way or the job is
// already running here. Neither is an instruction error.
func (m *Main) applyStart(ctx context.Context, tx *sql.Tx, in agentproto.Instruction, serverTime time.Time) (*activeRun, error) {
	var p agentproto.StartPayload
	if err := decodeStrict(in, &p); err != nil {
		return nil, err
	}
	if p.RunID == "" {
		return nil, fmt.Errorf("START %q: the payload has no run_id", in.Job)
	}
	// A replayed START, whose run already happened, changes nothing: the
	// run's insert says so where the run is recorded (insertRun), and the
	// refusals below ask first, since its job may have changed since.
	job, ok, err := m.store.job(ctx, tx, in.Job)
	if err != nil {
		return nil, err
	}
	if err := startable(job, ok, in, p); err != nil {
		if done, existsErr := runExists(ctx, tx, p.RunID); existsErr != nil || done {
			return nil, existsErr
		}
		return nil, err
	}
	trigger := muster.TriggerOperator
	if p.RequestedBy != "" {
		trigger += ":" + p.RequestedBy
	}
	run := muster.Run{Job: job.Name, Target: m.enl.Name, RunID: p.RunID, Trigger: trigger, StartedAt: m.now(), Steps: []muster.StepAttempt{}}
	if !p.ExpiresAt.IsZero() && !serverTime.Before(p.ExpiresAt) {
		run.Message = fmt.Sprintf("the START expired at %s before it reached the target", p.ExpiresAt.Format(time.RFC3339))
		if m.unrecorded.seq == in.Seq {
			run.Message = fmt.Sprintf("the START expired at %s while this target could not record it: %v", p.ExpiresAt.Format(time.RFC3339), m.unrecorded.err)
		}
		return nil, m.exec.recordSkipped(ctx, tx, run)
	}
	if m.paused.Load() {
		run.Message = "the target is paused"
		return nil, m.exec.recordSkipped(ctx, tx, run)
	}
	ar, err := m.exec.begin(ctx, tx, job, run)
	if ar != nil {
		ar.env, ar.startStep = p.Env, p.Step
	}
	return ar, err
}

// startable refuses a START of a job this target does not hold (ok is
// false), or at a step the job as held does not have.
func startable(job muster.Job, ok bool, in agentproto.Instruction, p agentproto.StartPayload) error {
	if !ok {
		return fmt.Errorf("START %q: the job is not on this target (did its INSERT fail?)", in.Job)
	}
	if p.Step != "" && !slices.ContainsFunc(job.Steps, func(s muster.Step) bool { return s.Name == p.Step }) {
		return fmt.Errorf("START %q: the job as this target holds it (version %d) has no step %q", in.Job, job.Version, p.Step)
	}
	return nil
}

// applySetPoll changes the poll interval.
func (m *Main) applySetPoll(ctx context.Context, tx *sql.Tx, in agentproto.Instruction) error {
	var p agentproto.SetPollPayload
	if err := decodeStrict(in, &p); err != nil {
		return err
	}
	if err := muster.ValidatePollInterval("poll_interval", p.PollInterval); err != nil {
		return err
	}
	return setState(ctx, tx, keyPollInterval, strconv.Itoa(p.PollInterval))
}

func (m *Main) reloadPollInterval(ctx context.Context) {
	if enl, ok, err := m.store.enlistment(ctx); err == nil && ok {
		m.enl.PollInterval = enl.PollInterval
		m.pollInterval.Store(int64(enl.PollInterval))
	}
}
