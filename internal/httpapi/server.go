// Package httpapi is the operator API under /api/v1/ (JSON over HTTPS with a
// bearer token) and the Go client the CLI uses. The API is described by the
// OpenAPI document served at /api/v1/openapi.json.
package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/jobfile"
	"github.com/musterhq/muster/internal/jsonhttp"
)

//go:embed openapi.json
var openAPI []byte

// maxBody bounds a request body, but an apply's.
const maxBody = 64 << 10

// MaxApplyBody bounds the body of POST /api/v1/apply, as jsonhttp.Cost
// counts it: the most a job file may come to, which jobfile checks before
// anything is sent.
const MaxApplyBody = jobfile.MaxExpandedSize

// MaxRunWait bounds how long GET /api/v1/runs?wait= holds a request.
const MaxRunWait = 30 * time.Second

// The largest limit= of each list that takes one.
const (
	MaxHistoryLimit      = 10000  // GET /api/v1/jobs/{name}/history
	MaxRunsLimit         = 1000   // GET /api/v1/runs?job=
	MaxDownloadListLimit = 100000 // GET /api/v1/downloadlist
	MaxEventsLimit       = 10000  // GET /api/v1/events, /api/v1/alerts/history
)

// Notifier tells when recorded runs change, and when the server is stopping.
type Notifier interface {
	RunsChanged() <-chan struct{}
	Closed() <-chan struct{}
}

// TokenMaker creates enlistment tokens.
type TokenMaker interface {
	NewEnlistToken(ctx context.Context, name string, ttl time.Duration, by muster.Actor) (string, time.Time, error)
}

// Server serves the operator API.
type Server struct {
	DB     *catalog.Catalog
	Tokens TokenMaker
	Hub    Notifier
	Poker  Poker
	Now    func() time.Time
	Log    *slog.Logger

	patterns []string
	roles    map[string]string // the least role of each pattern
}

type handler func(w http.ResponseWriter, r *http.Request, c caller) error

// Routes registers the API on mux.
func (s *Server) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	})
	read, operate, admin := catalog.RoleReader, catalog.RoleOperator, catalog.RoleAdmin
	s.handle(mux, "GET /api/v1/targets", read, s.listTargets)
	s.handle(mux, "GET /api/v1/targets/{name}", read, s.showTarget)
	s.handle(mux, "PATCH /api/v1/targets/{name}", operate, s.updateTarget)
	s.handle(mux, "DELETE /api/v1/targets/{name}", admin, s.deleteTarget)
	s.handle(mux, "POST /api/v1/tokens", admin, s.createToken)
	s.handle(mux, "GET /api/v1/jobs", read, s.listJobs)
	s.handle(mux, "POST /api/v1/apply", operate, s.apply)
	s.handle(mux, "GET /api/v1/jobs/{name}", read, s.showJob)
	s.handle(mux, "DELETE /api/v1/jobs/{name}", operate, s.deleteJob)
	s.handle(mux, "POST /api/v1/jobs/{name}/enable", operate, s.enableJob(true))
	s.handle(mux, "POST /api/v1/jobs/{name}/disable", operate, s.enableJob(false))
	s.handle(mux, "POST /api/v1/jobs/{name}/start", operate, s.startJob)
	s.handle(mux, "POST /api/v1/jobs/{name}/stop", operate, s.stopJob)
	s.handle(mux, "GET /api/v1/jobs/{name}/history", read, s.jobHistory)
	s.handle(mux, "GET /api/v1/jobs/{name}/next", read, s.nextFires)
	s.handle(mux, "GET /api/v1/jobs/{name}/rollouts", read, s.jobRollouts)
	s.handle(mux, "GET /api/v1/jobs/{name}/rollouts/{id}", read, s.jobRollouts)
	s.handle(mux, "POST /api/v1/history/purge", admin, s.purgeHistory)
	s.handle(mux, "GET /api/v1/runs", read, s.listRuns)
	s.handle(mux, "GET /api/v1/downloadlist", read, s.downloadList)
	s.handle(mux, "POST /api/v1/downloadlist/{seq}/retry", operate, s.retryInstruction)
	s.handle(mux, "DELETE /api/v1/downloadlist/{seq}", operate, s.deleteInstruction)
	s.fleetRoutes(mux)
	s.alertRoutes(mux)
	s.keyRoutes(mux)
	s.tokenRoutes(mux)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, muster.Errorf(muster.ENOTFOUND, "no API endpoint %s %s; see /api/v1/openapi.json", r.Method, r.URL.Path))
	})
}

