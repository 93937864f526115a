package sqlstore

import (
	"strconv"
	"unicode/utf8"

	"github.com/musterhq/muster"
)

// A run's step attempts are stored as the JSON json.Marshal writes of them,
// byte for byte (runs.steps; prior_started compares it with '[]' and
// 'null'). Every uploaded run is encoded, and json.Marshal's reflection was
// a twentieth of the upload's cost: AppendSteps writes the same bytes
// directly.

// AppendSteps appends steps to b as json.Marshal encodes them. Like
// json.Marshal, it fails on a time whose year is outside 0 to 9999.
func AppendSteps(b []byte, steps []muster.StepAttempt) ([]byte, error) {
	if steps == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '[')
	for i, s := range steps {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, s.Name)
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(s.Attempt), 10)
		b = append(b, `,"status":`...)
		b = appendString(b, string(s.Status))
		b = append(b, `,"exit_code":`...)
		if s.ExitCode == nil {
			b = append(b, "null"...)
		} else {
			b = strconv.AppendInt(b, int64(*s.ExitCode), 10)
		}
		b = append(b, `,"output":`...)
		b = appendString(b, s.Output)
		if s.Message != "" {
			b = append(b, `,"message":`...)
			b = appendString(b, s.Message)
		}
		b = append(b, `,"started_at":"`...)
		var err error
		if b, err = s.StartedAt.AppendText(b); err != nil {
			return nil, err
		}
		b = append(b, `","duration_ms":`...)
		b = strconv.AppendInt(b, s.DurationMS, 10)
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

// appendString appends s as a JSON string, escaped as json.Marshal escapes
// it: HTML's <, > and &, U+2028 and U+2029 as \u escapes, and each byte of
// invalid UTF-8 as U+FFFD.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
