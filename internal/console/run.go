package console

import (
	"net/http"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// runPage is one run, with its target for the target's local time.
type runPage struct {
	muster.Run
	Target muster.Target
	Known  bool // the target is still enlisted
	// Waiting is set for a run the master started that its target has not
	// reported yet: the page shows it as soon as it does.
	Waiting bool
}

func (s *Server) run(w http.ResponseWriter, r *http.Request, v *view) error {
	ref := muster.RunRef{Target: muster.NormalizeTargetName(r.PathValue("target")), RunID: r.PathValue("id")}
	runs, err := s.DB.FindRuns(r.Context(), catalog.RunFilter{Runs: []muster.RunRef{ref}, Limit: 1})
	if err != nil {
		return err
	}
	var p runPage
	t, err := s.DB.FindTarget(r.Context(), ref.Target)
	switch {
	case err == nil:
		p.Target, p.Known = t, true
	case muster.ErrorCode(err) != muster.ENOTFOUND:
		return err
	}
	if len(runs) == 0 {
		// A START is a run once its target reports it, within a second of
		// receiving it: the page of a run just started waits for it. No
		// START went to a target that is not enlisted.
		if r.URL.Query().Get("started") != "1" || !p.Known {
			return muster.Errorf(muster.ENOTFOUND, "no run %s on target %s", ref.RunID, ref.Target)
		}
		p.Waiting, p.Run = true, muster.Run{RunID: ref.RunID, Target: ref.Target, Status: muster.RunRunning}
	} else {
		p.Run = runs[0]
	}
	v.Title, v.Nav, v.Data = "Run of "+p.Job+" on "+p.Run.Target, "jobs", p
	if p.Waiting {
		v.Title = "Run on " + p.Run.Target
	}
	if !p.Status.Finished() {
		v.Live = r.URL.RequestURI()
	}
	return s.render(w, http.StatusOK, "run", v)
}
