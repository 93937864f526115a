package muster

import (
	"regexp"
	"slices"
	"strings"
	"time"
)

// API key states, derived when a key is read: a key is expired from its
// expiry on, and revoked once an admin revoked it (revoked wins).
const (
	KeyActive  = "active"
	KeyExpired = "expired"
	KeyRevoked = "revoked"
)

// APIKey is an operator's credential as the master shows it: never the
// secret, which is shown once when the key is made and stored hashed.
type APIKey struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// Scopes limit the key to some jobs and to the targets of some groups
	// ("job:NAME", "job:PREFIX*", "group:NAME"); none means every job and
	// target.
	Scopes     []string   `json:"scopes"`
	State      string     `json:"state"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	RevokedBy  string     `json:"revoked_by"`
}

// KeyState derives a key's state at now.
func KeyState(now time.Time, expiresAt, revokedAt *time.Time) string {
	switch {
	case revokedAt != nil:
		return KeyRevoked
	case expiresAt != nil && !now.Before(*expiresAt):
		return KeyExpired
	}
	return KeyActive
}

// jobPrefixRE is what may come before the '*' of a job scope: the start of
// a job name.
var jobPrefixRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// MaxScopes bounds how many scopes one key has.
const MaxScopes = 100

// Scope limits what a key sees and acts on: the jobs it names, and the
// targets in the groups it names. A job entry ending in '*' names every
// job whose name starts with what comes before it. The zero Scope limits
// nothing.
type Scope struct {
	Jobs   []string
	Groups []string
}

// ParseScopes reads scopes written "job:NAME", "job:PREFIX*" or
// "group:NAME". field names the input in errors, e.g. "--scope".
func ParseScopes(field string, items []string) (Scope, error) {
	var s Scope
	if len(items) > MaxScopes {
		return s, Errorf(EINVALID, "%s: at most %d scopes on one key", field, MaxScopes)
	}
	for _, item := range items {
		kind, name, _ := strings.Cut(strings.TrimSpace(item), ":")
		switch kind {
		case "job":
			if name == "*" {
				return Scope{}, Errorf(EINVALID, "%s: %q would name every job; a key without scopes already has them all", field, item)
			}
			if prefix, ok := strings.CutSuffix(name, "*"); ok {
				if len(prefix) > MaxNameLen || !jobPrefixRE.MatchString(prefix) {
					return Scope{}, Errorf(EINVALID, "%s: %q: a job prefix holds only letters, digits, '.', '-' and '_', and starts with a letter or digit", field, item)
				}
			} else if msg := validObjectName(name); msg != "" {
				return Scope{}, Errorf(EINVALID, "%s: %q: %s", field, item, msg)
			}
			s.Jobs = append(s.Jobs, name)
		case "group":
			if msg := validObjectName(name); msg != "" {
				return Scope{}, Errorf(EINVALID, "%s: %q: %s", field, item, msg)
			}
			s.Groups = append(s.Groups, name)
		default:
			return Scope{}, Errorf(EINVALID, "%s: %q is not a scope; write job:NAME, job:PREFIX* or group:NAME", field, item)
		}
	}
	slices.Sort(s.Jobs)
	slices.Sort(s.Groups)
	s.Jobs, s.Groups = slices.Compact(s.Jobs), slices.Compact(s.Groups)
	return s, nil
}

// Limited reports whether the scope limits anything.
func (s Scope) Limited() bool { return len(s.Jobs) > 0 || len(s.Groups) > 0 }

// HasJob reports whether the scope covers the job: every job when it is not
// limited.
func (s Scope) HasJob(name string) bool {
	if !s.Limited() {
		return true
	}
	for _, j := range s.Jobs {
		if prefix, ok := strings.CutSuffix(j, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if j == name {
			return true
		}
	}
	return false
}

// HasGroup reports whether the scope names the group: every group when it
// is not limited.
func (s Scope) HasGroup(name string) bool {
	return !s.Limited() || slices.Contains(s.Groups, name)
}

// Strings returns the scope as ParseScopes reads it: groups, then jobs,
// each sorted.
func (s Scope) Strings() []string {
	out := make([]string, 0, len(s.Groups)+len(s.Jobs))
	for _, g := range s.Groups {
		out = append(out, "group:"+g)
	}
	for _, j := range s.Jobs {
		out = append(out, "job:"+j)
	}
	return out
}

// String lists the scope for a person: "group:web, job:web-*".
func (s Scope) String() string { return strings.Join(s.Strings(), ", ") }

// OutOfScope refuses the API key named key, with scope s, what it asked
// for: what names it, e.g. `job "db-backup"`.
func OutOfScope(key string, s Scope, what string) error {
	return Errorf(EFORBIDDEN, "%s is outside the scope of API key %q (%s)", what, key, s)
}
