package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/musterhq/muster"
)

// Operators lists the operators.
func (c *Client) Operators(ctx context.Context) ([]muster.Operator, error) {
	var out []muster.Operator
	return out, c.do(ctx, http.MethodGet, "/api/v1/operators", nil, nil, &out)
}

// Operator returns one operator.
func (c *Client) Operator(ctx context.Context, name string) (muster.Operator, error) {
	var out muster.Operator
	return out, c.do(ctx, http.MethodGet, "/api/v1/operators/"+segment(name), nil, nil, &out)
}

// CreateOperator creates an operator. The reply carries the webhook secret
// the master made, if it made one; it is not shown again.
func (c *Client) CreateOperator(ctx context.Context, req OperatorRequest) (OperatorResponse, error) {
	var out OperatorResponse
	return out, c.do(ctx, http.MethodPost, "/api/v1/operators", nil, req, &out)
}

// UpdateOperator changes an operator's addresses or secret.
func (c *Client) UpdateOperator(ctx context.Context, name string, u OperatorUpdate) (OperatorResponse, error) {
	var out OperatorResponse
	return out, c.do(ctx, http.MethodPatch, "/api/v1/operators/"+segment(name), nil, u, &out)
}

// DeleteOperator deletes an operator no alert notifies.
func (c *Client) DeleteOperator(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/operators/"+segment(name), nil, nil, nil)
}

// Alerts lists the alerts.
func (c *Client) Alerts(ctx context.Context) ([]muster.Alert, error) {
	var out []muster.Alert
	return out, c.do(ctx, http.MethodGet, "/api/v1/alerts", nil, nil, &out)
}

// CreateAlert creates an alert.
func (c *Client) CreateAlert(ctx context.Context, req AlertRequest) (muster.Alert, error) {
	var out muster.Alert
	return out, c.do(ctx, http.MethodPost, "/api/v1/alerts", nil, req, &out)
}

// DeleteAlert deletes an alert.
func (c *Client) DeleteAlert(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/alerts/"+segment(name), nil, nil, nil)
}

// SetAlertEnabled enables or disables an alert.
func (c *Client) SetAlertEnabled(ctx context.Context, name string, enabled bool) (muster.Alert, error) {
	verb := "disable"
	if enabled {
		verb = "enable"
	}
	var out muster.Alert
	return out, c.do(ctx, http.MethodPost, "/api/v1/alerts/"+segment(name)+"/"+verb, nil, struct{}{}, &out)
}

// AlertHistoryFilter selects notifications.
type AlertHistoryFilter struct {
	Alert, Operator string
	Status          muster.DeliveryStatus
	Limit           int
	// Cursor reads on after the page that named it as its next.
	Cursor string
}

// AlertHistory lists a page of the notifications alerts sent, newest
// first.
func (c *Client) AlertHistory(ctx context.Context, f AlertHistoryFilter) ([]muster.Delivery, error) {
	out, _, err := c.AlertHistoryPage(ctx, f)
	return out, err
}

// AlertHistoryPage lists a page of the notifications alerts sent, newest
// first, and returns the cursor of the next page: empty on the last.
func (c *Client) AlertHistoryPage(ctx context.Context, f AlertHistoryFilter) ([]muster.Delivery, string, error) {
	q := filterQuery(map[string]string{"alert": f.Alert, "operator": f.Operator, "status": string(f.Status), "cursor": f.Cursor}, f.Limit)
	var out []muster.Delivery
	next, err := c.page(ctx, "/api/v1/alerts/history", q, &out)
	return out, next, err
}

// EventFilter selects events.
type EventFilter struct {
	Event, Target, Job string
	MinSeverity        muster.Severity
	Limit              int
	// Cursor reads on after the page that named it as its next.
	Cursor string
}

// Events lists a page of events, newest first.
func (c *Client) Events(ctx context.Context, f EventFilter) ([]muster.Event, error) {
	out, _, err := c.EventsPage(ctx, f)
	return out, err
}

// EventsPage lists a page of events, newest first, and returns the cursor
// of the next page: empty on the last.
func (c *Client) EventsPage(ctx context.Context, f EventFilter) ([]muster.Event, string, error) {
	q := filterQuery(map[string]string{"event": f.Event, "target": f.Target, "job": f.Job, "cursor": f.Cursor}, f.Limit)
	if f.MinSeverity > 0 {
		q.Set("min_severity", strconv.Itoa(int(f.MinSeverity)))
	}
	var out []muster.Event
	next, err := c.page(ctx, "/api/v1/events", q, &out)
	return out, next, err
}

// filterQuery makes a query of the parameters that are set, and limit if it is.
func filterQuery(params map[string]string, limit int) url.Values {
	q := url.Values{}
	for k, v := range params {
		if v != "" {
			q.Set(k, v)
		}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q
}
