package master

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	v1 "github.com/musterhq/muster/internal/agentproto/v1"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/pki"
)

// Body limits on the agent endpoints. Enlistment is unauthenticated and gets
// the smallest. A run upload's reports are decoded one at a time, each at
// most agentproto.MaxRunReport as sent: a target cuts a run's output to
// 8 MiB, which JSON's escapes make longer.
const (
	maxEnlistBody = 16 << 10
	maxAckBody    = 1 << 20
	maxRunsBody   = agentproto.MaxRunsBody
	maxRunReport  = agentproto.MaxRunReport
)

// agent serves the target protocol under /agent/v1/.
type agent struct {
	m *Main
}

// agentHandler serves an authenticated target; the error it returns is the
// reply.
type agentHandler func(w http.ResponseWriter, r *http.Request, t catalog.TargetIdentity) error

// Access says who may call an endpoint of the target protocol.
type Access string

// The kinds of access.
const (
	// AccessAnyone needs no certificate: the request carries its own proof
	// (an enlistment token, possession of an expired certificate's key).
	AccessAnyone Access = "anyone"
	// AccessTarget needs the certificate of an active target.
	AccessTarget Access = "target"
	// AccessTombstone needs the certificate of an active target, or of a
	// deleted one, which may only collect its DEFECT.
	AccessTombstone Access = "tombstone"
)

// AgentRoute is one endpoint of the target protocol as the master serves it.
type AgentRoute struct {
	// Pattern is "METHOD /path", as registered on the listener.
	Pattern string
	// Access says who may call it.
	Access Access

	handler http.Handler
}

// routes returns the endpoints of the target protocol.
func (a *agent) routes() []AgentRoute {
	anyone := func(pattern string, h func(http.ResponseWriter, *http.Request) error) AgentRoute {
		return AgentRoute{Pattern: pattern, Access: AccessAnyone, handler: a.serve(h)}
	}
	certified := func(pattern string, access Access, h agentHandler) AgentRoute {
		return AgentRoute{Pattern: pattern, Access: access, handler: a.authenticated(h, access)}
	}
	return []AgentRoute{
		anyone("POST "+agentproto.PathEnlist, a.enlist),
		anyone("POST "+agentproto.PathRenewExpired, a.renewExpired),
		// A deleted target (a tombstone) may only fetch and acknowledge
		// its DEFECT, and say it has defected.
		certified("GET "+agentproto.PathInstructions, AccessTombstone, a.poll),
		certified("POST "+agentproto.PathAcks, AccessTombstone, a.ack),
		certified("POST "+agentproto.PathDefect, AccessTombstone, a.defect),
		certified("POST "+agentproto.PathRuns, AccessTarget, a.runs),
		certified("POST "+agentproto.PathResync, AccessTarget, a.resync),
		certified("POST "+agentproto.PathRenew, AccessTarget, a.renew),
		certified("GET "+agentproto.PathTime, AccessTarget, a.time),
		certified("POST "+agentproto.PathReEnlist, AccessTarget, a.reenlist),
		certified("POST "+agentproto.PathEvents, AccessTarget, a.events),
	}
}

// register registers routes on mux, and an answer naming the endpoint for
// any other path of the protocol.
func (a *agent) register(mux *http.ServeMux, routes []AgentRoute) {
	for _, rt := range routes {
		mux.Handle(rt.Pattern, rt.handler)
	}
	mux.Handle("/agent/", a.serve(func(w http.ResponseWriter, r *http.Request) error {
		return muster.Errorf(muster.ENOTFOUND, "no agent endpoint %s %s", r.Method, r.URL.Path)
	}))
}

// accessOf returns who may call the endpoint at path: AccessAnyone for a
// path that is not an endpoint.
func accessOf(routes []AgentRoute) func(path string) Access {
	byPath := map[string]Access{}
	for _, rt := range routes {
		_, path, _ := strings.Cut(rt.Pattern, " ")
		byPath[path] = rt.Access
	}
	return func(path string) Access {
		if a, ok := byPath[path]; ok {
			return a
		}
		return AccessAnyone
	}
}

