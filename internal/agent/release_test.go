package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The pages of the binary's code and read-only data that were mapped are
// released, and run again as before: the process's RSS of mapped files
// falls, and the code runs.
func TestReleaseStartupCode(t *testing.T) {
	before := rssFileKiB(t)
	n, err := releaseStartupCode()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFileKiB(t)
	if n <= 0 || after >= before {
		t.Errorf("released %d bytes of mappings; RSS of mapped files %d KiB before, %d KiB after: want it lower", n, before, after)
	}
	t.Logf("released %d KiB of mappings: RSS of mapped files %d KiB → %d KiB", n>>10, before, after)
	// Code and read-only data come back when used.
	if got := strconv.Itoa(12345) + strings.Repeat("x", 2); got != "12345xx" {
		t.Fatalf("got %q after the release", got)
	}
}

// Only the private, read-only mappings of the binary itself are chosen: not
// its data (written), nor another file's mappings, nor a shared mapping;
// the binary is known by device and inode, whatever its path says.
func TestReadOnlyMappingsOf(t *testing.T) {
	exe, err := os.Stat("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	maps := mapsLineFor(t, exe, "00400000-00f66000 r-xp 00000000", "/usr/bin/muster") +
		mapsLineFor(t, exe, "00f66000-01b84000 r--p 00b66000", "/usr/bin/muster (deleted)") +
		mapsLineFor(t, exe, "01b84000-01c74000 rw-p 01784000", "/usr/bin/muster") +
		mapsLineFor(t, exe, "01c74000-01c75000 r--s 01784000", "/usr/bin/muster") +
		"01c74000-03cc7000 rw-p 00000000 00:00 0\n" +
		strings.TrimSuffix(mapsLineFor(t, exe, "03cc7000-03cc8000 r--p 01784000", "/usr/bin/muster"), "Anonymous:             0 kB\n") +
		strings.Replace(mapsLineFor(t, exe, "03cc8000-03cc9000 r--p 01785000", "/usr/bin/muster"), " 0 kB", " 4 kB", 1) +
		"7f4b26a43000-7f4b26a4b000 r--p 00000000 fe:00 1 /lib/other.so\n"
	got, err := readOnlyMappingsOf(strings.NewReader(maps), exe)
	if err != nil {
		t.Fatal(err)
	}
	want := []span{{0x400000, 0xf66000}, {0xf66000, 0x1b84000}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %#v, want %#v", got, want)
	}
	if _, err := readOnlyMappingsOf(strings.NewReader(mapsLineFor(t, exe, "zz-00f66000 r-xp 00000000", "/usr/bin/muster")), exe); err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("a line that does not parse: got %v", err)
	}
}

// mapsLineFor writes the lines of /proc/self/smaps for a mapping of file
// none of whose pages the process wrote.
func mapsLineFor(t *testing.T, file os.FileInfo, head, path string) string {
	t.Helper()
	dev, ino, err := deviceAndInode(file)
	if err != nil {
		t.Fatal(err)
	}
	return head + " " + dev + " " + ino + " " + path + "\nAnonymous:             0 kB\n"
}

// rssFileKiB reads the process's RSS of mapped files.
func rssFileKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kib, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return kib
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// A read-only private mapping whose pages the process wrote before it made
// them read-only, as the dynamic linker does to the relocated data of a
// PIE binary (RELRO) or a debugger to code it sets a breakpoint in, holds
// the process's copies of those pages: they are not chosen, and what was
// written stays. A mapping of the same file never written is chosen.
func TestReadOnlyMappingsOfKeepsWrittenPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "image")
	page := os.Getpagesize()
	if err := os.WriteFile(path, make([]byte, 2*page), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	written, err := unix.Mmap(int(f.Fd()), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(written)
	written[0] = 42
	if err := unix.Mprotect(written, unix.PROT_READ); err != nil {
		t.Fatal(err)
	}
	clean, err := unix.Mmap(int(f.Fd()), int64(page), page, unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(clean)
	_ = clean[0] // mapped in from the page cache
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	smaps, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer smaps.Close()
	spans, err := readOnlyMappingsOf(smaps, fi)
	if err != nil {
		t.Fatal(err)
	}
	writtenAt := uintptr(unsafe.Pointer(&written[0]))
	cleanAt := uintptr(unsafe.Pointer(&clean[0]))
	var chosenClean bool
	for _, s := range spans {
		if s.start <= writtenAt && writtenAt < s.end {
			t.Errorf("the mapping written before it was made read-only was chosen: %#x-%#x", s.start, s.end)
		}
		chosenClean = chosenClean || s.start <= cleanAt && cleanAt < s.end
	}
	if !chosenClean {
		t.Errorf("the mapping never written was not chosen: %#v", spans)
	}
	for _, s := range spans {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, s.start, s.end-s.start, unix.MADV_DONTNEED); errno != 0 {
			t.Fatal(errno)
		}
	}
	if written[0] != 42 {
		t.Errorf("what the process wrote was dropped: got %d, want 42", written[0])
	}
}
