package catalog

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/schedule"
)

// MaxPreview bounds how many fires a preview lists per target.
const MaxPreview = 1000

// NextFires computes the next count fires of a job on each of its targets,
// as each target will: on its own schedules (overrides applied), in the
// job's zone or the zone the target reports,
// with the target's jitter. At-start schedules are not listed, nor fires on
// a target where the job is disabled (Disabled says so).
func (c *Catalog) NextFires(ctx context.Context, name string, count int) ([]muster.TargetFires, error) {
	if count < 1 || count > MaxPreview {
		return nil, muster.Errorf(muster.EINVALID, "count: from 1 to %d", MaxPreview)
	}
	job, err := c.FindJob(ctx, name)
	if err != nil {
		return nil, err
	}
	targets, err := c.FindTargets(ctx, TargetFilter{})
	if err != nil {
		return nil, err
	}
	zones, offsets := map[string]string{}, map[string]int{}
	for _, t := range targets {
		zones[t.Name], offsets[t.Name] = t.TimeZone, t.UTCOffsetMinutes
	}
	now := c.opts.Now()
	out := []muster.TargetFires{}
	for _, o := range job.Outcomes { // every target the job runs on, named or through a group
		target := o.Target
		var groups []string
		for _, v := range o.Via {
			if g, ok := strings.CutPrefix(v, "group:"); ok {
				groups = append(groups, g)
			}
		}
		def := job.DefinitionFor(target, groups) // its own schedules, with overrides
		zone := def.TimeZone
		if zone == "" {
			zone = zones[target]
		}
		loc, err := schedule.LoadZone(zone)
		switch {
		case err == nil:
		case zone != "" && def.TimeZone == "":
			// The target reported a zone with no IANA name ("Local", its
			// /etc/localtime a copy): it fires at the offset it reported.
			loc, zone = offsetZone(offsets[target])
		default:
			loc, zone = time.UTC, "UTC"
		}
		tf := muster.TargetFires{Target: target, TimeZone: zone, Fires: []muster.Fire{}, Disabled: !def.Enabled}
		if tf.Disabled {
			// Its schedules do not fire there.
			out = append(out, tf)
			continue
		}
		for _, s := range def.Schedules {
			plan, err := schedule.Compile(s, loc)
			if err != nil || plan.AtStart() {
				continue
			}
			jitter := schedule.TargetJitter(target, job.Name, s.Name, s.Jitter.Std())
			// Each schedule's own next count fires; merged and cut below.
			at := now.Add(-jitter)
			for range count {
				next, ok := plan.Next(at)
				if !ok {
					break
				}
				tf.Fires = append(tf.Fires, muster.Fire{Schedule: s.Name, At: next.Add(jitter).In(loc)})
				at = next
			}
		}
		slices.SortFunc(tf.Fires, func(a, b muster.Fire) int { return a.At.Compare(b.At) })
		tf.Fires = tf.Fires[:min(len(tf.Fires), count)]
		out = append(out, tf)
	}
	return out, nil
}

// offsetZone is a fixed zone at a UTC offset in minutes, named as
// "UTC+05:30" ("UTC" when the offset is 0).
func offsetZone(minutes int) (*time.Location, string) {
	if minutes == 0 {
		return time.UTC, "UTC"
	}
	sign, m := '+', minutes
	if m < 0 {
		sign, m = '-', -m
	}
	name := fmt.Sprintf("UTC%c%02d:%02d", sign, m/60, m%60)
	return time.FixedZone(name, minutes*60), name
}