// serve wraps an agent endpoint: it refuses a target whose protocol this
// master does not speak, with a message naming both versions, and a query
// parameter given twice; stamps every reply with ours, and answers with
// the error h returns, if any.
func (a *agent) serve(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(agentproto.HeaderProtocol, strconv.Itoa(agentproto.Version))
		err := checkProtocol(r.Header.Get(agentproto.HeaderProtocol))
		if err == nil {
			err = checkQueryOnce(r.URL.Query())
		}
		if err == nil {
			err = h(w, r)
		}
		if err != nil {
			retryLater(w, err)
			jsonhttp.WriteError(w, r, a.m.log, err)
		}
	})
}

// checkQueryOnce refuses a query parameter given more than once. No
// parameter of the agent protocol is a list: a handler reads the first
// value, and a proxy or log in front of the master may read another, so a
// poll would do other than it said (paused=false&paused=true). A parameter
// the master does not read is let through, as the protocol promises, but
// not twice.
func checkQueryOnce(q url.Values) error {
	// Of the names given twice, the first in order, so that the error is
	// always the same.
	first, twice := "", false
	for name, v := range q {
		if len(v) > 1 && (!twice || name < first) {
			first, twice = name, true
		}
	}
	if twice {
		return muster.Errorf(muster.EINVALID, "%s: given %d times; give it once", first, len(q[first]))
	}
	return nil
}

// retryLater asks a target refused for now (ERATELIMIT: its requests or
// uploads are over their share; EUNAVAILABLE: the catalog cannot be
// written) to come back in a second at the soonest, unless the handler
// said when. Targets wait that long, or their backoff if longer.
func retryLater(w http.ResponseWriter, err error) {
	switch muster.ErrorCode(err) {
	case muster.ERATELIMIT, muster.EUNAVAILABLE:
		if w.Header().Get("Retry-After") == "" {
			jsonhttp.SetRetryAfter(w, time.Second)
		}
	}
}

// targetProtocol is the protocol version a request's target speaks; serve
// has checked it.
func targetProtocol(r *http.Request) int {
	v, _ := strconv.Atoi(r.Header.Get(agentproto.HeaderProtocol))
	return v
}

// checkProtocol checks the protocol version a target sent.
func checkProtocol(header string) error {
	v, err := strconv.Atoi(header)
	switch {
	case err != nil:
		return muster.Errorf(muster.EINVALID, "the %s header with the target's protocol version is required", agentproto.HeaderProtocol)
	case v > agentproto.Version:
		return muster.Errorf(muster.EUNSUPPORTED, "the target speaks protocol %d, newer than this master's %d; upgrade the master first (it accepts protocols %d to %d)", v, agentproto.Version, agentproto.MinVersion, agentproto.Version)
	case v < agentproto.MinVersion:
		return muster.Errorf(muster.EUNSUPPORTED, "the target speaks protocol %d, older than the oldest this master accepts (%d; this master speaks %d); upgrade the target", v, agentproto.MinVersion, agentproto.Version)
	}
	return nil
}

// authenticated requires a client certificate issued by the CA and looks
// its serial up in the catalog on every request. A resumed TLS session skips
// certificate callbacks, so this lookup, not the handshake, is what keeps a
// deleted or defected target out.
func (a *agent) authenticated(h agentHandler, access Access) http.Handler {
	return a.serve(func(w http.ResponseWriter, r *http.Request) error {
		leaf := verifiedLeaf(r)
		if leaf == nil {
			return muster.Errorf(muster.EUNAUTHORIZED, "a client certificate issued by this master is required; enlist with `muster enlist`")
		}
		now := a.m.now()
		if now.After(leaf.NotAfter) {
			return muster.Errorf(muster.EUNAUTHORIZED, "the client certificate expired at %s; the target renews it at %s", leaf.NotAfter.UTC().Format(time.RFC3339), agentproto.PathRenewExpired)
		}
		t, err := a.m.Catalog.AuthenticateTarget(r.Context(), pki.SerialString(leaf.SerialNumber))
		if muster.ErrorCode(err) == muster.EUNAUTHORIZED {
			t, err = a.m.adoptCert(r.Context(), leaf, err)
		}
		if err != nil {
			return err
		}
		if leaf.Subject.CommonName != t.Name {
			return muster.Errorf(muster.EUNAUTHORIZED, "the certificate does not name its target")
		}
		if err := admitState(t, access); err != nil {
			return err
		}
		if !a.m.targetRequests.acquire(t.ID) {
			return muster.Errorf(muster.ERATELIMIT, "target %q has %d requests in progress, as many as a target may", t.Name, maxRequestsPerTarget)
		}
		parked := false
		defer func() {
			if !parked {
				a.m.targetRequests.release(t.ID)
			}
		}()
		err = h(w, r, t)
		if err == errParked {
			// The parked poll answers, and releases the slot, later.
			parked, err = true, nil
		}
		return err
	})
}

