package schedule

import (
	"errors"
	"time"
)

// errNotZone is LoadZone's error for a name time.LoadLocation would take
// but which names no zone in the time zone database.
var errNotZone = errors.New("schedule: not an IANA time zone name")

// LoadZone returns the zone of an IANA name such as Europe/Paris. It is
// time.LoadLocation without its two special names: "" (which it reads as
// UTC) and "Local" (the zone of whatever process reads it), so that a job's
// zone means the same on the master, which previews its fires, and on each
// target, which fires them. Callers name the field in their own error.
func LoadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, errNotZone
	}
	return time.LoadLocation(name)
}
