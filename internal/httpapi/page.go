package httpapi

import (
	"net/http"
	"net/url"
	"regexp"
)

// A list that is read page by page (the audit log, a job's history, the
// events, the alerts' notifications) answers each page with the entries
// as a JSON array, as it always has, and, when entries remain beyond the
// page, a Link header (RFC 8288) to the next page:
//
//	Link: </api/v1/audit?cursor=YXVkaXQgbG9nOjQy&limit=100>; rel="next"
//
// The link is the request's own, its cursor replaced by the next page's:
// the filters and the limit carry over. The last page has no link. A
// cursor is opaque; it names the last entry of the page it follows, so a
// walk gives each entry recorded before it began once, however many are
// recorded while it reads on.

// setNextPage sets the Link header of a page whose next page starts at
// cursor next; nothing when next is empty (the last page).
func setNextPage(w http.ResponseWriter, r *http.Request, next string) {
	if next == "" {
		return
	}
	q := r.URL.Query()
	q.Set("cursor", next)
	u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
	w.Header().Set("Link", "<"+u.String()+`>; rel="next"`)
}

var nextLinkRE = regexp.MustCompile(`<([^>]*)>\s*;\s*rel="?next"?`)

// nextCursor returns the cursor of the next page a reply's header links
// to, or "" when it links to none.
func nextCursor(h http.Header) string {
	for _, v := range h.Values("Link") {
		m := nextLinkRE.FindStringSubmatch(v)
		if m == nil {
			continue
		}
		if u, err := url.Parse(m[1]); err == nil {
			return u.Query().Get("cursor")
		}
	}
	return ""
}