// Patterns returns the "METHOD /path" patterns Routes registered, so tests
// can check each against the OpenAPI document.
func (s *Server) Patterns() []string { return s.patterns }

// handle wraps h with API key authentication, the route's minimum role, and
// the refusal of scoped keys where the route is not open to them (see
// access.go).
func (s *Server) handle(mux *http.ServeMux, pattern, role string, h handler) {
	s.patterns = append(s.patterns, pattern)
	if s.roles == nil {
		s.roles = map[string]string{}
	}
	s.roles[pattern] = role
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(r, pattern, role)
		if err == nil {
			err = checkQuery(pattern, r.URL.Query())
		}
		if err == nil {
			err = h(w, r, c)
		}
		if err != nil {
			s.refuse(w, r, err)
		}
	})
}

// Protect serves h, a route outside the API (the metrics), only to callers
// whose API key has at least role and no scopes, refusing others as the
// API's routes do.
func (s *Server) Protect(pattern, role string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.authenticate(r, pattern, role); err != nil {
			s.refuse(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// refuse answers err, saying how to authenticate when it is the lack of a
// valid key.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if muster.ErrorCode(err) == muster.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="muster"`)
	}
	s.writeError(w, r, err)
}

func (s *Server) listTargets(w http.ResponseWriter, r *http.Request, c caller) error {
	status := r.URL.Query().Get("status")
	switch status {
	case "", muster.StatusNormal, muster.StatusSuspectedOffline, muster.StatusBlocked, muster.FlagPaused, muster.FlagDiskFull, muster.FlagDeleted,
		muster.StatusDefected:
	default:
		return muster.Errorf(muster.EINVALID, "status: %q is not a status; use normal, suspected_offline, blocked, paused, disk_full, deleted or defected", status)
	}
	targets, err := s.DB.FindTargets(r.Context(), catalog.TargetFilter{Status: status})
	if err != nil {
		return err
	}
	visible, err := s.scopeTargets(r.Context(), c)
	if err != nil {
		return err
	}
	if visible != nil {
		targets = slices.DeleteFunc(targets, func(t muster.Target) bool { return !visible[t.Name] })
	}
	jsonhttp.WriteJSON(w, http.StatusOK, targets)
	return nil
}

func (s *Server) showTarget(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := s.checkTarget(r.Context(), c, r.PathValue("name")); err != nil {
		return err
	}
	t, err := s.DB.FindTarget(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, t)
	return nil
}

// TargetUpdate changes what operators say of a target; a field left out
// stays as it is, and an empty string clears it.
type TargetUpdate struct {
	Location    *string `json:"location,omitempty"`
	Description *string `json:"description,omitempty"`
}

// updateTarget answers PATCH /api/v1/targets/{name}.
func (s *Server) updateTarget(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := s.checkTarget(r.Context(), c, r.PathValue("name")); err != nil {
		return err
	}
	var body TargetUpdate
	if err := jsonhttp.DecodeJSON(w, r, maxBody, &body); err != nil {
		return err
	}
	t, err := s.DB.SetTargetDetails(r.Context(), r.PathValue("name"),
		catalog.TargetDetails{Location: body.Location, Description: body.Description}, c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, t)
	return nil
}

// deleteTarget answers DELETE /api/v1/targets/{name}[?force=true].
func (s *Server) deleteTarget(w http.ResponseWriter, r *http.Request, c caller) error {
	force, err := boolParam(r.URL.Query().Get("force"), "force")
	if err != nil {
		return err
	}
	if err := s.DB.DeleteTarget(r.Context(), muster.NormalizeTargetName(r.PathValue("name")), force, c.actor()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// TokenRequest asks for an enlistment token.
type TokenRequest struct {
	Target     string `json:"target"`
	TTLSeconds int    `json:"ttl_seconds"`
}

// TokenResponse carries a new enlistment token. It is shown once; the
// master keeps only its hash.
type TokenResponse struct {
	Token     string    `json:"token"`
	Target    string    `json:"target"`
	ExpiresAt time.Time `json:"expires_at"`
	// Note says, when the name is taken, that the token enlists only once
	// it is free: a token may be made ahead for the server that will take
	// over the name.
	Note string `json:"note,omitempty"`
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, c caller) error {
	var req TokenRequest
	if err := jsonhttp.DecodeJSON(w, r, maxBody, &req); err != nil {
		return err
	}
	name := muster.NormalizeTargetName(req.Target)
	ttl := 15 * time.Minute
	if req.TTLSeconds != 0 {
		if req.TTLSeconds < 60 || req.TTLSeconds > int(catalog.MaxEnlistTokenTTL/time.Second) {
			return muster.Errorf(muster.EINVALID, "ttl_seconds: from 60 to %d, not %d", int(catalog.MaxEnlistTokenTTL/time.Second), req.TTLSeconds)
		}
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	// Read before the token is made: a token made, and then an error for
	// its note, would leave a token nobody holds.
	note, err := s.nameTakenNote(r.Context(), name)
	if err != nil {
		return err
	}
	tok, expires, err := s.Tokens.NewEnlistToken(r.Context(), name, ttl, c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusCreated, TokenResponse{Token: tok, Target: name, ExpiresAt: expires.UTC(), Note: note})
	return nil
}

// nameTakenNote says why a token for name cannot enlist yet, if a target
// holds the name, or "" if none does.
func (s *Server) nameTakenNote(ctx context.Context, name string) (string, error) {
	t, err := s.DB.FindTarget(ctx, name)
	switch {
	case muster.ErrorCode(err) == muster.ENOTFOUND:
		return "", nil
	case err != nil:
		return "", err
	case t.Status == muster.StatusDefected:
		return "", nil
	case slices.Contains(t.Flags, muster.FlagDeleted):
		return fmt.Sprintf("target %s was deleted and has not collected its DEFECT yet; this token enlists a server as %s only once it has, or once `muster target delete %s --force` forgets it", name, name, name), nil
	}
	return fmt.Sprintf("target %s is enlisted (since %s); this token enlists a server as %s only once %s has defected or been deleted", name, t.EnlistedAt.UTC().Format(time.RFC3339), name, name), nil
}

// listJobs answers GET /api/v1/jobs[?category=C]: the jobs in the
// caller's scope. The category matches without regard to case, as SQL
// Server Agent's category names do.
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request, c caller) error {
	category := r.URL.Query().Get("category")
	if err := muster.ValidateCategory("category", category); err != nil {
		return err
	}
	jobs, err := s.DB.FindJobs(r.Context())
	if err != nil {
		return err
	}
	jobs = slices.DeleteFunc(jobs, func(j muster.JobStatus) bool {
		return !c.scope().HasJob(j.Name) || category != "" && !strings.EqualFold(j.Category, category)
	})
	jsonhttp.WriteJSON(w, http.StatusOK, jobs)
	return nil
}

func (s *Server) showJob(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := checkJob(c, r.PathValue("name")); err != nil {
		return err
	}
	j, err := s.DB.FindJob(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, j)
	return nil
}

// ApplyRequest creates or updates jobs by name, all or nothing.
type ApplyRequest struct {
	Jobs   []muster.Job `json:"jobs"`
	Prune  bool         `json:"prune"`   // delete jobs not listed
	DryRun bool         `json:"dry_run"` // compute the changes, commit nothing
}

// applyBody is how the server reads an ApplyRequest: jobs default to
// enabled.
type applyBody struct {
	Jobs   []jobBody `json:"jobs"`
	Prune  bool      `json:"prune"`
	DryRun bool      `json:"dry_run"`
}

// jobBody decodes a job with the definition defaults applied first. A job
// that cannot be decoded is refused naming it, as the catalog names the
// jobs it refuses.
type jobBody struct{ muster.Job }

func (j *jobBody) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return muster.Errorf(muster.EINVALID, "jobs: a job is an object, not null")
	}
	j.Job = muster.NewJob()
	err := jsonhttp.Unmarshal(b, &j.Job)
	if err == nil {
		return nil
	}
	what := "job"
	if name := jobName(b); name != "" {
		what = fmt.Sprintf("job %q", name)
	}
	return muster.Errorf(muster.EINVALID, "%s: %s", what, muster.ErrorMessage(jsonhttp.DecodeFailure(err)))
}

// jobName returns the first name a job's JSON gives, under the key "name"
// spelled so: the job a refusal names is the one the body names first, not
// the one encoding/json would take ("Name" for "name", the last of two).
func jobName(b []byte) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return ""
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return ""
		}
		var name string
		if key == "name" && json.Unmarshal(v, &name) == nil {
			return name
		}
	}
	return ""
}

