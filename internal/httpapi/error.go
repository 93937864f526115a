package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/musterhq/muster"
	"github.com/musterhq/muster/internal/agentproto"
)

// codes maps each error code to its HTTP status. It is used both ways: by
// servers to answer, and by clients to recover the code from a reply that
// has no body.
var codes = map[string]int{
	muster.ECONFLICT:     http.StatusConflict,
	muster.EFORBIDDEN:    http.StatusForbidden,
	muster.EGONE:         http.StatusGone,
	muster.EINTERNAL:     http.StatusInternalServerError,
	muster.EINVALID:      http.StatusBadRequest,
	muster.ENOTFOUND:     http.StatusNotFound,
	muster.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	muster.ERATELIMIT:    http.StatusTooManyRequests,
	muster.EUNAUTHORIZED: http.StatusUnauthorized,
	muster.EUNAVAILABLE:  http.StatusServiceUnavailable,
	muster.EUNSUPPORTED:  http.StatusUpgradeRequired,
	muster.ETIMEOUT:      http.StatusGatewayTimeout,
	muster.EPRECONDITION: http.StatusPreconditionFailed,
}

// StatusCode returns the HTTP status for an error code.
func StatusCode(code string) int {
	if s, ok := codes[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ErrorCodeFromStatus returns the error code for an HTTP status.
func ErrorCodeFromStatus(status int) string {
	for code, s := range codes {
		if s == status {
			return code
		}
	}
	return muster.EINTERNAL
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// WriteError answers with err as {"error": {"code", "message"}}. Internal
// errors are logged here, at the boundary, and their text is not sent.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	code := muster.ErrorCode(err)
	if code == muster.EINTERNAL {
		slog.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	WriteJSON(w, StatusCode(code), agentproto.ErrorBody{Error: agentproto.ErrorDetail{Code: code, Message: muster.ErrorMessage(err)}})
}

// DecodeError turns an error reply back into a *muster.Error.
func DecodeError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb agentproto.ErrorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
		return &muster.Error{Code: eb.Error.Code, Message: eb.Error.Message}
	}
	msg := http.StatusText(resp.StatusCode)
	if len(body) > 0 && len(body) < 512 {
		msg = fmt.Sprintf("%s: %s", msg, body)
	}
	return &muster.Error{Code: ErrorCodeFromStatus(resp.StatusCode), Message: fmt.Sprintf("%s (HTTP %d)", msg, resp.StatusCode)}
}

// DecodeJSON decodes a request body of at most limit bytes into v, refusing
// unknown fields and trailing data.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return muster.Errorf(muster.ETOOLARGE, "the request body is over its limit of %d bytes", limit)
		}
		return muster.Errorf(muster.EINVALID, "the request body is not valid: %v", err)
	}
	if dec.More() {
		return muster.Errorf(muster.EINVALID, "the request body holds more than one JSON value")
	}
	return nil
}
