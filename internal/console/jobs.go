package console

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/pki"
	"github.com/musterhq/muster/internal/schedule"
)

// matrixColumns is how many targets one page of the matrix shows.
const matrixColumns = 40

// jobsPage is the jobs page: the list, and the job × target matrix.
type jobsPage struct {
	Jobs       []jobRow
	Targets    []string // the matrix's columns
	Groups     []string
	Group      string
	FailedOnly bool
	pager
}

// jobRow is a job with its counts and its matrix row.
type jobRow struct {
	muster.JobStatus
	Counts map[muster.RunStatus]int
	Runs   int // targets the job runs on
	Cells  []cell
	// OverrideEnables and OverrideSchedules say whether an override
	// enables the job, or gives it other schedules, somewhere.
	OverrideEnables, OverrideSchedules bool
}

// cell is one job on one target in the matrix.
type cell struct {
	Target  string
	Runs    bool // the job runs there
	Outcome muster.JobTarget
}

// failed reports whether an outcome is a failure.
func failed(s muster.RunStatus) bool {
	return s == muster.RunFailed || s == muster.RunTimedOut || s == muster.RunAbandoned
}

func (s *Server) jobs(w http.ResponseWriter, r *http.Request, v *view) error {
	q := r.URL.Query()
	p := jobsPage{Group: q.Get("group"), pager: pager{Page: pageNumber(r)}}
	var err error
	if p.FailedOnly, err = httpapi.BoolParam(q.Get("failed"), "failed"); err != nil {
		return err
	}
	jobs, err := s.DB.FindJobList(r.Context())
	if err != nil {
		return err
	}
	outcomes, err := s.DB.FindOutcomes(r.Context())
	if err != nil {
		return err
	}
	groups, err := s.DB.FindGroups(r.Context())
	if err != nil {
		return err
	}
	var inGroup map[string]bool
	for _, g := range groups {
		p.Groups = append(p.Groups, g.Name)
		if g.Name == p.Group {
			inGroup = map[string]bool{}
			for _, t := range g.Targets {
				inGroup[t] = true
			}
		}
	}
	if p.Group != "" && inGroup == nil {
		return muster.Errorf(muster.ENOTFOUND, "group: no target group named %q", p.Group)
	}
	// Each job's outcomes by target; the columns are every target a job
	// runs on, in the group if one is chosen, and with a failure if only
	// failures are asked for.
	byJob := map[string]map[string]muster.JobTarget{}
	cols := map[string]bool{}
	for _, o := range outcomes {
		if byJob[o.Job] == nil {
			byJob[o.Job] = map[string]muster.JobTarget{}
		}
		byJob[o.Job][o.Target] = muster.JobTarget{Target: o.Target, LastRunID: o.LastRunID, LastStatus: o.LastStatus, LastStartedAt: o.LastStartedAt}
		if (inGroup == nil || inGroup[o.Target]) && (!p.FailedOnly || failed(o.LastStatus)) {
			cols[o.Target] = true
		}
	}
	all := make([]string, 0, len(cols))
	for t := range cols {
		all = append(all, t)
	}
	slices.Sort(all)
	from, to := p.paginate(len(all), matrixColumns)
	p.Targets = all[from:to]
	for _, j := range jobs {
		row := jobRow{JobStatus: j, Counts: map[muster.RunStatus]int{}, Runs: len(byJob[j.Name])}
		for _, o := range j.Overrides {
			row.OverrideEnables = row.OverrideEnables || (o.Enabled != nil && *o.Enabled)
			row.OverrideSchedules = row.OverrideSchedules || o.Schedules != nil
		}
		anyFailed, anyInGroup := false, inGroup == nil
		for t, o := range byJob[j.Name] {
			if o.LastStatus != "" {
				row.Counts[o.LastStatus]++
			}
			if inGroup == nil || inGroup[t] {
				anyInGroup = true
				anyFailed = anyFailed || failed(o.LastStatus)
			}
		}
		if (p.FailedOnly && !anyFailed) || !anyInGroup {
			continue
		}
		for _, t := range p.Targets {
			o, ok := byJob[j.Name][t]
			row.Cells = append(row.Cells, cell{Target: t, Runs: ok, Outcome: o})
		}
		p.Jobs = append(p.Jobs, row)
	}
	filters := url.Values{}
	if p.Group != "" {
		filters.Set("group", p.Group)
	}
	if p.FailedOnly {
		filters.Set("failed", "1")
	}
	v.Title, v.Nav, v.Live = "Jobs", "jobs", p.link("/jobs", filters)
	v.Data = p
	return s.render(w, http.StatusOK, "jobs", v)
}