func (s *Server) apply(w http.ResponseWriter, r *http.Request, c caller) error {
	var body applyBody
	if err := jsonhttp.DecodeJSON(w, r, MaxApplyBody, &body); err != nil {
		return err
	}
	jobs := make([]muster.Job, len(body.Jobs))
	for i, j := range body.Jobs {
		jobs[i] = j.Job
	}
	res, err := s.DB.ApplyJobs(r.Context(), jobs, catalog.ApplyOptions{Prune: body.Prune, DryRun: body.DryRun}, c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) deleteJob(w http.ResponseWriter, r *http.Request, c caller) error {
	ch, err := s.DB.DeleteJob(r.Context(), r.PathValue("name"), c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, ch)
	return nil
}

func (s *Server) enableJob(enabled bool) handler {
	return func(w http.ResponseWriter, r *http.Request, c caller) error {
		ch, err := s.DB.SetJobEnabled(r.Context(), r.PathValue("name"), enabled, c.actor())
		if err != nil {
			return err
		}
		jsonhttp.WriteJSON(w, http.StatusOK, ch)
		return nil
	}
}

// StartBody is the body of POST /api/v1/jobs/{name}/start.
type StartBody struct {
	Targets          []string          `json:"targets,omitempty"`
	IdempotencyKey   string            `json:"idempotency_key,omitempty"`
	ExpiresInSeconds int               `json:"expires_in_seconds,omitempty"`
	Env              map[string]string `json:"env,omitempty"`  // overrides for these runs
	Step             string            `json:"step,omitempty"` // the step to begin at
	// Rollout starts the targets in waves, each once every run of the
	// wave before has ended; the master drives it.
	Rollout *muster.RolloutSpec `json:"rollout,omitempty"`
}

func (s *Server) startJob(w http.ResponseWriter, r *http.Request, c caller) error {
	var body StartBody
	if r.ContentLength != 0 {
		if err := jsonhttp.DecodeJSON(w, r, maxBody, &body); err != nil {
			return err
		}
	}
	if body.ExpiresInSeconds < 0 || body.ExpiresInSeconds > int(catalog.MaxStartExpiry/time.Second) {
		return muster.Errorf(muster.EINVALID, "expires_in_seconds: from 0 (the default, %d) to %d", int(muster.DefaultStartExpiry/time.Second), int(catalog.MaxStartExpiry/time.Second))
	}
	key := body.IdempotencyKey
	if key == "" {
		key = r.Header.Get("Idempotency-Key")
	}
	res, err := s.DB.StartJob(r.Context(), catalog.StartRequest{
		Job: r.PathValue("name"), Targets: body.Targets, IdempotencyKey: key,
		ExpiresIn: time.Duration(body.ExpiresInSeconds) * time.Second,
		Env:       body.Env, Step: body.Step, Rollout: body.Rollout,
	}, c.actor())
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if res.Replayed {
		status = http.StatusOK
	}
	jsonhttp.WriteJSON(w, status, res)
	return nil
}

// StopBody is the body of POST /api/v1/jobs/{name}/stop.
type StopBody struct {
	Targets []string `json:"targets,omitempty"`
}

func (s *Server) stopJob(w http.ResponseWriter, r *http.Request, c caller) error {
	var body StopBody
	if r.ContentLength != 0 {
		if err := jsonhttp.DecodeJSON(w, r, maxBody, &body); err != nil {
			return err
		}
	}
	ch, err := s.DB.StopJob(r.Context(), r.PathValue("name"), body.Targets, c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, ch)
	return nil
}

func (s *Server) nextFires(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := checkJob(c, r.PathValue("name")); err != nil {
		return err
	}
	count, err := intParam(r.URL.Query().Get("count"), "count", 10, 1, catalog.MaxPreview)
	if err != nil {
		return err
	}
	fires, err := s.DB.NextFires(r.Context(), r.PathValue("name"), count)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, fires)
	return nil
}

