package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/catalog"
	"github.com/musterhq/muster/internal/pki"
)

// nextLink is the link a reply names as its next page (Link: <…>;
// rel="next"), resolved against base; empty when the reply names none.
var nextLinkRE = regexp.MustCompile(`<([^>]*)>\s*;\s*rel="next"`)

func nextLink(t *testing.T, base string, h http.Header) string {
	t.Helper()
	m := nextLinkRE.FindStringSubmatch(h.Get("Link"))
	if m == nil {
		return ""
	}
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := url.Parse(m[1])
	if err != nil {
		t.Fatalf("Link %q: %v", h.Get("Link"), err)
	}
	return b.ResolveReference(ref).String()
}

// getPage reads one page of a list, and the link to the next.
func getPage[T any](t *testing.T, hc *http.Client, base, u, token string) ([]T, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error muster.Error `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		t.Fatalf("GET %s: %d %s: %s", u, resp.StatusCode, e.Error.Code, e.Error.Message)
	}
	var out []T
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out, nextLink(t, base, resp.Header)
}

// An auditor reads the whole audit log, page by page, following each
// reply's link to the next, while changes go on being recorded: every
// entry there was when the first page was read comes exactly once, newest
// first, and the last page links to none.
func TestAuditIsReadPageByPage(t *testing.T) {
	base, hc, db := apiServer(t)
	ctx := context.Background()
	reader, self := readerKey(t, db)
	for i := range 24 {
		if err := db.CreateGroup(ctx, fmt.Sprintf("g%02d", i), self); err != nil {
			t.Fatal(err)
		}
	}
	before, err := db.FindAudit(ctx, catalog.AuditFilter{Limit: catalog.MaxAuditList})
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 25 {
		t.Fatalf("the audit log holds %d entries, want 25", len(before))
	}

	var got []muster.AuditEntry
	next, pages := base+"/api/v1/audit?limit=10", 0
	for next != "" {
		var page []muster.AuditEntry
		page, next = getPage[muster.AuditEntry](t, hc, base, next, reader)
		got = append(got, page...)
		pages++
		if pages > 5 {
			t.Fatalf("still a next page after %d pages", pages)
		}
		// A change made between two reads is newer than every entry of
		// the walk: it neither shifts the pages nor comes in them.
		if err := db.CreateGroup(ctx, fmt.Sprintf("late%d", pages), self); err != nil {
			t.Fatal(err)
		}
	}
	if pages != 3 {
		t.Errorf("pages = %d, want 3 (10, 10 and 5 entries)", pages)
	}
	if len(got) != len(before) {
		t.Fatalf("read %d entries, want %d", len(got), len(before))
	}
	for i := range before {
		if got[i].ID != before[i].ID || got[i].Object != before[i].Object {
			t.Errorf("entry %d = %d %q, want %d %q", i, got[i].ID, got[i].Object, before[i].ID, before[i].Object)
		}
	}
}

// pagedList is a list read page by page: its first page's URL, and the id
// of an entry.
type pagedList[T any] struct {
	path string
	id   func(T) string
}

// walk reads every page of a list, following each reply's link to the
// next, calling between reads, and returns the entries read and how many
// pages.
func walk[T any](t *testing.T, hc *http.Client, base, token string, l pagedList[T], between func()) ([]string, int) {
	t.Helper()
	var ids []string
	next, pages := base+l.path, 0
	for next != "" {
		var page []T
		page, next = getPage[T](t, hc, base, next, token)
		for _, v := range page {
			ids = append(ids, l.id(v))
		}
		if pages++; pages > 20 {
			t.Fatalf("%s: still a next page after %d pages", l.path, pages)
		}
		between()
	}
	return ids, pages
}

// The events and the alerts' notifications are read page by page like
// the audit log: each entry there was when the walk began, once, newest
// first, whatever is raised meanwhile.
func TestEventsAndNotificationsAreReadPageByPage(t *testing.T) {
	base, hc, db := apiServer(t)
	ctx := context.Background()
	reader, self := readerKey(t, db)
	web1 := enlistIn(t, db, "web1")
	if _, err := db.CreateOperator(ctx, muster.Operator{Name: "ops", Email: "ops@example.com"}, "", self); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateAlert(ctx, muster.Alert{Name: "spool", Event: muster.EventSpoolFull, Notify: []string{"ops"}}, self); err != nil {
		t.Fatal(err)
	}
	n := int64(0)
	raise := func() {
		n++
		if _, err := db.RecordTargetEvents(ctx, web1, []catalog.TargetEvent{{ID: n, Name: muster.EventSpoolFull, Severity: 3, Message: "full", At: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.DispatchEvents(ctx, func() string { return fmt.Sprintf("d%d", n) }); err != nil {
			t.Fatal(err)
		}
	}
	for range 12 {
		raise()
	}
	events := pagedList[muster.Event]{"/api/v1/events?event=spool_full&limit=5", func(e muster.Event) string { return fmt.Sprint(e.ID) }}
	wantEvents, _ := walk(t, hc, base, reader, pagedList[muster.Event]{"/api/v1/events?event=spool_full&limit=1000", events.id}, func() {})
	gotEvents, pages := walk(t, hc, base, reader, events, raise)
	if !slices.Equal(gotEvents, wantEvents) || pages != 3 {
		t.Errorf("events in %d pages: %v, want %v in 3", pages, gotEvents, wantEvents)
	}

	notes := pagedList[muster.Delivery]{"/api/v1/alerts/history?alert=spool&limit=5", func(d muster.Delivery) string { return d.ID }}
	wantNotes, _ := walk(t, hc, base, reader, pagedList[muster.Delivery]{"/api/v1/alerts/history?alert=spool&limit=1000", notes.id}, func() {})
	gotNotes, pages := walk(t, hc, base, reader, notes, raise)
	if len(wantNotes) <= 10 || !slices.Equal(gotNotes, wantNotes) || pages != 3 {
		t.Errorf("notifications in %d pages: %v, want %v (11 to 15) in 3", pages, gotNotes, wantNotes)
	}
}

// A job's history is read page by page, newest first: runs that started
// at the same instant keep one order (the order the master recorded them)
// so that no page boundary splits them twice or not at all, and runs
// uploaded between reads move none from one page to another.
func TestJobHistoryIsReadPageByPage(t *testing.T) {
	base, hc, db := apiServer(t)
	ctx := context.Background()
	reader, self := readerKey(t, db)
	web1 := enlistIn(t, db, "web1")
	j := muster.NewJob()
	j.Name, j.Targets, j.Steps = "backup", []string{"web1"}, []muster.Step{{Name: "dump", Shell: "true"}}
	if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, self); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC)
	n := 0
	upload := func(started time.Time) {
		n++
		end := started.Add(time.Second)
		r := muster.Run{Job: "backup", RunID: fmt.Sprintf("r%02d", n), Status: muster.RunSucceeded, Trigger: muster.TriggerSchedule, StartedAt: started, FinishedAt: &end}
		if _, err := db.UpsertRuns(ctx, web1, []catalog.RunUpload{{Revision: 1, Run: r}}); err != nil {
			t.Fatal(err)
		}
	}
	// Seven runs that started at one instant, then four a minute apart.
	for range 7 {
		upload(at)
	}
	for i := range 4 {
		upload(at.Add(time.Duration(i+1) * time.Minute))
	}
	history := pagedList[muster.Run]{"/api/v1/jobs/backup/history?limit=3", func(r muster.Run) string { return r.RunID }}
	want, _ := walk(t, hc, base, reader, pagedList[muster.Run]{"/api/v1/jobs/backup/history?limit=1000", history.id}, func() {})
	if len(want) != 11 {
		t.Fatalf("history: %d runs, want 11", len(want))
	}
	got, pages := walk(t, hc, base, reader, history, func() { upload(at.Add(time.Hour)) })
	if !slices.Equal(got, want) || pages != 4 {
		t.Errorf("history in %d pages: %v, want %v in 4", pages, got, want)
	}
}

// The download lists are read page by page, newest first: instructions a
// fan-out posted to many targets at one instant, with the same sequence
// numbers, keep one order (by target), so that a page boundary among them
// neither repeats nor skips one; each page lists its entries by target
// and sequence number.
func TestDownloadListIsReadPageByPage(t *testing.T) {
	base, hc, db := apiServer(t)
	ctx := context.Background()
	reader, self := readerKey(t, db)
	var targets []string
	for i := range 6 {
		name := fmt.Sprintf("web%d", i)
		targets = append(targets, name)
		enlistIn(t, db, name)
	}
	j := muster.NewJob()
	j.Name, j.Targets, j.Steps = "backup", targets, []muster.Step{{Name: "dump", Shell: "true"}}
	if _, err := db.ApplyJobs(ctx, []muster.Job{j}, catalog.ApplyOptions{}, self); err != nil {
		t.Fatal(err)
	}
	start := func() {
		if _, err := db.StartJob(ctx, catalog.StartRequest{Job: "backup"}, self); err != nil {
			t.Fatal(err)
		}
	}
	start()
	id := func(in muster.Instruction) string { return fmt.Sprintf("%s/%d", in.Target, in.Seq) }
	want, _ := walk(t, hc, base, reader, pagedList[muster.Instruction]{"/api/v1/downloadlist?job=backup&limit=1000", id}, func() {})
	if len(want) != 12 {
		t.Fatalf("download lists: %d entries, want 12", len(want))
	}
	got, pages := walk(t, hc, base, reader, pagedList[muster.Instruction]{"/api/v1/downloadlist?job=backup&limit=5", id}, start)
	if pages != 3 || len(got) != len(want) {
		t.Fatalf("read %v in %d pages, want the 12 of %v in 3", got, pages, want)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("read %v, want %v", got, want)
	}
}

// since= takes a time in any zone. A time written into a URL as it is,
// its offset's + turned into a space by the query's decoding, is read as
// the offset it was, not refused as no time.
func TestAuditSinceInAnyZone(t *testing.T) {
	base, hc, db := apiServer(t)
	reader, _ := readerKey(t, db)
	future := time.Now().Add(time.Hour).UTC()
	for _, since := range []string{
		future.Format(time.RFC3339),
		url.QueryEscape(future.In(time.FixedZone("", 2*3600)).Format(time.RFC3339)),
		future.In(time.FixedZone("", 2*3600)).Format(time.RFC3339), // + left as it is
		future.In(time.FixedZone("", -5*3600)).Format(time.RFC3339),
	} {
		entries, next := getPage[muster.AuditEntry](t, hc, base, base+"/api/v1/audit?since="+since, reader)
		if len(entries) != 0 || next != "" {
			t.Errorf("since=%s: %d entries, want none (the key was made an hour before)", since, len(entries))
		}
	}
}

// pending= and errors= of the download list take a boolean; another value
// is refused naming the parameter, as the OpenAPI document says, not
// ignored (which would list every instruction).
func TestDownloadListFlagsAreBooleans(t *testing.T) {
	base, hc, db := apiServer(t)
	reader, _ := readerKey(t, db)
	doc := openAPIParams(t, "/api/v1/downloadlist")
	for _, name := range []string{"pending", "errors"} {
		if strings.Contains(doc[name], "ignored") {
			t.Errorf("the OpenAPI document says of %s: %q; another value is refused", name, doc[name])
		}
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/downloadlist?"+name+"=yes", nil)
		req.Header.Set("Authorization", "Bearer "+reader)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error muster.Error `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || e.Error.Code != muster.EINVALID || !strings.HasPrefix(e.Error.Message, name+": ") {
			t.Errorf("%s=yes: %d %s %q, want 400 invalid naming %s", name, resp.StatusCode, e.Error.Code, e.Error.Message, name)
		}
	}
}