// jobPage is one job: its definition, where it runs and why, its next
// fires and its history.
type jobPage struct {
	muster.JobStatus
	Fires          map[string][]muster.Fire // by target
	History        []muster.Run
	Rollouts       []muster.Rollout // newest first
	IdempotencyKey string
	// With overrides: each override in words, and by target, whether
	// its schedules fire there and what changes the job there.
	OverrideText []overrideText
	Here         map[string]targetDefinition
	// EnabledSomewhere says whether the job's schedules fire on any of
	// its targets (an override may enable a job that is disabled).
	EnabledSomewhere bool
	// Refused is, by target, the instruction of the job the target
	// refused (the newest, when several): it holds the job there as it
	// was, until retried or deleted on the target's page. A pointer, so
	// that a target not in it is nil to the template, which takes any
	// struct for true.
	Refused map[string]*muster.Instruction
}

// overrideText is one override in words.
type overrideText struct {
	Subject  string
	Settings []string
}

// targetDefinition is what a target gets of a job, where it differs from
// the job: whether it is enabled there, and what changes it there, in the
// order they apply.
type targetDefinition struct {
	Enabled bool
	From    []string
}

// overrideSettings lists what an override sets, in words.
func overrideSettings(o muster.Override) []string {
	var out []string
	if o.Enabled != nil {
		out = append(out, map[bool]string{true: "enabled", false: "disabled: its schedules do not fire"}[*o.Enabled])
	}
	if o.Schedules != nil {
		if len(*o.Schedules) == 0 {
			out = append(out, "schedules: none; it runs only when started")
		}
		for _, sc := range *o.Schedules {
			out = append(out, "schedule "+sc.Name+": "+schedule.Describe(sc))
		}
	}
	if o.Timeout != nil {
		out = append(out, "run timeout: "+durationOrNone(*o.Timeout))
	}
	for _, k := range slices.Sorted(maps.Keys(o.Env)) {
		out = append(out, "env "+k+"="+strconv.Quote(o.Env[k]))
	}
	for _, name := range slices.Sorted(maps.Keys(o.Steps)) {
		so := o.Steps[name]
		if so.Timeout != nil {
			out = append(out, "step "+name+" timeout: "+durationOrNone(*so.Timeout))
		}
		if so.Connection != nil {
			out = append(out, "step "+name+" connection: "+*so.Connection)
		}
		if so.RunAs != nil {
			who := "the daemon's own user"
			if *so.RunAs != "" {
				who = "proxy " + *so.RunAs
			}
			out = append(out, "step "+name+" runs as "+who)
		}
	}
	return out
}

func durationOrNone(d muster.Duration) string {
	if d <= 0 {
		return "none"
	}
	return d.Short()
}

// viaGroups returns the job's groups a target is in, from its Via.
func viaGroups(via []string) []string {
	var out []string
	for _, v := range via {
		if g, ok := strings.CutPrefix(v, "group:"); ok {
			out = append(out, g)
		}
	}
	return out
}

