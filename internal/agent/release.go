package agent

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// releaseAfter is how long after it starts the target releases the pages
// of its binary that start-up mapped.
const releaseAfter = 10 * time.Second

// releaseStartupCode unmaps from the process the pages of its own binary's
// code and read-only data (MADV_DONTNEED), and returns how many bytes of
// mappings it released.
//
// Start-up runs code the target never runs again: command-line handling,
// the store's migrations, reading certificates, the first TLS handshake.
// Each page of it that runs stays mapped for the life of the process, and
// the kernel maps the pages around it too (fault-around, 64 KiB), so the
// process's RSS counts about four times the binary that an idle target
// uses. Released, the pages stay in the page cache, shared with every
// process of the binary; a page the target runs again comes back on a
// minor fault, read from the cache, not the disk. So nothing is freed at
// once; but the kernel counts those pages to the target no more, and,
// mapped by no process, they are among the first it reclaims when the
// server runs short of memory, where code mapped by a process is kept
// longest. Nothing written is
// dropped: only the binary's read-only mappings are released, never its
// data, which the process writes, and of those only the ones that hold no
// page of the process's own. A read-only mapping can: the dynamic linker
// writes the relocated data of a PIE binary (RELRO) and then makes it
// read-only, and a debugger writes its breakpoints into code; released,
// those pages would read as the file has them again.
func releaseStartupCode() (int, error) {
	exe, err := os.Stat("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	spans, err := readOnlyMappingsOf(f, exe)
	if err != nil {
		return 0, err
	}
	released := 0
	for _, s := range spans {
		// By address: the range is the binary's, not memory Go allocated.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, s.start, s.end-s.start, unix.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("madvise %#x-%#x: %w", s.start, s.end, errno)
		}
		released += int(s.end - s.start)
	}
	return released, nil
}

// span is a range of the address space, [start, end).
type span struct{ start, end uintptr }

// readOnlyMappingsOf reads /proc/self/smaps from r and returns the mappings
// of file that are private and not writable, and hold only pages of the
// file, none the process wrote (Anonymous: 0 kB): its code and read-only
// data as the file has them. A mapping whose count of such pages is not
// given is not chosen. The file is known by its device and inode, as the
// path of a binary that was replaced on disk reads "… (deleted)".
func readOnlyMappingsOf(r io.Reader, file os.FileInfo) ([]span, error) {
	dev, ino, err := deviceAndInode(file)
	if err != nil {
		return nil, err
	}
	var out []span
	var cur *span      // the mapping being read, if it is a candidate
	unwritten := false // cur's Anonymous is 0 kB
	done := func() {
		if cur != nil && unwritten {
			out = append(out, *cur)
		}
		cur, unwritten = nil, false
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		if strings.HasSuffix(fs[0], ":") {
			// A field of the mapping above: "Anonymous: 0 kB".
			if cur != nil && fs[0] == "Anonymous:" {
				unwritten = len(fs) == 3 && fs[1] == "0" && fs[2] == "kB"
			}
			continue
		}
		done()
		// address perms offset dev inode path
		if len(fs) < 5 || fs[3] != dev || fs[4] != ino || len(fs[1]) != 4 || fs[1][1] != '-' || fs[1][3] != 'p' {
			continue
		}
		lo, hi, ok := strings.Cut(fs[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("/proc/self/smaps: cannot read %q", sc.Text())
		}
		cur = &span{uintptr(start), uintptr(end)}
	}
	done()
	return out, sc.Err()
}

// deviceAndInode returns file's device and inode as /proc/self/maps
// writes them.
func deviceAndInode(file os.FileInfo) (dev, ino string, _ error) {
	st, ok := file.Sys().(*syscall.Stat_t)
	if !ok {
		return "", "", fmt.Errorf("no device and inode for %s", file.Name())
	}
	return fmt.Sprintf("%02x:%02x", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev))), strconv.FormatUint(uint64(st.Ino), 10), nil
}