// jobRollouts answers GET /api/v1/jobs/{name}/rollouts, the job's
// rollouts newest first, and GET …/rollouts/{id}, one of them.
func (s *Server) jobRollouts(w http.ResponseWriter, r *http.Request, c caller) error {
	name := r.PathValue("name")
	if err := checkJob(c, name); err != nil {
		return err
	}
	var id int64
	if v := r.PathValue("id"); v != "" {
		var err error
		if id, err = strconv.ParseInt(v, 10, 64); err != nil || id < 1 {
			return muster.Errorf(muster.EINVALID, "id: %q is not a rollout id (a number from 1)", v)
		}
	}
	ros, err := s.DB.FindRollouts(r.Context(), name, id)
	if err != nil {
		return err
	}
	if id == 0 {
		jsonhttp.WriteJSON(w, http.StatusOK, ros)
		return nil
	}
	if len(ros) == 0 {
		return muster.Errorf(muster.ENOTFOUND, "job %q has no rollout %d", name, id)
	}
	jsonhttp.WriteJSON(w, http.StatusOK, ros[0])
	return nil
}

// MaxPurgeAge is the largest older_than_seconds of a purge: 100 years.
const MaxPurgeAge = 100 * 365 * 24 * 3600

// PurgeBody is the body of POST /api/v1/history/purge.
type PurgeBody struct {
	Job              string `json:"job,omitempty"`
	OlderThanSeconds int64  `json:"older_than_seconds,omitempty"`
	KeepPerJob       int    `json:"keep_per_job,omitempty"`
}

