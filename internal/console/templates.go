package console

import (
	"fmt"
	"html/template"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/schedule"
)

// The pages: each is templates/layout.html with its own file.
var pageNames = []string{"error", "login", "link", "fleet", "delete", "target", "jobs", "job", "run", "events", "alerts", "deliveries", "audit", "tokens", "keys"}

// parse reads the embedded templates.
func (s *Server) parse() error {
	s.pages = map[string]*template.Template{}
	funcs := templateFuncs()
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return err
		}
		s.pages[name] = t
	}
	return nil
}

// pairOf carries two values into a template.
type pairOf struct{ A, B any }

// templateFuncs are the functions the pages call. Built when the console
// parses its pages, not at startup, so that a process without a console
// (a target, the CLI) never builds them.
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		// time writes t as a <time> element in UTC; console.js shows it in the
		// viewer's zone.
		"time": func(t any) template.HTML {
			var at time.Time
			switch v := t.(type) {
			case time.Time:
				at = v
			case *time.Time:
				if v == nil {
					return ""
				}
				at = *v
			}
			if at.IsZero() {
				return ""
			}
			iso := at.UTC().Format(time.RFC3339)
			return template.HTML(`<time datetime="` + iso + `">` + at.UTC().Format("2006-01-02 15:04:05") + ` UTC</time>`)
		},
		// terminal renders a step's output with its terminal colours; see
		// terminalHTML.
		"terminal": terminalHTML,
		// text shows control and bidirectional characters escaped; see
		// plainText.
		"text": plainText,
		// label turns a status word into words: suspected_offline → suspected
		// offline; a deleted target is defecting until it collects its DEFECT.
		"label": func(s any) string {
			word := strings.ReplaceAll(toString(s), "_", " ")
			if word == muster.FlagDeleted {
				return "deleted, defecting"
			}
			return word
		},
		"path":  url.PathEscape,
		"query": url.QueryEscape,
		"pair":  func(a, b any) pairOf { return pairOf{a, b} },
		"has":   func(list []string, s string) bool { return slices.Contains(list, s) },
		"join":  func(list []string, sep string) string { return strings.Join(list, sep) },
		"describe": func(s muster.Schedule) string {
			return schedule.Describe(s)
		},
		"tlocal": targetClock,
		// head is the first n of list; rest counts the others.
		"head": func(n int, list []string) []string { return list[:min(n, len(list))] },
		"rest": func(n int, list []string) int { return max(0, len(list)-n) },
		"took": muster.Took,
		"add":  func(a, b int) int { return a + b },
		// waves numbers a rollout's waves, from 1.
		"waves": func(ro muster.Rollout) []int {
			out := make([]int, ro.Waves)
			for i := range out {
				out[i] = i + 1
			}
			return out
		},
		"deref": func(p *int) int {
			if p == nil {
				return 0
			}
			return *p
		},
	}
}

func toString(v any) string { return fmt.Sprint(v) }

// targetClock writes at as target t's clock read it: in t's zone as that
// zone was at that instant, so that a run before a change of summer time
// shows the hour its target ran it at. A target whose zone the master does
// not know (none reported, or not an IANA name) is shown at the UTC offset
// of its last poll, all it reported.
func targetClock(at time.Time, t muster.Target) string {
	minutes := t.UTCOffsetMinutes
	if loc, err := schedule.LoadZone(t.TimeZone); err == nil {
		_, secs := at.In(loc).Zone()
		minutes = secs / 60
	}
	return at.UTC().Add(time.Duration(minutes)*time.Minute).Format("2006-01-02 15:04:05") + " " + offset(minutes)
}
