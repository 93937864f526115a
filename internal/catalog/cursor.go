package catalog

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/musterhq/muster"
)

// A cursor marks where a page of a newest-first list ended: the list's
// name and the sort key of the page's last entry (its id, or its time and
// id). The next page holds the entries that sort after that key, so it
// stays correct while new entries are written: a walk gives each entry
// there was when it began once, and new ones move none from one page to
// another (on PostgreSQL an id is taken at insert, so an entry that
// commits during a walk with an id below its cursor is in a later page of
// it; one above, in none: either way, once at most). To a client a cursor
// is an opaque string; it is valid for as long as the list's entries
// last, whatever filters the next request gives.
//
// Text: base64url (unpadded) of "list:key:key…", the keys decimal. A time
// may be negative (a run a target reports by a clock set back before
// 1970); an id may not.

// encodeCursor returns the cursor after the entry with key in list.
func encodeCursor(list string, key ...int64) string {
	b := []byte(list)
	for _, k := range key {
		b = append(b, ':')
		b = strconv.AppendInt(b, k, 10)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads a cursor of list with n keys, the first times of them
// times (which may be negative); "" is the first page (nil keys).
func decodeCursor(list, s string, n, times int) ([]int64, error) {
	if s == "" {
		return nil, nil
	}
	bad := muster.Errorf(muster.EINVALID, "cursor: %q is not a cursor of the %s; give the cursor a page of it named as its next, or none for the first page", clip(s), list)
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	parts := strings.Split(string(raw), ":")
	if len(parts) != n+1 || parts[0] != list {
		return nil, bad
	}
	key := make([]int64, n)
	for i, p := range parts[1:] {
		if key[i], err = strconv.ParseInt(p, 10, 64); err != nil || key[i] < 0 && i >= times {
			return nil, bad
		}
	}
	return key, nil
}

// clip shortens what a client sent to quote it in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// pageOf trims rows, read with one more than limit, to limit, and returns
// the cursor of list after the last row kept: empty when no row was left
// out.
func pageOf[T any](rows []T, limit int, list string, key func(T) []int64) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, encodeCursor(list, key(rows[limit-1])...)
}