func (s *Server) job(w http.ResponseWriter, r *http.Request, v *view) error {
	j, err := s.DB.FindJob(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	p := jobPage{JobStatus: j, IdempotencyKey: "console-" + pki.RandomSecret(), EnabledSomewhere: j.Enabled}
	scheduled := len(j.Schedules) > 0
	if len(j.Overrides) > 0 {
		p.EnabledSomewhere = false
		for _, o := range j.Overrides {
			p.OverrideText = append(p.OverrideText, overrideText{Subject: o.Subject(), Settings: overrideSettings(o)})
			scheduled = scheduled || (o.Schedules != nil && len(*o.Schedules) > 0)
		}
		p.Here = make(map[string]targetDefinition, len(j.Outcomes))
		for _, out := range j.Outcomes {
			groups := viaGroups(out.Via)
			d := targetDefinition{Enabled: j.DefinitionFor(out.Target, groups).Enabled}
			// In the order they apply: its groups', target_env, its own.
			own := false
			for _, o := range j.OverridesFor(out.Target, groups) {
				if o.Target != "" {
					own = true
					continue
				}
				d.From = append(d.From, o.Subject())
			}
			if len(j.TargetEnv[out.Target]) > 0 {
				d.From = append(d.From, "target_env")
			}
			if own {
				d.From = append(d.From, "its own override")
			}
			p.Here[out.Target] = d
			p.EnabledSomewhere = p.EnabledSomewhere || d.Enabled
		}
	}
	if scheduled {
		fires, err := s.DB.NextFires(r.Context(), j.Name, 3)
		if err != nil {
			return err
		}
		p.Fires = make(map[string][]muster.Fire, len(fires))
		for _, f := range fires {
			p.Fires[f.Target] = f.Fires
		}
	}
	if p.History, err = s.DB.FindRuns(r.Context(), catalog.RunFilter{Job: j.Name, Limit: 50}); err != nil {
		return err
	}
	failed, err := s.DB.FindInstructions(r.Context(), catalog.InstructionFilter{Job: j.Name, Errors: true})
	if err != nil {
		return err
	}
	p.Refused = make(map[string]*muster.Instruction, len(failed))
	for _, in := range failed {
		if prev := p.Refused[in.Target]; prev == nil || in.Seq > prev.Seq {
			p.Refused[in.Target] = &in
		}
	}
	if p.Rollouts, err = s.DB.FindRollouts(r.Context(), j.Name, 0); err != nil {
		return err
	}
	v.Title, v.Nav, v.Live, v.Data = "Job "+j.Name, "jobs", "/jobs/"+url.PathEscape(j.Name), p
	return s.render(w, http.StatusOK, "job", v)
}

// startJob starts a job now on the targets ticked, or on all of its
// targets when none is; with a wave size, in waves, which the job's page
// then follows.
func (s *Server) startJob(w http.ResponseWriter, r *http.Request, v *view) error {
	name := r.PathValue("name")
	if err := r.ParseForm(); err != nil {
		return muster.Errorf(muster.EINVALID, "the form could not be read: %v", err)
	}
	req := catalog.StartRequest{Job: name, Targets: r.PostForm["target"], IdempotencyKey: r.PostFormValue("idempotency_key"),
		Step: strings.TrimSpace(r.PostFormValue("step"))}
	var err error
	if req.Rollout, err = rolloutForm(r.PostFormValue("batch"), r.PostFormValue("max_failures")); err != nil {
		return err
	}
	res, err := s.DB.StartJob(r.Context(), req, httpapi.Actor(v.Key, r))
	if err != nil {
		return err
	}
	if res.Rollout != nil {
		http.Redirect(w, r, "/jobs/"+url.PathEscape(name)+"#rollout-"+strconv.FormatInt(res.Rollout.ID, 10), http.StatusSeeOther)
		return nil
	}
	if len(res.Runs) == 1 {
		http.Redirect(w, r, "/runs/"+url.PathEscape(res.Runs[0].Target)+"/"+url.PathEscape(res.Runs[0].RunID)+"?started=1", http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, "/jobs/"+url.PathEscape(name), http.StatusSeeOther)
	return nil
}

// rolloutForm reads the start form's wave size and max failures: no
// rollout when both are empty.
func rolloutForm(batch, maxFailures string) (*muster.RolloutSpec, error) {
	batch, maxFailures = strings.TrimSpace(batch), strings.TrimSpace(maxFailures)
	if batch == "" {
		if maxFailures != "" {
			return nil, muster.Errorf(muster.EINVALID, "max_failures: applies to a start in waves; give a wave size too")
		}
		return nil, nil
	}
	spec := &muster.RolloutSpec{Batch: batch}
	if maxFailures != "" {
		n, err := strconv.Atoi(maxFailures)
		if err != nil {
			return nil, muster.Errorf(muster.EINVALID, "max_failures: %q is not a whole number", maxFailures)
		}
		spec.MaxFailures = n
	}
	return spec, nil
}

func (s *Server) stopJob(w http.ResponseWriter, r *http.Request, v *view) error {
	name := r.PathValue("name")
	if err := r.ParseForm(); err != nil {
		return muster.Errorf(muster.EINVALID, "the form could not be read: %v", err)
	}
	if _, err := s.DB.StopJob(r.Context(), name, r.PostForm["target"], httpapi.Actor(v.Key, r)); err != nil {
		return err
	}
	return back(w, r, "/jobs/"+url.PathEscape(name))
}

func (s *Server) enableJob(enabled bool) pageHandler {
	return func(w http.ResponseWriter, r *http.Request, v *view) error {
		name := r.PathValue("name")
		if _, err := s.DB.SetJobEnabled(r.Context(), name, enabled, httpapi.Actor(v.Key, r)); err != nil {
			return err
		}
		return back(w, r, "/jobs/"+url.PathEscape(name))
	}
}
