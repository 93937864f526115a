package httpapi

import (
	"net/http"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/jsonhttp"
	"github.com/musterhq/muster/internal/pki"
)

// alertRoutes registers operators, alerts, their history and events.
// Reading needs the reader role; changing operators and alerts, admin.
func (s *Server) alertRoutes(mux *http.ServeMux) {
	read, admin := catalog.RoleReader, catalog.RoleAdmin
	s.handle(mux, "GET /api/v1/operators", read, s.listOperators)
	s.handle(mux, "POST /api/v1/operators", admin, s.createOperator)
	s.handle(mux, "GET /api/v1/operators/{name}", read, s.showOperator)
	s.handle(mux, "PATCH /api/v1/operators/{name}", admin, s.updateOperator)
	s.handle(mux, "DELETE /api/v1/operators/{name}", admin, s.deleteOperator)
	s.handle(mux, "GET /api/v1/alerts", read, s.listAlerts)
	s.handle(mux, "POST /api/v1/alerts", admin, s.createAlert)
	s.handle(mux, "DELETE /api/v1/alerts/{name}", admin, s.deleteAlert)
	s.handle(mux, "POST /api/v1/alerts/{name}/enable", admin, s.enableAlert(true))
	s.handle(mux, "POST /api/v1/alerts/{name}/disable", admin, s.enableAlert(false))
	s.handle(mux, "GET /api/v1/alerts/history", read, s.alertHistory)
	s.handle(mux, "GET /api/v1/events", read, s.listEvents)
}

// OperatorRequest creates an operator. Without WebhookSecret, the master
// makes one when there is a webhook.
type OperatorRequest struct {
	Name          string `json:"name"`
	Webhook       string `json:"webhook,omitempty"`
	Email         string `json:"email,omitempty"`
	WebhookSecret string `json:"webhook_secret,omitempty"`
}

// OperatorResponse is an operator, with the webhook secret the master made
// for it in this request, if it made one. The secret is shown only here.
type OperatorResponse struct {
	muster.Operator
	WebhookSecret string `json:"webhook_secret,omitempty"`
}

// newWebhookSecret makes a webhook signing secret.
func newWebhookSecret() string { return "mws_" + pki.RandomSecret() }

func (s *Server) listOperators(w http.ResponseWriter, r *http.Request, c caller) error {
	ops, err := s.DB.FindOperators(r.Context())
	if err != nil {
		return err
	}
	if !c.admin() {
		for i := range ops {
			ops[i] = ops[i].Redacted()
		}
	}
	jsonhttp.WriteJSON(w, http.StatusOK, ops)
	return nil
}

func (s *Server) showOperator(w http.ResponseWriter, r *http.Request, c caller) error {
	op, err := s.DB.FindOperator(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	if !c.admin() {
		op = op.Redacted()
	}
	jsonhttp.WriteJSON(w, http.StatusOK, op)
	return nil
}

func (s *Server) createOperator(w http.ResponseWriter, r *http.Request, c caller) error {
	var req OperatorRequest
	if err := jsonhttp.DecodeJSON(w, r, maxBody, &req); err != nil {
		return err
	}
	var made string
	secret := req.WebhookSecret
	if secret == "" && req.Webhook != "" {
		secret = newWebhookSecret()
		made = secret
	}
	op, err := s.DB.CreateOperator(r.Context(), muster.Operator{Name: req.Name, Webhook: req.Webhook, Email: req.Email}, secret, c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusCreated, OperatorResponse{Operator: op, WebhookSecret: made})
	return nil
}

// OperatorUpdate changes an operator: each field that is set replaces the
// operator's; "" removes an address.
type OperatorUpdate struct {
	Webhook *string `json:"webhook,omitempty"`
	Email   *string `json:"email,omitempty"`
	// WebhookSecret replaces the secret with the one given.
	WebhookSecret *string `json:"webhook_secret,omitempty"`
	// NewSecret replaces the secret with a new one, made by the master.
	NewSecret bool `json:"new_secret,omitempty"`
}

func (s *Server) updateOperator(w http.ResponseWriter, r *http.Request, c caller) error {
	var u OperatorUpdate
	if err := jsonhttp.DecodeJSON(w, r, maxBody, &u); err != nil {
		return err
	}
	op, made, err := s.DB.UpdateOperator(r.Context(), r.PathValue("name"), catalog.OperatorUpdate(u), newWebhookSecret, c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, OperatorResponse{Operator: op, WebhookSecret: made})
	return nil
}

func (s *Server) deleteOperator(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := s.DB.DeleteOperator(r.Context(), r.PathValue("name"), c.actor()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// AlertRequest creates an alert.
type AlertRequest struct {
	Name        string           `json:"name"`
	Event       muster.EventName `json:"event"`
	Job         string           `json:"job,omitempty"`
	Target      string           `json:"target,omitempty"`
	MinSeverity muster.Severity  `json:"min_severity,omitempty"`
	Window      muster.Duration  `json:"window,omitempty"`
	Notify      []string         `json:"notify"`
}

func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request, _ caller) error {
	alerts, err := s.DB.FindAlerts(r.Context())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, alerts)
	return nil
}

func (s *Server) createAlert(w http.ResponseWriter, r *http.Request, c caller) error {
	var req AlertRequest
	if err := jsonhttp.DecodeJSON(w, r, maxBody, &req); err != nil {
		return err
	}
	a, err := s.DB.CreateAlert(r.Context(), muster.Alert{
		Name: req.Name, Event: req.Event, Job: req.Job, Target: req.Target, MinSeverity: req.MinSeverity,
		Window: req.Window, Notify: req.Notify,
	}, c.actor())
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusCreated, a)
	return nil
}

