package agent

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// localZone finds the IANA name of the system's time zone: $TZ, then
// /etc/timezone, then the /etc/localtime link. Go's time.Local does not
// carry the name, and targets report it at every poll.
func localZone() (*time.Location, string) {
	candidates := []string{strings.TrimPrefix(os.Getenv("TZ"), ":")}
	if b, err := os.ReadFile("/etc/timezone"); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(b)))
	}
	if link, err := os.Readlink("/etc/localtime"); err == nil {
		if i := strings.Index(link, "zoneinfo/"); i >= 0 {
			candidates = append(candidates, link[i+len("zoneinfo/"):])
		}
	}
	for _, name := range candidates {
		if name == "" || filepath.IsAbs(name) {
			continue
		}
		if loc, err := time.LoadLocation(name); err == nil {
			return loc, name
		}
	}
	// A copied (not linked) /etc/localtime carries no name.
	if _, off := time.Now().Zone(); off != 0 {
		return time.Local, "Local"
	}
	return time.UTC, "UTC"
}