// admitState refuses a target whose state does not allow access.
func admitState(t catalog.TargetIdentity, access Access) error {
	switch {
	case t.State == catalog.TargetDeleted && access != AccessTombstone:
		return muster.Errorf(muster.EGONE, "target %q was deleted on the master; it may only collect its DEFECT", t.Name)
	case t.State == catalog.TargetDefected:
		return muster.Errorf(muster.EUNAUTHORIZED, "target %q is no longer enlisted in this master; run `muster defect --force` on it, then enlist it again", t.Name)
	}
	return nil
}

// stillEnlisted checks again, for a poll held since it was authenticated
// and then poked, that its target may still poll: a target that left
// meanwhile is refused, as its next request would be.
func (m *Main) stillEnlisted(ctx context.Context, serial string) error {
	if serial == "" {
		return nil
	}
	t, err := m.Catalog.AuthenticateTarget(ctx, serial)
	if err != nil {
		return err
	}
	return admitState(t, AccessTombstone)
}

// adoptCert has the catalog record leaf, which the CA issued and the
// catalog does not know (see catalog.AdoptCert), and returns its target;
// or refused, the error of the lookup, if the catalog does not adopt it.
func (m *Main) adoptCert(ctx context.Context, leaf *x509.Certificate, refused error) (catalog.TargetIdentity, error) {
	keyHash, err := pki.KeyHash(leaf.PublicKey)
	if err != nil {
		return catalog.TargetIdentity{}, refused
	}
	t, err := m.Catalog.AdoptCert(ctx, catalog.CertRow{Serial: pki.SerialString(leaf.SerialNumber), IssuedAt: leaf.NotBefore.Add(pki.Backdate),
		NotAfter: leaf.NotAfter, KeyHash: keyHash}, pki.TargetUID(leaf), leaf.Subject.CommonName)
	if muster.ErrorCode(err) == muster.EUNAUTHORIZED {
		return catalog.TargetIdentity{}, refused
	}
	if err == nil {
		m.log.Info("a certificate the catalog did not hold adopted: the catalog was restored from a backup taken before it was issued",
			muster.LogTarget, t.Name, "serial", t.CertSerial)
	}
	return t, err
}

// verifiedLeaf returns the client certificate if the TLS layer verified it
// against the CA for client authentication.
func verifiedLeaf(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	return r.TLS.VerifiedChains[0][0]
}

