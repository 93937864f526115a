package muster

import (
	"errors"
	"fmt"
)

// Error codes. The set is closed: every error that crosses an API boundary
// carries one of these, and the HTTP layer maps each to one status code.
const (
	ECONFLICT     = "conflict"     // the change collides with the current state
	EFORBIDDEN    = "forbidden"    // authenticated, but not allowed
	EGONE         = "gone"         // the object existed and was removed
	EINTERNAL     = "internal"     // a bug or an unexpected failure
	EINVALID      = "invalid"      // the request breaks a rule; the message names it
	ENOTFOUND     = "not_found"    // no such object
	ETOOLARGE     = "too_large"    // the request body is over its limit
	ERATELIMIT    = "rate_limited" // too many attempts; retry later
	EUNAUTHORIZED = "unauthorized" // no valid credentials
	EUNAVAILABLE  = "unavailable"  // shutting down, or a dependency is down
	EUNSUPPORTED  = "unsupported"  // a protocol version this side does not speak
	ETIMEOUT      = "timeout"      // the operation did not finish in time
	EPRECONDITION = "precondition" // the object is not in a state that allows this
	ECANCELED     = "canceled"     // the caller gave up (its request or context was canceled)
)

// Error is the error type of the domain. Its Message is written for a person
// and names the field and the rule that failed. Err, when set, is the cause:
// kept for errors.Is and errors.As and for the log, never sent to a client.
type Error struct {
	Code    string
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Wrap returns an *Error with the given code and message whose cause is err.
func Wrap(code string, err error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, or a
// generic message for other errors so internals do not leak to clients.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
