package console

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
	"github.com/musterhq/muster/internal/pki"
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
	p := jobsPage{Group: q.Get("group"), FailedOnly: q.Get("failed") == "1", pager: pager{Page: pageNumber(r)}}
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
}

func (s *Server) job(w http.ResponseWriter, r *http.Request, v *view) error {
	j, err := s.DB.FindJob(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	p := jobPage{JobStatus: j, IdempotencyKey: "console-" + pki.RandomSecret()}
	if len(j.Schedules) > 0 {
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