// poll answers GET /agent/v1/instructions: pending instructions after the
// target's cursor, at once if there are any, or when some are committed, or
// empty after the hold.
func (a *agent) poll(w http.ResponseWriter, r *http.Request, t catalog.TargetIdentity) error {
	q := r.URL.Query()
	after, err := strconv.ParseInt(q.Get(agentproto.QueryAfter), 10, 64)
	if err != nil || after < 0 {
		return muster.Errorf(muster.EINVALID, "%s: a sequence number is required", agentproto.QueryAfter)
	}
	hb, leftOut, err := heartbeatFrom(q, a.m.now())
	if err != nil {
		return err
	}
	if leftOut != nil {
		// Said once for what a target keeps sending, not at every poll.
		if said, _ := a.m.heartbeatWarned.Swap(t.ID, leftOut.Error()); said != leftOut.Error() {
			a.m.log.Warn("heartbeat fields left out", muster.LogTarget, t.Name, muster.LogErr, leftOut)
		}
	} else {
		a.m.heartbeatWarned.Delete(t.ID)
	}
	hb.Protocol = targetProtocol(r)
	a.m.Catalog.RecordPoll(t.ID, hb)
	a.m.metrics.polls.Inc()

	hold := time.Duration(hb.PollInterval) * time.Second
	if wait, err := strconv.Atoi(q.Get(agentproto.QueryWait)); err == nil && wait >= 0 {
		hold = min(hold, time.Duration(wait)*time.Second)
	}
	hold = min(hold, muster.MaxPollHold, a.m.cfg.MaxPollHold)

	// Subscribe to pokes before reading the target's state: a change
	// committed after the read pokes this poll, one committed before is in
	// what it reads.
	poked := a.m.hub.Poked(t.ID)
	parked := false
	defer func() {
		if !parked {
			a.m.hub.Done(t.ID, poked)
		}
	}()
	// Subscribe to wake-ups before the read too: what is posted after it
	// wakes the poll; what is posted before is in it (and a wake-up for
	// what the read found only has the poll read again).
	woken := a.m.hub.Subscribe(t.ID)
	last, paused, ins, err := a.m.Catalog.PollPending(r.Context(), t.ID, after)
	if err != nil {
		return err
	}
	// A target that does not know it was paused or resumed is told at once,
	// and so is one that holds another epoch: it has a resync to ask for.
	if believed, err := strconv.ParseBool(q.Get(agentproto.QueryPaused)); err == nil && believed != paused {
		hold = 0
	}
	if epoch := q.Get(agentproto.QueryEpoch); epoch != "" && epoch != a.m.Catalog.Epoch() {
		hold = 0
	}
	reply := agentproto.PollResponse{Epoch: a.m.Catalog.Epoch(), Protocol: agentproto.Version, Paused: paused}
	if after > last {
		// The target has applied instructions this catalog never posted:
		// the catalog was restored from an older backup.
		reply.ResyncRequired = true
		reply.Masters, reply.ServerTime = a.m.masterURLs(), a.m.now()
		jsonhttp.WriteJSON(w, http.StatusOK, reply)
		return nil
	}

	// Everything up to last is either pending (and read with it) or not
	// for this poll: a check against the catalog wakes it only for what
	// comes after.
	a.m.hub.Hold(t.ID, last)
	if len(ins) == 0 && hold > 0 && a.park(w, r, t, after, hold, reply, poked, woken) {
		parked = true
		return errParked // the parked poll is answered later
	}
	timer := time.NewTimer(hold)
	defer timer.Stop()
	a.m.metrics.held.Inc()
	defer a.m.metrics.held.Dec()
	for {
		if len(ins) > 0 || hold <= 0 {
			reply.Instructions = wireInstructions(ins)
			break
		}
		select {
		case <-woken:
			woken = a.m.hub.Subscribe(t.ID)
			if ins, err = a.m.Catalog.PendingInstructions(r.Context(), t.ID, after); err != nil {
				return err
			}
			continue
		case <-poked:
			// Answer now, with the target's state as it is now.
			if err := a.m.stillEnlisted(r.Context(), t.CertSerial); err != nil {
				return err
			}
			if _, reply.Paused, err = a.m.Catalog.PollState(r.Context(), t.ID); err != nil {
				return err
			}
		case <-timer.C:
		case <-a.m.hub.Closed():
		case <-r.Context().Done():
			return nil // the target went away; nobody reads a reply
		}
		break
	}
	if reply.Instructions == nil {
		reply.Instructions = []agentproto.Instruction{}
	}
	reply.Masters, reply.ServerTime = a.m.masterURLs(), a.m.now()
	jsonhttp.WriteJSON(w, http.StatusOK, reply)
	return nil
}

// wireInstructions converts download-list entries to the protocol's.
func wireInstructions(rows []catalog.InstructionRow) []agentproto.Instruction {
	out := make([]agentproto.Instruction, len(rows))
	for i, r := range rows {
		out[i] = agentproto.Instruction{Seq: r.Seq, Operation: r.Operation, Job: r.Job}
		if len(r.Payload) > 0 {
			out[i].Payload = json.RawMessage(r.Payload)
		}
	}
	return out
}