func (s *Server) purgeHistory(w http.ResponseWriter, r *http.Request, c caller) error {
	var body PurgeBody
	if err := jsonhttp.DecodeJSON(w, r, maxBody, &body); err != nil {
		return err
	}
	switch {
	case body.OlderThanSeconds < 0 || body.OlderThanSeconds > MaxPurgeAge:
		return muster.Errorf(muster.EINVALID, "older_than_seconds: from 0 to %d (100 years), not %d", MaxPurgeAge, body.OlderThanSeconds)
	case body.KeepPerJob < 0:
		return muster.Errorf(muster.EINVALID, "keep_per_job: 0 or more, not %d", body.KeepPerJob)
	case body.OlderThanSeconds == 0 && body.KeepPerJob == 0:
		return muster.Errorf(muster.EINVALID, "older_than_seconds, keep_per_job: give one or both; a purge needs a limit")
	}
	res, err := s.DB.PurgeRuns(r.Context(), catalog.PurgeRequest{
		Job: body.Job, OlderThan: time.Duration(body.OlderThanSeconds) * time.Second, KeepPerJob: body.KeepPerJob,
	}, c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) jobHistory(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := checkJob(c, r.PathValue("name")); err != nil {
		return err
	}
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), "limit", 20, 1, MaxHistoryLimit)
	if err != nil {
		return err
	}
	name, target := r.PathValue("name"), muster.NormalizeTargetName(q.Get("target"))
	runs, next, err := s.DB.FindRunsPage(r.Context(), catalog.RunFilter{Job: name, Target: target, Limit: limit,
		Cursor: q.Get("cursor")})
	if err != nil {
		return err
	}
	if len(runs) == 0 && q.Get("cursor") == "" {
		// Tell "no such job" from "no runs yet". A deleted job's history
		// is still served.
		if _, err := s.DB.FindJob(r.Context(), name); err != nil {
			if some, _ := s.DB.FindRuns(r.Context(), catalog.RunFilter{Job: name, Limit: 1}); len(some) == 0 {
				return err
			}
		}
		// And "no such target" from "no runs there": a mistyped name
		// would read as a target the job never ran on. A target that left
		// is still found, its runs with it. (A scoped key learns nothing
		// of targets outside its groups, so it is not told.)
		if target != "" && !c.scope().Limited() {
			if _, err := s.DB.FindTarget(r.Context(), target); muster.ErrorCode(err) == muster.ENOTFOUND {
				return muster.Errorf(muster.ENOTFOUND, "target: no target named %q is enlisted or has left; `muster target list` shows them", target)
			} else if err != nil {
				return err
			}
		}
	}
	setNextPage(w, r, next)
	jsonhttp.WriteJSON(w, http.StatusOK, runs)
	return nil
}

