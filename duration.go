package muster

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written in job definitions as a Go duration
// string ("90s", "15m", "1h30m").
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// Short renders d the way people write it, without trailing zero units:
// "15m" rather than "15m0s", "26h" rather than "26h0m0s".
func (d Duration) Short() string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Rounded writes d to the precision a person reads it at, without the
// zero units Go prints: 6ms, 41s, 3m41s, 5h3m, 12d.
func (d Duration) Rounded() string {
	t := time.Duration(d)
	switch {
	case t < time.Second:
		return t.Round(time.Millisecond).String()
	case t < time.Hour:
		return Duration(t.Round(time.Second)).Short()
	case t < 48*time.Hour:
		return Duration(t.Round(time.Minute)).Short()
	}
	return fmt.Sprintf("%dd", int(t.Hours()/24))
}

// Took writes how long a run or a step took, from its duration in whole
// milliseconds as stored: one that ended within its first millisecond took
// "<1ms", not "0s"; one still running has taken "-" so far.
func Took(ms int64, finished bool) string {
	switch {
	case !finished:
		return "-"
	case ms == 0:
		return "<1ms"
	}
	return Duration(time.Duration(ms) * time.Millisecond).Rounded()
}

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string; null leaves d as it is. What is
// not a duration is refused with a *json.UnmarshalTypeError, which the
// decoder completes with the field's name.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: jsonKind(b), Type: reflect.TypeFor[Duration]()}
	}
	if err := d.parse(s); err != nil {
		return &json.UnmarshalTypeError{Value: strconv.Quote(s), Type: reflect.TypeFor[Duration]()}
	}
	return nil
}

// jsonKind names the kind of a JSON value as encoding/json's errors do.
func jsonKind(b []byte) string {
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case '"':
		return "string"
	}
	return "number " + string(b)
}

// MarshalYAML writes d as a duration string in its short form, as a person
// writes it in a job file. (JSON keeps String's form: the master compares
// stored definitions by their JSON.)
func (d Duration) MarshalYAML() (any, error) { return d.Short(), nil }

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a duration is a string such as \"90s\" or \"15m\"", n.Line)
	}
	if err := d.parse(n.Value); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

func (d *Duration) parse(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: a duration is a number with a unit, such as \"90s\" or \"15m\"", s)
	}
	if v < 0 {
		return fmt.Errorf("invalid duration %q: must not be negative", s)
	}
	*d = Duration(v)
	return nil
}