// maxSpoolOldest bounds the age of a spooled run a target may report: ten
// years, far beyond any retention, and far within a time.Duration.
const maxSpoolOldest = 10 * 365 * 24 * time.Hour

// heartbeatFrom reads the heartbeat carried by a poll's query. What it
// left out, recorded as unreported, is in leftOut; a refusal of the poll
// is in err.
func heartbeatFrom(q map[string][]string, now time.Time) (hb catalog.Heartbeat, leftOut, err error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	hb = catalog.Heartbeat{At: now, TimeZone: get(agentproto.QueryTimeZone), Version: get(agentproto.QueryVersion)}
	if s := get(agentproto.QueryLocalTime); s != "" {
		lt, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return hb, nil, muster.Errorf(muster.EINVALID, "%s: RFC 3339 time with offset required", agentproto.QueryLocalTime)
		}
		hb.LocalTime = lt
	}
	hb.PollInterval = muster.DefaultPollInterval
	if s := get(agentproto.QueryPollInterval); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || muster.ValidatePollInterval(agentproto.QueryPollInterval, v) != nil {
			return hb, nil, muster.Errorf(muster.EINVALID, "%s: %d to %d seconds", agentproto.QueryPollInterval, muster.MinPollInterval, muster.MaxPollInterval)
		}
		hb.PollInterval = v
	}
	if s := get(agentproto.QueryClockOffset); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return hb, nil, muster.Errorf(muster.EINVALID, "%s: milliseconds", agentproto.QueryClockOffset)
		}
		d := time.Duration(v) * time.Millisecond
		hb.ClockOffset = &d
	}
	hb.SpoolDepth, _ = strconv.Atoi(get(agentproto.QuerySpoolDepth))
	hb.SpoolDropped, _ = strconv.Atoi(get(agentproto.QuerySpoolDropped))
	if s := get(agentproto.QuerySpoolOldest); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 0 || v > maxSpoolOldest.Seconds() {
			return hb, nil, muster.Errorf(muster.EINVALID, "%s: seconds, 0 to %d", agentproto.QuerySpoolOldest, int64(maxSpoolOldest.Seconds()))
		}
		d := time.Duration(v * float64(time.Second))
		hb.SpoolOldest = &d
	}
	hb.DiskFull, _ = strconv.ParseBool(get(agentproto.QueryDiskFull))
	switch hb.ProcessTracking = get(agentproto.QueryProcessTracking); hb.ProcessTracking {
	case "", "cgroup", "environment":
	default:
		return hb, nil, muster.Errorf(muster.EINVALID, "%s: cgroup or environment, not %q", agentproto.QueryProcessTracking, hb.ProcessTracking)
	}
	// Text that would be refused at enlistment is left out, and the poll
	// answered: a target whose polls were refused would get no
	// instructions. The poll logs what was left out.
	var left []error
	if err := muster.ValidateTargetText(agentproto.QueryTimeZone, hb.TimeZone, muster.MaxTargetTimeZone); err != nil {
		hb.TimeZone, left = "", append(left, err)
	}
	if err := muster.ValidateTargetText(agentproto.QueryVersion, hb.Version, muster.MaxTargetVersion); err != nil {
		hb.Version, left = "", append(left, err)
	}
	return hb, errors.Join(left...), nil
}