// listRuns answers GET /api/v1/runs?run=TARGET:RUN_ID&run=…, or
// ?job=J[&target=T][&limit=N] (the job's newest runs). A run is named by
// its target and its id: a run id names a run on its own target only (a
// bare RUN_ID finds that id on every target, each run with its target).
// Every reply carries an ETag naming its content. With wait, the reply is
// held: with If-None-Match, until the runs differ from the reply that ETag
// names (a new run, a new status, more output), then 200, or 304 Not
// Modified if the wait passes first; without it, until every run is
// finished. That is how the CLI follows runs, and their output, without
// busy polling.
func (s *Server) listRuns(w http.ResponseWriter, r *http.Request, c caller) error {
	q := r.URL.Query()
	names := slices.Compact(slices.Sorted(slices.Values(q["run"])))
	refs := make([]muster.RunRef, len(names))
	for i, n := range names {
		target, id, ok := strings.Cut(n, ":")
		if !ok {
			target, id = "", n
		}
		refs[i] = muster.RunRef{Target: muster.NormalizeTargetName(target), RunID: id}
	}
	f := catalog.RunFilter{Runs: refs}
	switch job := q.Get("job"); {
	case len(refs) > 0 && job != "":
		return muster.Errorf(muster.EINVALID, "run and job: give runs or a job, not both")
	case len(refs) > 0 && q.Has("limit"):
		return muster.Errorf(muster.EINVALID, "limit: only with job, to bound its newest runs; every run named with run is returned")
	case len(refs) > 0 && q.Has("target"):
		return muster.Errorf(muster.EINVALID, "target: only with job; name a run's target in run itself (TARGET:RUN_ID)")
	case job != "":
		if err := checkJob(c, job); err != nil {
			return err
		}
		limit, err := intParam(q.Get("limit"), "limit", 20, 1, MaxRunsLimit)
		if err != nil {
			return err
		}
		f = catalog.RunFilter{Job: job, Target: muster.NormalizeTargetName(q.Get("target")), Limit: limit}
	case len(refs) == 0 || len(refs) > 10000:
		return muster.Errorf(muster.EINVALID, "run: give 1 to 10000 runs, each TARGET:RUN_ID, or a job")
	}
	f.Scope = c.scope()
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return muster.Errorf(muster.EINVALID, "wait: a duration such as 25s")
		}
		wait = min(d, MaxRunWait)
	}
	held := r.Header.Get("If-None-Match")
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		changed := s.Hub.RunsChanged()
		runs, err := s.DB.FindRuns(r.Context(), f)
		if err != nil {
			return err
		}
		body, err := json.Marshal(runs)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		etag := `"` + hex.EncodeToString(sum[:16]) + `"`
		var done bool
		switch {
		case wait == 0:
			done = true
		case held != "":
			done = etag != held
		default:
			done = AllFinished(runs, max(len(refs), len(runs)))
		}
		if done {
			w.Header().Set("ETag", etag)
			if etag == held {
				w.WriteHeader(http.StatusNotModified)
				return nil
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(append(body, '\n'))
			return nil
		}
		select {
		case <-changed:
			continue
		case <-timer.C:
		case <-s.Hub.Closed():
		case <-r.Context().Done():
			return nil // the client went away; nobody reads a reply
		}
		wait = 0
	}
}

// AllFinished reports whether runs holds want runs, all finished.
func AllFinished(runs []muster.Run, want int) bool {
	if len(runs) < want {
		return false
	}
	for _, r := range runs {
		if !r.Status.Finished() {
			return false
		}
	}
	return true
}

