package console

import (
	"net/http"
	"net/url"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
)

// runPage is one run, with its target for the target's local time.
type runPage struct {
	muster.Run
	Target muster.Target
	Known  bool // the target is still enlisted
}

func (s *Server) run(w http.ResponseWriter, r *http.Request, v *view) error {
	ref := muster.RunRef{Target: muster.NormalizeTargetName(r.PathValue("target")), RunID: r.PathValue("id")}
	runs, err := s.DB.FindRuns(r.Context(), catalog.RunFilter{Runs: []muster.RunRef{ref}, Limit: 1})
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		return muster.Errorf(muster.ENOTFOUND, "no run %s on target %s (yet: a START is a run once its target reports it)", ref.RunID, ref.Target)
	}
	p := runPage{Run: runs[0]}
	if t, err := s.DB.FindTarget(r.Context(), ref.Target); err == nil {
		p.Target, p.Known = t, true
	}
	v.Title, v.Nav, v.Data = "Run of "+p.Job+" on "+p.Run.Target, "jobs", p
	if !p.Status.Finished() {
		v.Live = "/runs/" + url.PathEscape(ref.Target) + "/" + url.PathEscape(ref.RunID)
	}
	return s.render(w, http.StatusOK, "run", v)
}
