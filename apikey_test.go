package muster_test

import (
	"slices"
	"testing"
	"time"

	"github.com/musterhq/muster"
)

func TestParseScopes(t *testing.T) {
	s, err := muster.ParseScopes("--scope", []string{"job:web-*", "group:web", "job:nightly", "group:web"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Strings(), []string{"group:web", "job:nightly", "job:web-*"}; !slices.Equal(got, want) {
		t.Errorf("Strings() = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		job  string
		want bool
	}{
		{"web-backup", true}, {"web-", true}, {"nightly", true}, {"nightly-2", false}, {"web", false}, {"db-backup", false},
	} {
		if got := s.HasJob(tc.job); got != tc.want {
			t.Errorf("HasJob(%q) = %v, want %v", tc.job, got, tc.want)
		}
	}
	if !s.HasGroup("web") || s.HasGroup("db") {
		t.Errorf("HasGroup: web %v, db %v", s.HasGroup("web"), s.HasGroup("db"))
	}
	var none muster.Scope
	if none.Limited() || !none.HasJob("anything") || !none.HasGroup("any") {
		t.Error("the zero scope limits something")
	}
	for _, bad := range [][]string{{"job:*"}, {"target:web1"}, {"job:"}, {"group:a,b"}, {"job:-x*"}, {"job:a b"}, {"web"}, make([]string, muster.MaxScopes+1)} {
		if _, err := muster.ParseScopes("--scope", bad); muster.ErrorCode(err) != muster.EINVALID {
			t.Errorf("ParseScopes(%q) = %v, want EINVALID", bad, err)
		}
	}
}

func TestKeyState(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	later, earlier := now.Add(time.Hour), now.Add(-time.Hour)
	for _, tc := range []struct {
		expires, revoked *time.Time
		want             string
	}{
		{nil, nil, muster.KeyActive},
		{&later, nil, muster.KeyActive},
		{&now, nil, muster.KeyExpired},
		{&earlier, nil, muster.KeyExpired},
		{&later, &earlier, muster.KeyRevoked},
		{&earlier, &earlier, muster.KeyRevoked},
	} {
		if got := muster.KeyState(now, tc.expires, tc.revoked); got != tc.want {
			t.Errorf("KeyState(expires %v, revoked %v) = %s, want %s", tc.expires, tc.revoked, got, tc.want)
		}
	}
}
