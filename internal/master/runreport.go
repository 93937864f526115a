package master

import (
	"strconv"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
	"github.com/musterhq/muster/internal/jsonhttp"
)

// runReports decodes the run reports of one upload; the names its runs
// repeat (job, target, status, trigger, step) are held once.
type runReports struct {
	names jsonhttp.Names
}

// decode decodes a run report of protocol 2 as encoding/json decodes it
// (unknown fields refused), when it is in the plain form a target writes
// (jsonhttp.Lexer); it reports false, having decoded nothing of worth, for
// any other form, left to encoding/json. It is the hot path of an upload:
// a field each, no reflection.
func (d *runReports) decode(data []byte, rep *agentproto.RunReport) bool {
	l := jsonhttp.NewLexer(data)
	var seen fields
	l.Object(func(key []byte) {
		switch string(key) {
		case "revision":
			seen.once(l, 0)
			rep.Revision = l.Int(64)
		case "run":
			seen.once(l, 1)
			d.run(l, &rep.Run)
		case "output":
			seen.once(l, 2)
			if l.Null() {
				rep.Output = nil
				return
			}
			rep.Output = []agentproto.OutputChunk{}
			l.Array(func() {
				var c agentproto.OutputChunk
				var seen fields
				l.Object(func(key []byte) {
					switch string(key) {
					case "attempt":
						seen.once(l, 0)
						c.Attempt = int(l.Int(strconv.IntSize))
					case "offset":
						seen.once(l, 1)
						c.Offset = l.Int(64)
					case "data":
						seen.once(l, 2)
						c.Data = l.String()
					default:
						l.Fail()
					}
				})
				rep.Output = append(rep.Output, c)
			})
		default:
			l.Fail()
		}
	})
	return l.OK()
}

// run decodes the run of a report.
func (d *runReports) run(l *jsonhttp.Lexer, r *agentproto.Run) {
	var seen fields
	l.Object(func(key []byte) {
		switch string(key) {
		case "job":
			seen.once(l, 0)
			r.Job = l.Name(&d.names)
		case "target":
			seen.once(l, 1)
			r.Target = l.Name(&d.names)
		case "run_id":
			seen.once(l, 2)
			r.RunID = l.String()
		case "status":
			seen.once(l, 3)
			r.Status = muster.RunStatus(l.Name(&d.names))
		case "trigger":
			seen.once(l, 4)
			r.Trigger = l.Name(&d.names)
		case "message":
			seen.once(l, 5)
			r.Message = l.String()
		case "started_at":
			seen.once(l, 6)
			r.StartedAt = l.Time()
		case "finished_at":
			seen.once(l, 7)
			if l.Null() {
				r.FinishedAt = nil
				return
			}
			t := l.Time()
			r.FinishedAt = &t
		case "duration_ms":
			seen.once(l, 8)
			r.DurationMS = l.Int(64)
		case "steps":
			seen.once(l, 9)
			if l.Null() {
				r.Steps = nil
				return
			}
			r.Steps = []agentproto.StepAttempt{}
			l.Array(func() {
				r.Steps = append(r.Steps, agentproto.StepAttempt{})
				d.step(l, &r.Steps[len(r.Steps)-1])
			})
		default:
			l.Fail()
		}
	})
}

// step decodes a step attempt of a run.
func (d *runReports) step(l *jsonhttp.Lexer, s *agentproto.StepAttempt) {
	var seen fields
	l.Object(func(key []byte) {
		switch string(key) {
		case "name":
			seen.once(l, 0)
			s.Name = l.Name(&d.names)
		case "attempt":
			seen.once(l, 1)
			s.Attempt = int(l.Int(strconv.IntSize))
		case "status":
			seen.once(l, 2)
			s.Status = muster.AttemptStatus(l.Name(&d.names))
		case "exit_code":
			seen.once(l, 3)
			if l.Null() {
				s.ExitCode = nil
				return
			}
			code := int(l.Int(strconv.IntSize))
			s.ExitCode = &code
		case "message":
			seen.once(l, 4)
			s.Message = l.String()
		case "started_at":
			seen.once(l, 5)
			s.StartedAt = l.Time()
		case "duration_ms":
			seen.once(l, 6)
			s.DurationMS = l.Int(64)
		default:
			l.Fail()
		}
	})
}

// fields are the fields of an object read so far: a field given twice,
// which encoding/json takes in its own ways, is left to it.
type fields uint16

func (f *fields) once(l *jsonhttp.Lexer, i int) {
	if *f&(1<<i) != 0 {
		l.Fail()
	}
	*f |= 1 << i
}