func (s *Server) downloadList(w http.ResponseWriter, r *http.Request, c caller) error {
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), "limit", 1000, 1, MaxDownloadListLimit)
	if err != nil {
		return err
	}
	pending, err := boolParam(q.Get("pending"), "pending")
	if err != nil {
		return err
	}
	errs, err := boolParam(q.Get("errors"), "errors")
	if err != nil {
		return err
	}
	if pending && errs {
		return muster.Errorf(muster.EINVALID, "errors: an instruction is either pending or failed; give pending or errors, not both")
	}
	var seq int64
	if v := q.Get("seq"); v != "" {
		if seq, err = strconv.ParseInt(v, 10, 64); err != nil || seq < 1 {
			return muster.Errorf(muster.EINVALID, "seq: a positive sequence number, not %q", v)
		}
	}
	f := catalog.InstructionFilter{
		Seq:       seq,
		Target:    muster.NormalizeTargetName(q.Get("target")),
		Job:       q.Get("job"),
		Operation: muster.Operation(strings.ToUpper(q.Get("operation"))),
		Pending:   pending,
		Errors:    errs,
		Limit:     limit,
		Scope:     c.scope(),
		Cursor:    q.Get("cursor"),
	}
	if f.Job != "" {
		if err := checkJob(c, f.Job); err != nil {
			return err
		}
	}
	if f.Operation != "" && !f.Operation.Valid() {
		return muster.Errorf(muster.EINVALID, "operation: %q is not an operation; use INSERT, UPDATE, DELETE, START, STOP, RE-ENLIST, DEFECT, SYNC-TIME or SET-POLL", f.Operation)
	}
	if f.Target != "" && !c.scope().Limited() {
		// A name no target holds is a slip: an empty list would read as
		// "nothing pending there". (A scoped key learns nothing of targets
		// outside its groups, so it is not told.)
		if _, err := s.DB.TargetID(r.Context(), f.Target); muster.ErrorCode(err) == muster.ENOTFOUND {
			return muster.Errorf(muster.ENOTFOUND, "target: %s; `muster target list` shows them (a target that left takes its download list with it)", muster.ErrorMessage(err))
		} else if err != nil {
			return err
		}
	}
	list, next, err := s.DB.FindInstructionsPage(r.Context(), f)
	if err != nil {
		return err
	}
	setNextPage(w, r, next)
	jsonhttp.WriteJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) retryInstruction(w http.ResponseWriter, r *http.Request, c caller) error {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || seq < 1 {
		return muster.Errorf(muster.EINVALID, "seq: a positive sequence number")
	}
	in, err := s.DB.RetryInstruction(r.Context(), muster.NormalizeTargetName(r.URL.Query().Get("target")), seq, c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusCreated, in)
	return nil
}

func (s *Server) deleteInstruction(w http.ResponseWriter, r *http.Request, c caller) error {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || seq < 1 {
		return muster.Errorf(muster.EINVALID, "seq: a positive sequence number")
	}
	if err := s.DB.DeleteInstruction(r.Context(), muster.NormalizeTargetName(r.URL.Query().Get("target")), seq, c.actor()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func boolParam(v, name string) (bool, error) { return BoolParam(v, name) }

// BoolParam reads a query parameter that is true or false (or 1 or 0),
// false when it is empty, as every route of the API reads one; the
// console reads its own the same way.
func BoolParam(v, name string) (bool, error) {
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, muster.Errorf(muster.EINVALID, "%s: true or false, not %q", name, v)
	}
	return b, nil
}

// timeParam reads an RFC 3339 time in any zone. A URL that carries the
// time as it is written decodes the + of its offset as a space
// (2026-01-02T15:04:05 02:00): that is read as the + it was.
func timeParam(v, name string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, v)
	if n := len(v); err != nil && n > 6 && v[n-6] == ' ' && v[n-3] == ':' {
		t, err = time.Parse(time.RFC3339, v[:n-6]+"+"+v[n-5:])
	}
	if err != nil {
		return time.Time{}, muster.Errorf(muster.EINVALID, "%s: a time such as 2026-01-02T15:04:05Z or 2026-01-02T17:04:05+02:00, not %q", name, v)
	}
	return t, nil
}

func intParam(v, name string, def, lo, hi int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, muster.Errorf(muster.EINVALID, "%s: a whole number from %d to %d", name, lo, hi)
	}
	return n, nil
}

// NewIdempotencyKey returns a random key for one start request.
func NewIdempotencyKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