func (s *Server) deleteAlert(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := s.DB.DeleteAlert(r.Context(), r.PathValue("name"), c.actor()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) enableAlert(enabled bool) handler {
	return func(w http.ResponseWriter, r *http.Request, c caller) error {
		a, err := s.DB.SetAlertEnabled(r.Context(), r.PathValue("name"), enabled, c.actor())
		if err != nil {
			return err
		}
		jsonhttp.WriteJSON(w, http.StatusOK, a)
		return nil
	}
}

// alertHistory answers GET /api/v1/alerts/history: a page of the
// notifications alerts sent, newest first, with a Link header to the next.
func (s *Server) alertHistory(w http.ResponseWriter, r *http.Request, c caller) error {
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), "limit", 50, 1, MaxEventsLimit)
	if err != nil {
		return err
	}
	status := muster.DeliveryStatus(q.Get("status"))
	if err := muster.ValidateDeliveryStatus("status", status); err != nil {
		return err
	}
	list, next, err := s.DB.FindDeliveriesPage(r.Context(), catalog.DeliveryFilter{
		Alert: q.Get("alert"), Operator: q.Get("operator"), Status: status, Limit: limit, Cursor: q.Get("cursor"),
	})
	if err != nil {
		return err
	}
	if !c.admin() {
		for i := range list {
			if list[i].Channel == muster.ChannelWebhook {
				list[i].Address = muster.RedactWebhook(list[i].Address)
			}
		}
	}
	setNextPage(w, r, next)
	jsonhttp.WriteJSON(w, http.StatusOK, list)
	return nil
}

// listEvents answers GET /api/v1/events: a page of events, newest first,
// with a Link header to the next.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request, c caller) error {
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), "limit", 50, 1, MaxEventsLimit)
	if err != nil {
		return err
	}
	f := catalog.EventFilter{Event: muster.EventName(q.Get("event")), Target: muster.NormalizeTargetName(q.Get("target")), Job: q.Get("job"),
		Limit: limit, Scope: c.scope(), Cursor: q.Get("cursor")}
	if f.Job != "" {
		if err := checkJob(c, f.Job); err != nil {
			return err
		}
	}
	if f.Event != "" && !f.Event.Valid() {
		return muster.Errorf(muster.EINVALID, "event: %q is not an event", f.Event)
	}
	if v := q.Get("min_severity"); v != "" {
		if f.MinSeverity, err = muster.ParseSeverity("min_severity", v); err != nil {
			return err
		}
	}
	events, next, err := s.DB.FindEventsPage(r.Context(), f)
	if err != nil {
		return err
	}
	setNextPage(w, r, next)
	jsonhttp.WriteJSON(w, http.StatusOK, events)
	return nil
}
