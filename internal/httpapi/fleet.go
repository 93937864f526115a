package httpapi

import (
	"net/http"
	"slices"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// Poker answers targets' held polls now (force poll).
type Poker interface {
	Poke(targets []int64) bool
}

// fleetRoutes registers target groups, posted instructions, resync,
// pausing, force-poll and dismantling.
func (s *Server) fleetRoutes(mux *http.ServeMux) {
	read, operate, admin := catalog.RoleReader, catalog.RoleOperator, catalog.RoleAdmin
	s.handle(mux, "GET /api/v1/groups", read, s.listGroups)
	s.handle(mux, "POST /api/v1/groups", admin, s.createGroup)
	s.handle(mux, "DELETE /api/v1/groups/{name}", admin, s.deleteGroup)
	s.handle(mux, "POST /api/v1/groups/{name}/rename", admin, s.renameGroup)
	s.handle(mux, "POST /api/v1/groups/{name}/add", admin, s.groupMembers(false))
	s.handle(mux, "POST /api/v1/groups/{name}/remove", admin, s.groupMembers(true))
	s.handle(mux, "POST /api/v1/post", operate, s.post)
	s.handle(mux, "POST /api/v1/resync", admin, s.resync)
	s.handle(mux, "POST /api/v1/pause", operate, s.pause(true))
	s.handle(mux, "POST /api/v1/resume", operate, s.pause(false))
	s.handle(mux, "POST /api/v1/targets/{name}/poll", operate, s.forcePoll)
	s.handle(mux, "DELETE /api/v1/targets", admin, s.deleteAllTargets)
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request, c caller) error {
	groups, err := s.DB.FindGroups(r.Context())
	if err != nil {
		return err
	}
	if c.scope().Limited() {
		groups = slices.DeleteFunc(groups, func(g muster.Group) bool { return !c.scope().HasGroup(g.Name) })
		for i := range groups {
			groups[i].Jobs = slices.DeleteFunc(groups[i].Jobs, func(j string) bool { return !c.scope().HasJob(j) })
		}
	}
	jsonhttp.WriteJSON(w, http.StatusOK, groups)
	return nil
}

// GroupBody names a group.
type GroupBody struct {
	Name string `json:"name"`
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request, c caller) error {
	var body GroupBody
	if err := jsonhttp.DecodeJSON(w, r, maxBody, &body); err != nil {
		return err
	}
	if err := s.DB.CreateGroup(r.Context(), body.Name, c.actor()); err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusCreated, muster.Group{Name: body.Name, Targets: []string{}, Jobs: []string{}})
	return nil
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := s.DB.DeleteGroup(r.Context(), r.PathValue("name"), c.actor()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) renameGroup(w http.ResponseWriter, r *http.Request, c caller) error {
	var body GroupBody
	if err := jsonhttp.DecodeJSON(w, r, maxBody, &body); err != nil {
		return err
	}
	if err := s.DB.RenameGroup(r.Context(), r.PathValue("name"), body.Name, c.actor()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// TargetsBody names targets.
type TargetsBody struct {
	Targets []string `json:"targets"`
}

func (s *Server) groupMembers(remove bool) handler {
	return func(w http.ResponseWriter, r *http.Request, c caller) error {
		var body TargetsBody
		if err := jsonhttp.DecodeJSON(w, r, maxBody, &body); err != nil {
			return err
		}
		if len(body.Targets) == 0 {
			return muster.Errorf(muster.EINVALID, "targets: name at least one target")
		}
		changes, err := s.DB.SetGroupMembers(r.Context(), r.PathValue("name"), body.Targets, remove, c.actor())
		if err != nil {
			return err
		}
		if changes == nil {
			changes = []muster.JobChange{}
		}
		jsonhttp.WriteJSON(w, http.StatusOK, changes)
		return nil
	}
}

// PostRequest posts an instruction by hand (SQL Server's
// sp_post_msx_operation): see catalog.PostRequest.
type PostRequest struct {
	Operation muster.Operation `json:"operation"`
	Job       string           `json:"job,omitempty"`
	Targets   []string         `json:"targets,omitempty"`
	Value     int              `json:"value,omitempty"`
}

func (s *Server) post(w http.ResponseWriter, r *http.Request, c caller) error {
	var req PostRequest
	if err := jsonhttp.DecodeJSON(w, r, maxBody, &req); err != nil {
		return err
	}
	posted, err := s.DB.Post(r.Context(), catalog.PostRequest{Operation: req.Operation, Job: req.Job, Targets: req.Targets,
		Value: req.Value}, c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusCreated, posted)
	return nil
}

// ResyncBody names the targets to resync, or all of them.
type ResyncBody struct {
	Targets []string `json:"targets,omitempty"`
	All     bool     `json:"all,omitempty"`
}

func (s *Server) resync(w http.ResponseWriter, r *http.Request, c caller) error {
	var body ResyncBody
	if err := jsonhttp.DecodeJSON(w, r, maxBody, &body); err != nil {
		return err
	}
	if body.All == (len(body.Targets) > 0) {
		return muster.Errorf(muster.EINVALID, "name targets or set all, not both and not neither")
	}
	done, err := s.DB.ResyncTargets(r.Context(), body.Targets, body.All, c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, TargetsBody{Targets: nonNil(done)})
	return nil
}

// PauseBody names targets, or a group, to pause or resume.
type PauseBody struct {
	Targets []string `json:"targets,omitempty"`
	Group   string   `json:"group,omitempty"`
}

func (s *Server) pause(paused bool) handler {
	return func(w http.ResponseWriter, r *http.Request, c caller) error {
		var body PauseBody
		if err := jsonhttp.DecodeJSON(w, r, maxBody, &body); err != nil {
			return err
		}
		if body.Group == "" && len(body.Targets) == 0 {
			return muster.Errorf(muster.EINVALID, "name targets or a group")
		}
		done, err := s.DB.SetPaused(r.Context(), body.Targets, body.Group, paused, c.actor())
		if err != nil {
			return err
		}
		jsonhttp.WriteJSON(w, http.StatusOK, TargetsBody{Targets: nonNil(done)})
		return nil
	}
}

// PollResult says whether a force-poll reached a held poll.
type PollResult struct {
	Target    string `json:"target"`
	Connected bool   `json:"connected"`
}

func (s *Server) forcePoll(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := s.checkTarget(r.Context(), c, r.PathValue("name")); err != nil {
		return err
	}
	t, err := s.DB.FindTarget(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	id, err := s.DB.TargetID(r.Context(), t.Name)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, PollResult{Target: t.Name, Connected: s.Poker.Poke([]int64{id})})
	return nil
}

func (s *Server) deleteAllTargets(w http.ResponseWriter, r *http.Request, c caller) error {
	q := r.URL.Query()
	all, err := boolParam(q.Get("all"), "all")
	if err != nil {
		return err
	}
	force, err := boolParam(q.Get("force"), "force")
	if err != nil {
		return err
	}
	if !all {
		return muster.Errorf(muster.EINVALID, "all: deleting every target needs all=true")
	}
	done, err := s.DB.DeleteAllTargets(r.Context(), force, c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, TargetsBody{Targets: nonNil(done)})
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
