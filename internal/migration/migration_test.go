package migration

import (
	"testing"
	"testing/fstest"
)

// Migrations are listed in the order of their numbers, and a name that
// does not start with one is refused, naming it.
func TestList(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_b.sql": {}, "m/0010_c.sql": {}, "m/0001_a.sql": {}, "m/README": {},
	}
	files, err := List(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, f := range files {
		got = append(got, f.Version)
	}
	if len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 10 || files[2].Name != "0010_c.sql" || files[2].Path != "m/0010_c.sql" {
		t.Errorf("listed %+v", files)
	}
	if n := Latest(fsys, "m"); n != 10 {
		t.Errorf("Latest = %d, want 10", n)
	}
	fsys["m/x_bad.sql"] = &fstest.MapFile{}
	if _, err := List(fsys, "m"); err == nil || err.Error() != "migration m/x_bad.sql: the name must start with a number" {
		t.Errorf("a name without a number: %v", err)
	}
}
