package jobfile

import "testing"

// What the master refuses in a file is placed at the field it names, or
// at the item of a list it quotes; a message of another form, or about a
// job the file does not hold, is not placed.
func TestLocate(t *testing.T) {
	src := []byte(`jobs:
  - name: backup
    targets: [web1, DB9]
    groups:
      - eu
    steps:
      - name: dump
        shell: echo
    overrides:
      - target: web9
  - name: "say \"hi\""
    targets: &t [web1]
  - name: again
    targets: *t
`)
	for _, c := range []struct {
		msg       string
		line, col int
		ok        bool
	}{
		{`job "backup": targets: no enlisted target named "db9"; ...`, 3, 21, true},
		{`job "backup": targets: target "web1" is outside the key's scope`, 3, 15, true},
		{`job "backup": groups: no group named "us"`, 4, 5, true},
		{`job "backup": groups: no group named "eu" in scope`, 5, 9, true},
		{`job "backup": overrides[0].target: no enlisted target named "web9"`, 10, 9, true},
		{`job "say \"hi\"": targets: no enlisted target named "web1"`, 12, 18, true},
		{`job "again": targets: no enlisted target named "web1"`, 12, 18, true},
		{`job "nosuch": targets: no enlisted target named "web1"`, 0, 0, false},
		{`internal error`, 0, 0, false},
		{`job "backup" is out of scope`, 0, 0, false},
	} {
		line, col, ok := Locate(src, c.msg)
		if line != c.line || col != c.col || ok != c.ok {
			t.Errorf("%s: %d:%d %v, want %d:%d %v", c.msg, line, col, ok, c.line, c.col, c.ok)
		}
	}
	if _, _, ok := Locate([]byte("jobs: [\n"), `job "a": targets: x`); ok {
		t.Error("a file that does not parse was placed")
	}
}