// ack answers POST /agent/v1/acks.
func (a *agent) ack(w http.ResponseWriter, r *http.Request, t catalog.TargetIdentity) error {
	var req agentproto.AckRequest
	if err := jsonhttp.DecodeJSON(w, r, maxAckBody, &req); err != nil {
		return err
	}
	acks := make([]catalog.AckRow, len(req.Acks))
	for i, k := range req.Acks {
		acks[i] = catalog.AckRow{Seq: k.Seq, Status: muster.InstructionDownloaded}
		if !k.OK {
			acks[i].Status, acks[i].Error = muster.InstructionFailed, k.Error
		}
	}
	acked, err := a.m.Catalog.Ack(r.Context(), t.ID, acks)
	if err != nil {
		return err
	}
	a.m.metrics.acked(acked)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// runs answers POST /agent/v1/runs, in the target's protocol. The reports
// are written a few megabytes at a time as they are decoded, each part let
// go once written, so that an upload holds about one part, not all of it:
// each report is kept at its own revision and answered on its own, so the
// reports of an upload are independent, and an upload that fails part way
// is sent again whole, its parts written already changing nothing.
func (a *agent) runs(w http.ResponseWriter, r *http.Request, t catalog.TargetIdentity) error {
	if s := r.URL.Query().Get(agentproto.QuerySentAt); s != "" {
		sent, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return muster.Errorf(muster.EINVALID, "%s: RFC 3339 time required", agentproto.QuerySentAt)
		}
		// The skew now, network delay included (an upper bound), when the
		// target's clock moved ahead since its last poll measured it.
		t.ClockSkewMS = max(t.ClockSkewMS, sent.Sub(a.m.now()).Milliseconds())
	}
	release, err := a.m.uploads.admit(r.Context(), t.ID, t.Name, uploadRuns, r.ContentLength, maxRunsBody, maxRunReport, runsWriteChunk)
	if err != nil {
		return err
	}
	defer release()
	large := r.ContentLength < 0 || r.ContentLength > runsWriteChunk
	var results []agentproto.RunResult
	write := func(uploads []catalog.RunUpload) error {
		res, err := a.m.Catalog.UpsertRuns(r.Context(), t, uploads)
		if err == nil {
			a.m.metrics.recorded(res)
		}
		for _, x := range res {
			results = append(results, agentproto.RunResult{RunID: x.RunID, OK: x.OK, Error: x.Error})
		}
		if large {
			collect()
		}
		return err
	}
	if targetProtocol(r) == v1.Version {
		err = jsonhttp.StreamList(w, r, maxRunsBody, "runs", catalog.MaxRunsPerUpload, maxRunReport, runsWriteChunk, nil,
			func(reports []v1.RunReport) error { return write(uploadsV1(reports)) })
	} else {
		err = jsonhttp.StreamList(w, r, maxRunsBody, "runs", catalog.MaxRunsPerUpload, maxRunReport, runsWriteChunk, (&runReports{}).decode,
			func(reports []agentproto.RunReport) error { return write(uploadsV2(reports)) })
	}
	if err != nil {
		return err
	}
	release()
	a.m.metrics.runs.Add(float64(len(results)))
	jsonhttp.WriteJSON(w, http.StatusOK, agentproto.RunsResponse{Results: results})
	return nil
}

// uploadsV2 reads runs as protocol 2 sends them: each with the chunks of
// its output the master does not hold yet.
func uploadsV2(reports []agentproto.RunReport) []catalog.RunUpload {
	uploads := make([]catalog.RunUpload, len(reports))
	for i, rep := range reports {
		uploads[i] = catalog.RunUpload{Revision: rep.Revision, Run: rep.Run.Domain(), Output: make([]catalog.OutputChunk, len(rep.Output))}
		for j, c := range rep.Output {
			uploads[i].Output[j] = catalog.OutputChunk{Attempt: c.Attempt, Offset: c.Offset, Data: c.Data}
		}
	}
	return uploads
}

// uploadsV1 reads runs as protocol 1 sends them: each attempt with its
// whole output, again at every revision.
func uploadsV1(reports []v1.RunReport) []catalog.RunUpload {
	uploads := make([]catalog.RunUpload, len(reports))
	for i, rep := range reports {
		run := muster.Run{Job: rep.Run.Job, Target: rep.Run.Target, RunID: rep.Run.RunID, Status: muster.RunStatus(rep.Run.Status),
			Trigger: rep.Run.Trigger, Message: rep.Run.Message, StartedAt: rep.Run.StartedAt, FinishedAt: rep.Run.FinishedAt,
			DurationMS: rep.Run.DurationMS, Steps: make([]muster.StepAttempt, len(rep.Run.Steps))}
		for j, s := range rep.Run.Steps {
			run.Steps[j] = muster.StepAttempt{Name: s.Name, Attempt: s.Attempt, Status: muster.AttemptStatus(s.Status), ExitCode: s.ExitCode,
				Output: s.Output, Message: s.Message, StartedAt: s.StartedAt, DurationMS: s.DurationMS}
		}
		uploads[i] = catalog.RunUpload{Revision: rep.Revision, Run: run}
	}
	return uploads
}

