package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The life's CPU profile ends where the window's begins; the window's ends
// at the second toggle, and later toggles and the stop change nothing.
func TestCPUProfilesWindow(t *testing.T) {
	dir := t.TempDir()
	p, err := startCPUProfiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	complete := func(name string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) { // a profile is gzipped protobuf
			t.Errorf("%s: %d bytes, not a written profile", name, len(b))
		}
	}
	absent := func(name string) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want none yet", name, err)
		}
	}
	absent(MasterWindowCPUProfile)
	if err := p.toggle(); err != nil {
		t.Fatal(err)
	}
	complete(MasterCPUProfile)
	if err := p.toggle(); err != nil {
		t.Fatal(err)
	}
	complete(MasterWindowCPUProfile)
	info, err := os.Stat(filepath.Join(dir, MasterWindowCPUProfile))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.toggle(); err != nil {
		t.Fatal(err)
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(filepath.Join(dir, MasterWindowCPUProfile))
	if err != nil {
		t.Fatal(err)
	}
	if after.Size() != info.Size() || !after.ModTime().Equal(info.ModTime()) {
		t.Errorf("the window's profile changed after it ended: %d → %d bytes", info.Size(), after.Size())
	}
}
