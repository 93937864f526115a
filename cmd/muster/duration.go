package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/musterhq/muster"
)

// days is a duration flag that also takes days, as long retention periods
// and key lifetimes are written: "90d", "1d12h", besides "36h" or "15m".
type days time.Duration

func (d *days) String() string {
	v := time.Duration(*d)
	if v == 0 {
		return "" // no default to show
	}
	if v%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(v/(24*time.Hour)), 10) + "d"
	}
	return muster.Duration(v).Short()
}

// duration is a Go duration flag whose default the help shows as a person
// writes it: "(default 10m)", not "(default 10m0s)".
type duration time.Duration

func (d *duration) String() string { return muster.Duration(*d).Short() }

func (d *duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 30m or 1h", s)
	}
	*d = duration(v)
	return nil
}

func (d *duration) Type() string { return "duration" }

func (d *days) Set(s string) error {
	v, err := parseDays(s)
	if err != nil {
		return err
	}
	*d = days(v)
	return nil
}

func (d *days) Type() string { return "duration" }

// parseDays reads a Go duration, optionally preceded by a whole number of
// days ("90d", "1d12h").
func parseDays(in string) (time.Duration, error) {
	s := strings.TrimSpace(in)
	var total time.Duration
	if n, rest, ok := strings.Cut(s, "d"); ok {
		count, err := strconv.Atoi(n)
		if err != nil || count < 0 || count > 100*365 {
			return 0, fmt.Errorf("%q is not a duration such as 90d, 36h or 15m", in)
		}
		total, s = time.Duration(count)*24*time.Hour, rest
		if s == "" {
			return total, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a duration such as 90d, 36h or 15m", in)
	}
	if v > math.MaxInt64-total {
		return 0, fmt.Errorf("%q is longer than a duration can be (about 290 years)", in)
	}
	return total + v, nil
}

// boundedInt is an int flag that takes only a whole number from lo to hi:
// the master would refuse what is beyond, naming its own parameter, and
// the client leaves out a limit below 1, which would get the default.
type boundedInt struct {
	p      *int
	lo, hi int
}

// checkTimeout checks the --timeout of a command that waits: one of 0 or
// less would time out at once.
func checkTimeout(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("--timeout: a duration above 0, such as 30m, not %s", muster.Duration(d).Short())
	}
	return nil
}

// boundedIntVar defines a boundedInt flag.
func boundedIntVar(f *pflag.FlagSet, p *int, name string, def, lo, hi int, usage string) {
	*p = def
	f.Var(&boundedInt{p: p, lo: lo, hi: hi}, name, usage)
}

func (b *boundedInt) String() string { return strconv.Itoa(*b.p) }
func (b *boundedInt) Type() string   { return "int" }

func (b *boundedInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < b.lo || n > b.hi {
		if b.hi == math.MaxInt {
			return fmt.Errorf("a whole number of %d or more", b.lo)
		}
		return fmt.Errorf("a whole number from %d to %d", b.lo, b.hi)
	}
	*b.p = n
	return nil
}
