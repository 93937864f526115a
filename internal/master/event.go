package master

import (
	"net/http"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// maxEventsBody bounds a forward of events.
const maxEventsBody = 8 << 20

// events answers POST /agent/v1/events: events a target forwards. Each is
// recorded once per (enlistment, target's id); the dispatcher is woken to
// match them against the alerts.
func (a *agent) events(w http.ResponseWriter, r *http.Request, t catalog.TargetIdentity) error {
	var req agentproto.EventsRequest
	if err := jsonhttp.DecodeJSON(w, r, maxEventsBody, &req); err != nil {
		return err
	}
	if len(req.Events) > catalog.MaxEventsPerForward {
		return muster.Errorf(muster.EINVALID, "events: at most %d in one forward", catalog.MaxEventsPerForward)
	}
	events := make([]catalog.TargetEvent, len(req.Events))
	for i, e := range req.Events {
		events[i] = catalog.TargetEvent{ID: e.ID, Name: e.Name, Severity: e.Severity, Job: e.Job, RunID: e.RunID, Message: e.Message, At: e.At}
	}
	results, err := a.m.Catalog.RecordTargetEvents(r.Context(), t, events)
	if err != nil {
		return err
	}
	a.m.alerts.wake()
	resp := agentproto.EventsResponse{Results: make([]agentproto.EventResult, len(results))}
	for i, res := range results {
		resp.Results[i] = agentproto.EventResult{ID: res.ID, OK: res.OK, Error: res.Error}
	}
	jsonhttp.WriteJSON(w, http.StatusOK, resp)
	return nil
}
