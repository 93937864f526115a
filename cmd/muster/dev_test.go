package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The commands muster dev prints run as printed: "muster" only when PATH
// finds this very binary under that name, else the binary's absolute path.
func TestCLIName(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	onPath := t.TempDir()
	if err := os.Symlink(self, filepath.Join(onPath, "muster")); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "muster"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"this binary on PATH", onPath, "muster"},
		{"another muster on PATH", other, self},
		{"none on PATH", t.TempDir(), self},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", tc.path)
			if got := cliName(); got != tc.want {
				t.Errorf("cliName() = %q, want %q", got, tc.want)
			}
		})
	}
}
