package httpapi

import (
	"context"
	"net/http"
	"net/url"

	"github.com/musterhq/muster"
)

// Groups lists target groups.
func (c *Client) Groups(ctx context.Context) ([]muster.Group, error) {
	var out []muster.Group
	return out, c.do(ctx, http.MethodGet, "/api/v1/groups", nil, nil, &out)
}

// CreateGroup creates an empty group.
func (c *Client) CreateGroup(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/groups", nil, GroupBody{Name: name}, nil)
}

// DeleteGroup deletes a group no job uses.
func (c *Client) DeleteGroup(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/groups/"+segment(name), nil, nil, nil)
}

// RenameGroup renames a group.
func (c *Client) RenameGroup(ctx context.Context, name, newName string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/groups/"+segment(name)+"/rename", nil, GroupBody{Name: newName}, nil)
}

// GroupMembers adds targets to a group (or removes them), and returns what
// that posted to them.
func (c *Client) GroupMembers(ctx context.Context, group string, targets []string, remove bool) ([]muster.JobChange, error) {
	verb := "add"
	if remove {
		verb = "remove"
	}
	var out []muster.JobChange
	return out, c.do(ctx, http.MethodPost, "/api/v1/groups/"+segment(group)+"/"+verb, nil, TargetsBody{Targets: targets}, &out)
}

// Post posts instructions by hand.
func (c *Client) Post(ctx context.Context, req PostRequest) ([]muster.Instruction, error) {
	var out []muster.Instruction
	return out, c.do(ctx, http.MethodPost, "/api/v1/post", nil, req, &out)
}

// Resync resyncs targets (or all).
func (c *Client) Resync(ctx context.Context, body ResyncBody) ([]string, error) {
	var out TargetsBody
	return out.Targets, c.do(ctx, http.MethodPost, "/api/v1/resync", nil, body, &out)
}

// Pause pauses (or resumes) targets or a group's members.
func (c *Client) Pause(ctx context.Context, body PauseBody, paused bool) ([]string, error) {
	path := "/api/v1/resume"
	if paused {
		path = "/api/v1/pause"
	}
	var out TargetsBody
	return out.Targets, c.do(ctx, http.MethodPost, path, nil, body, &out)
}

// ForcePoll makes a target answer its held poll and poll again now.
func (c *Client) ForcePoll(ctx context.Context, name string) (PollResult, error) {
	var out PollResult
	return out, c.do(ctx, http.MethodPost, "/api/v1/targets/"+segment(name)+"/poll", nil, struct{}{}, &out)
}

// DeleteAllTargets dismantles the fleet: every target is deleted.
func (c *Client) DeleteAllTargets(ctx context.Context, force bool) ([]string, error) {
	q := url.Values{"all": {"true"}}
	if force {
		q.Set("force", "true")
	}
	var out TargetsBody
	return out.Targets, c.do(ctx, http.MethodDelete, "/api/v1/targets", q, nil, &out)
}
