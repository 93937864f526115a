package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/httpapi"
)

// fleetPageSize is how many targets a page of the fleet shows: 10,000
// targets are 100 pages, each as quick to render as the first.
const fleetPageSize = 100

// fleetPage is the fleet page's data.
type fleetPage struct {
	Rows     []targetRow
	Total    int // targets that match the filters
	All      int // targets in the fleet
	Counts   map[string]int
	Groups   []string
	Status   string
	Group    string
	Query    string
	Statuses []string
	pager
}

// targetRow is a target as a row of the fleet.
type targetRow struct {
	muster.Target
	Groups []string
	Badges []string
	Skew   string
	Local  string
}

// badges are a target's status and the flags beside it, as the fleet shows
// them: normal, suspected offline, blocked, paused, defected (deleted on the
// master, waiting to collect its DEFECT), disk full.
func badges(t muster.Target) []string {
	out := []string{t.Status}
	for _, f := range t.Flags {
		if f != t.Status && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// localTime shows a target's clock: its local time, zone and UTC offset.
func localTime(t muster.Target) string {
	if t.LocalTime == nil {
		return "never polled"
	}
	zone := t.TimeZone
	if zone == "" {
		zone = "local"
	}
	return fmt.Sprintf("%s %s (%s)", t.LocalTime.UTC().Add(time.Duration(t.UTCOffsetMinutes)*time.Minute).Format("15:04"), zone, offset(t.UTCOffsetMinutes))
}

// offset writes minutes east of UTC as UTC+01:00.
func offset(minutes int) string {
	sign := "+"
	if minutes < 0 {
		sign, minutes = "-", -minutes
	}
	return fmt.Sprintf("UTC%s%02d:%02d", sign, minutes/60, minutes%60)
}

func skew(ms int64) string {
	if ms == 0 {
		return "0"
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

func (s *Server) fleet(w http.ResponseWriter, r *http.Request, v *view) error {
	q := r.URL.Query()
	p := fleetPage{Status: q.Get("status"), Group: q.Get("group"), Query: strings.TrimSpace(q.Get("q")), pager: pager{Page: pageNumber(r)},
		Statuses: []string{muster.StatusNormal, muster.StatusSuspectedOffline, muster.StatusBlocked, muster.FlagPaused, muster.FlagDiskFull,
			muster.FlagDeleted, muster.StatusDefected}}
	if p.Status != "" && !slices.Contains(p.Statuses, p.Status) {
		return muster.Errorf(muster.EINVALID, "status: %q is not a status; use normal, suspected_offline, blocked, paused, disk_full, deleted or defected", p.Status)
	}
	targets, err := s.DB.FindTargets(r.Context(), catalog.TargetFilter{})
	if err != nil {
		return err
	}
	// Targets that left the fleet are listed apart, as `target list
	// --status defected` lists them: their history stays, their names may
	// be enlisted again.
	gone, err := s.DB.FindTargets(r.Context(), catalog.TargetFilter{Status: muster.StatusDefected})
	if err != nil {
		return err
	}
	groups, err := s.DB.FindGroups(r.Context())
	if err != nil {
		return err
	}
	member := map[string][]string{}
	for _, g := range groups {
		p.Groups = append(p.Groups, g.Name)
		for _, t := range g.Targets {
			member[t] = append(member[t], g.Name)
		}
	}
	if p.Group != "" && !slices.Contains(p.Groups, p.Group) {
		return muster.Errorf(muster.ENOTFOUND, "group: no target group named %q", p.Group)
	}
	p.All, p.Counts = len(targets), map[string]int{muster.StatusDefected: len(gone)}
	for _, t := range targets {
		for _, b := range badges(t) {
			p.Counts[b]++
		}
	}
	if p.Status == muster.StatusDefected {
		targets = gone
	}
	var match []muster.Target
	for _, t := range targets {
		if p.Status != "" && !slices.Contains(badges(t), p.Status) {
			continue
		}
		if p.Group != "" && !slices.Contains(member[t.Name], p.Group) {
			continue
		}
		if p.Query != "" && !strings.Contains(t.Name, strings.ToLower(p.Query)) && !strings.Contains(strings.ToLower(t.Location), strings.ToLower(p.Query)) {
			continue
		}
		match = append(match, t)
	}
	p.Total = len(match)
	from, to := p.paginate(p.Total, fleetPageSize)
	for _, t := range match[from:to] {
		p.Rows = append(p.Rows, targetRow{Target: t, Groups: member[t.Name], Badges: badges(t), Skew: skew(t.ClockSkewMS), Local: localTime(t)})
	}
	filters := url.Values{}
	for k, val := range map[string]string{"status": p.Status, "group": p.Group, "q": p.Query} {
		if val != "" {
			filters.Set(k, val)
		}
	}
	v.Title, v.Nav, v.Live = "Fleet", "fleet", p.link("/fleet", filters)
	v.Data = p
	return s.render(w, http.StatusOK, "fleet", v)
}

// forcePoll answers the target's held poll now.
func (s *Server) forcePoll(w http.ResponseWriter, r *http.Request, v *view) error {
	name := muster.NormalizeTargetName(r.PathValue("name"))
	id, err := s.DB.TargetID(r.Context(), name)
	if err != nil {
		return err
	}
	s.Poker.Poke([]int64{id})
	return back(w, r, "/targets/"+url.PathEscape(name))
}

func (s *Server) resync(w http.ResponseWriter, r *http.Request, v *view) error {
	name := muster.NormalizeTargetName(r.PathValue("name"))
	if _, err := s.DB.ResyncTargets(r.Context(), []string{name}, false, httpapi.Actor(v.Key, r)); err != nil {
		return err
	}
	return back(w, r, "/targets/"+url.PathEscape(name))
}

func (s *Server) pause(paused bool) pageHandler {
	return func(w http.ResponseWriter, r *http.Request, v *view) error {
		name := muster.NormalizeTargetName(r.PathValue("name"))
		if _, err := s.DB.SetPaused(r.Context(), []string{name}, "", paused, httpapi.Actor(v.Key, r)); err != nil {
			return err
		}
		return back(w, r, "/targets/"+url.PathEscape(name))
	}
}

// confirmDelete asks before a target is deleted.
func (s *Server) confirmDelete(w http.ResponseWriter, r *http.Request, v *view) error {
	t, err := s.DB.FindTarget(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	v.Title, v.Nav, v.Data = "Delete "+t.Name, "fleet", t
	return s.render(w, http.StatusOK, "delete", v)
}

// deleteTarget deletes a target: it defects at its next poll, or at once
// with force (for a target that is gone for good).
func (s *Server) deleteTarget(w http.ResponseWriter, r *http.Request, v *view) error {
	name := muster.NormalizeTargetName(r.PathValue("name"))
	if r.PostFormValue("confirm") != name {
		return muster.Errorf(muster.EINVALID, "confirm: type the target's name, %s, to delete it", name)
	}
	force := r.PostFormValue("force") == "true"
	if err := s.DB.DeleteTarget(r.Context(), name, force, httpapi.Actor(v.Key, r)); err != nil {
		return err
	}
	http.Redirect(w, r, "/fleet", http.StatusSeeOther)
	return nil
}
