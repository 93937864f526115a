package master

import (
	"net/http"

	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// maxEventsBody bounds a forward of events, and maxEventItem each event in
// it as sent: an event's message is at most 4 KiB, which JSON's escapes can
// make six times longer.
const (
	maxEventsBody = 8 << 20
	maxEventItem  = 64 << 10
)

// events answers POST /agent/v1/events: events a target forwards. Each is
// recorded once per (enlistment, target's id); the dispatcher is woken to
// match them against the alerts.
func (a *agent) events(w http.ResponseWriter, r *http.Request, t catalog.TargetIdentity) error {
	release, err := a.m.uploads.admit(r.Context(), t.ID, t.Name, uploadEvents, r.ContentLength, maxEventsBody, maxEventItem, maxEventsBody)
	if err != nil {
		return err
	}
	defer release()
	sent, err := jsonhttp.DecodeList[agentproto.Event](w, r, maxEventsBody, "events", catalog.MaxEventsPerForward, maxEventItem)
	if err != nil {
		return err
	}
	events := make([]catalog.TargetEvent, len(sent))
	for i, e := range sent {
		events[i] = catalog.TargetEvent{ID: e.ID, Name: e.Name, Severity: e.Severity, Job: e.Job, RunID: e.RunID, Message: e.Message, At: e.At}
	}
	results, err := a.m.Catalog.RecordTargetEvents(r.Context(), t, events)
	if err != nil {
		return err
	}
	release()
	a.m.alerts.wake()
	resp := agentproto.EventsResponse{Results: make([]agentproto.EventResult, len(results))}
	for i, res := range results {
		resp.Results[i] = agentproto.EventResult{ID: res.ID, OK: res.OK, Error: res.Error}
	}
	jsonhttp.WriteJSON(w, http.StatusOK, resp)
	return nil
}
