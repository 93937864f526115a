package console

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
)

// targetPage is one target: its row, download list, jobs and runs.
type targetPage struct {
	targetRow
	Instructions []muster.Instruction
	Jobs         []muster.JobStatus
	Runs         []muster.Run
}

func (s *Server) target(w http.ResponseWriter, r *http.Request, v *view) error {
	t, err := s.DB.FindTarget(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	p := targetPage{targetRow: targetRow{Target: t, Badges: badges(t), Skew: skew(t.ClockSkewMS), Local: localTime(t)}}
	groups, err := s.DB.FindGroups(r.Context())
	if err != nil {
		return err
	}
	for _, g := range groups {
		for _, m := range g.Targets {
			if m == t.Name {
				p.Groups = append(p.Groups, g.Name)
			}
		}
	}
	if p.Instructions, err = s.DB.FindInstructions(r.Context(), catalog.InstructionFilter{Target: t.Name, Limit: 200}); err != nil {
		return err
	}
	// The failed instructions block the target however old they are:
	// each is shown, with Retry and Delete, among the newest.
	failed, err := s.DB.FindInstructions(r.Context(), catalog.InstructionFilter{Target: t.Name, Errors: true, Limit: 200})
	if err != nil {
		return err
	}
	for _, in := range failed {
		if !slices.ContainsFunc(p.Instructions, func(o muster.Instruction) bool { return o.Seq == in.Seq }) {
			p.Instructions = append(p.Instructions, in)
		}
	}
	slices.SortFunc(p.Instructions, func(a, b muster.Instruction) int { return cmp.Compare(a.Seq, b.Seq) })
	jobs, err := s.DB.FindTargetJobs(r.Context(), t.Name)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		for _, o := range j.Outcomes {
			if o.Target == t.Name {
				j.Outcomes = []muster.JobTarget{o}
				p.Jobs = append(p.Jobs, j)
				break
			}
		}
	}
	if p.Runs, err = s.DB.FindRuns(r.Context(), catalog.RunFilter{Target: t.Name, Limit: 50}); err != nil {
		return err
	}
	v.Title, v.Nav, v.Live, v.Data = "Target "+t.Name, "fleet", "/targets/"+url.PathEscape(t.Name), p
	return s.render(w, http.StatusOK, "target", v)
}

// instructionRef reads the target and sequence number of an instruction
// from the path.
func instructionRef(r *http.Request) (string, int64, error) {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || seq < 1 {
		return "", 0, muster.Errorf(muster.EINVALID, "seq: %q is not a sequence number", r.PathValue("seq"))
	}
	return muster.NormalizeTargetName(r.PathValue("target")), seq, nil
}

func (s *Server) retryInstruction(w http.ResponseWriter, r *http.Request, v *view) error {
	target, seq, err := instructionRef(r)
	if err != nil {
		return err
	}
	in, err := s.DB.RetryInstruction(r.Context(), target, seq, httpapi.Actor(v.Key, r))
	if err != nil {
		return err
	}
	if in.RunID != "" {
		// A retried START is a new run: its page follows it, as a start's.
		http.Redirect(w, r, "/runs/"+url.PathEscape(in.Target)+"/"+url.PathEscape(in.RunID)+"?started=1", http.StatusSeeOther)
		return nil
	}
	return back(w, r, "/targets/"+url.PathEscape(target))
}

func (s *Server) deleteInstruction(w http.ResponseWriter, r *http.Request, v *view) error {
	target, seq, err := instructionRef(r)
	if err != nil {
		return err
	}
	if err := s.DB.DeleteInstruction(r.Context(), target, seq, httpapi.Actor(v.Key, r)); err != nil {
		return err
	}
	return back(w, r, "/targets/"+url.PathEscape(target))
}
