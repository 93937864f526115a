package master

import (
	"net/http"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
)

// maxEventsBody bounds a forward of events.
const maxEventsBody = 8 << 20

// events answers POST /agent/v1/events: events a target forwards. Each is
// recorded once per (enlistment, target's id); the dispatcher is woken to
// match them against the alerts.
func (a *agent) events(w http.ResponseWriter, r *http.Request, t catalog.TargetIdentity) {
	var req agentproto.EventsRequest
	if err := httpapi.DecodeJSON(w, r, maxEventsBody, &req); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if len(req.Events) > catalog.MaxEventsPerForward {
		httpapi.WriteError(w, r, muster.Errorf(muster.EINVALID, "events: at most %d in one forward", catalog.MaxEventsPerForward))
		return
	}
	results, err := a.m.DB.RecordTargetEvents(r.Context(), t, req.Events)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	a.m.alerts.wake()
	httpapi.WriteJSON(w, http.StatusOK, agentproto.EventsResponse{Results: results})
}