// openAPIParams returns the descriptions of a GET path's query parameters
// in the OpenAPI document.
func openAPIParams(t *testing.T, path string) map[string]string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct{ Name, Description string } `json:"parameters"`
		} `json:"paths"`
	}
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range doc.Paths[path]["get"].Parameters {
		out[p.Name] = p.Description
	}
	return out
}

// readerKey makes a reader's API key and returns its secret, with the
// actor the tests make their changes as.
func readerKey(t *testing.T, db *catalog.Catalog) (string, muster.Actor) {
	t.Helper()
	const reader = "mat_reader-secret"
	self := muster.Actor{Kind: muster.ActorMaster, Name: "test"}
	if _, err := db.CreateAPIKey(context.Background(), catalog.NewAPIKey{Name: "ro", Role: catalog.RoleReader}, pki.HashSecret(reader), self); err != nil {
		t.Fatal(err)
	}
	return reader, self
}

// enlistIn enlists a target named name in db.
func enlistIn(t *testing.T, db *catalog.Catalog, name string) catalog.TargetIdentity {
	t.Helper()
	ctx, self := context.Background(), muster.Actor{Kind: muster.ActorMaster, Name: "test"}
	if _, err := db.CreateEnlistToken(ctx, "hash-"+name, name, time.Hour, self); err != nil {
		t.Fatal(err)
	}
	id, err := db.Enlist(ctx, catalog.Enlistment{TokenHash: "hash-" + name, Name: name, UID: "uid-" + name},
		func(string) (catalog.IssuedCert, error) {
			return catalog.IssuedCert{Serial: "serial-" + name, NotAfter: time.Now().Add(time.Hour)}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return id
}
