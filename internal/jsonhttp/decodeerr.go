package jsonhttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/musterhq/muster"
)

// DecodeFailure returns what to answer for err, which decoding a request
// body (or a part of one) with encoding/json returned: an invalid error
// whose message names the field, when the decoder knows it, and the rule
// the value broke, in the API's words rather than Go's. An error that is
// already a *muster.Error is returned as it is, and nil as nil.
func DecodeFailure(err error) error {
	if err == nil {
		return nil
	}
	var me *muster.Error
	if errors.As(err, &me) {
		return err
	}
	return muster.Errorf(muster.EINVALID, "%s", decodeMessage(err))
}

func decodeMessage(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "the request body is empty; it must be a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the request body ends before its JSON value does"
	case errors.As(err, &syntax):
		return fmt.Sprintf("the request body is not valid JSON: %s (at byte %d)", strings.TrimPrefix(syntax.Error(), "json: "), syntax.Offset)
	case errors.As(err, &typ):
		want := wantOf(typ.Type)
		if r, ok := intRange(typ.Type, typ.Value); ok && want == "a whole number" {
			want += " " + r // a whole number, but not one the field holds
		}
		if typ.Field == "" {
			return fmt.Sprintf("the request body must be %s, not %s", want, valueOf(typ.Value))
		}
		return fmt.Sprintf("%s: %s, not %s", typ.Field, want, valueOf(typ.Value))
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if field, ok := strings.CutPrefix(msg, "unknown field "); ok {
		return fmt.Sprintf("%s: no such field", strings.Trim(field, `"`))
	}
	return "the request body is not valid: " + msg
}

// durationType is muster.Duration, which a body writes as a string.
var durationType = reflect.TypeFor[muster.Duration]()

// wantOf says what a value of Go type t is written as in JSON.
func wantOf(t reflect.Type) string {
	if t == durationType {
		return `a duration of 0 or more, such as "90s" or "15m"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return wantOf(t.Elem())
	}
	return "a " + t.String()
}

// intRange says what whole numbers a field of Go type t holds, when t is
// an integer type and value (an UnmarshalTypeError's) is a whole number.
func intRange(t reflect.Type, value string) (string, bool) {
	n, ok := strings.CutPrefix(value, "number ")
	if !ok || strings.TrimLeft(strings.TrimPrefix(n, "-"), "0123456789") != "" {
		return "", false
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := t.Bits()
		return fmt.Sprintf("from %d to %d", int64(-1)<<(bits-1), int64(uint64(1)<<(bits-1)-1)), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("from 0 to %d", uint64(1)<<(t.Bits()-1)*2-1), true
	}
	return "", false
}

// valueOf says what encoding/json's description of a value (an
// UnmarshalTypeError's Value: "string", "number 1.5", "array") was.
func valueOf(v string) string {
	switch v {
	case "string", "number", "object", "array":
		return article(v) + " " + v
	case "bool":
		return "a boolean"
	}
	if n, ok := strings.CutPrefix(v, "number "); ok {
		return n
	}
	return v
}

func article(w string) string {
	if strings.ContainsRune("aeiou", rune(w[0])) {
		return "an"
	}
	return "a"
}