// collect runs a garbage collection. A large upload runs one after each
// part it writes, when the part, its encoding and the decoder's buffers
// have become garbage: the heap's next goal, twice what is live at a
// collection, is then set by what the upload holds between parts rather
// than by what it held at its largest.
func collect() { runtime.GC() }

// runsWriteChunk is about how many bytes of run reports, as sent, one
// write of an upload takes: a batch of small runs is written at once, as
// one transaction, and a large upload in several.
const runsWriteChunk = 8 << 20

// defect answers POST /agent/v1/defect: the target is leaving.
func (a *agent) defect(w http.ResponseWriter, r *http.Request, t catalog.TargetIdentity) error {
	if err := a.m.Catalog.DefectTarget(r.Context(), t.ID, muster.Actor{Kind: muster.ActorTarget, Name: t.Name, Source: remoteIP(r)}); err != nil {
		return err
	}
	a.m.log.Info("target defected", muster.LogTarget, t.Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// time answers GET /agent/v1/time with the master's clock, for SYNC-TIME.
func (a *agent) time(w http.ResponseWriter, r *http.Request, _ catalog.TargetIdentity) error {
	jsonhttp.WriteJSON(w, http.StatusOK, agentproto.TimeResponse{ServerTime: a.m.now()})
	return nil
}

// reenlist answers POST /agent/v1/reenlist: the target sends its details
// again (RE-ENLIST).
func (a *agent) reenlist(w http.ResponseWriter, r *http.Request, t catalog.TargetIdentity) error {
	var req agentproto.ReEnlistRequest
	if err := jsonhttp.DecodeJSON(w, r, maxEnlistBody, &req); err != nil {
		return err
	}
	if err := checkReported(reported{"location", req.Location, muster.MaxTargetLocation},
		reported{"time_zone", req.TimeZone, muster.MaxTargetTimeZone}, reported{"version", req.Version, muster.MaxTargetVersion}); err != nil {
		return err
	}
	if err := muster.ValidatePollInterval("poll_interval", req.PollInterval); err != nil {
		return err
	}
	a.m.Catalog.RecordPoll(t.ID, catalog.Heartbeat{At: a.m.now(), LocalTime: req.LocalTime, TimeZone: req.TimeZone,
		PollInterval: req.PollInterval, Version: req.Version, Protocol: targetProtocol(r)})
	if req.Location != "" {
		by := muster.Actor{Kind: muster.ActorTarget, Name: t.Name, Source: remoteIP(r)}
		if err := a.m.Catalog.SetLocation(r.Context(), t.Name, req.Location, by); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// reported is a text field a target reports of itself, with its bound.
type reported struct {
	field, value string
	max          int
}

// checkReported checks what a target reports of itself as an operator's
// words are checked (muster.ValidateTargetText): it is shown in the
// console and printed to terminals as they are. It returns the first
// field refused.
func checkReported(fields ...reported) error {
	for _, f := range fields {
		if err := muster.ValidateTargetText(f.field, f.value, f.max); err != nil {
			return err
		}
	}
	return nil
}

// resync answers POST /agent/v1/resync.
func (a *agent) resync(w http.ResponseWriter, r *http.Request, t catalog.TargetIdentity) error {
	var req agentproto.ResyncRequest
	if err := jsonhttp.DecodeJSON(w, r, maxAckBody, &req); err != nil {
		return err
	}
	base, err := a.m.Catalog.Resync(r.Context(), t.ID, req.After, muster.Actor{Kind: muster.ActorTarget, Name: t.Name, Source: remoteIP(r)})
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, agentproto.ResyncResponse{Epoch: a.m.Catalog.Epoch(), After: base})
	return nil
}
