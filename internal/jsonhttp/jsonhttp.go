// Package jsonhttp is JSON over HTTP as both of muster's APIs speak it: the
// operator API (/api/v1/) and the agent protocol (/agent/v1/). It holds the
// one table of error codes and HTTP statuses, used both ways, the error body,
// and the request and reply helpers of servers and clients.
package jsonhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/musterhq/muster"
)

// ErrorBody is the body of every error reply, on both APIs.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is a code from the muster error set and a message for a person.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

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
	muster.ECANCELED:     StatusClientClosedRequest,
}

// StatusClientClosedRequest answers a request whose client went away before
// the answer was ready (nginx's 499); nobody reads it, but logs and metrics
// tell it from a failure.
const StatusClientClosedRequest = 499

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
// errors are logged to log here, at the boundary, and their text is not
// sent; a request its client canceled is logged at debug level only.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		err = muster.Wrap(muster.ECANCELED, err, "the request was canceled")
	}
	code := muster.ErrorCode(err)
	switch code {
	case muster.EINTERNAL:
		log.Error("request failed", muster.LogMethod, r.Method, muster.LogPath, r.URL.Path, muster.LogErr, err)
	case muster.ECANCELED:
		log.Debug("request canceled by its client", muster.LogMethod, r.Method, muster.LogPath, r.URL.Path)
	}
	WriteJSON(w, StatusCode(code), ErrorBody{Error: ErrorDetail{Code: code, Message: muster.ErrorMessage(err)}})
}

// DecodeError turns an error reply back into a *muster.Error; a reply that
// says when to try again (Retry-After) into a *RetryLater holding it.
func DecodeError(resp *http.Response) error {
	err := decodeError(resp)
	if after, ok := retryAfter(resp.Header); ok {
		return &RetryLater{Err: err, After: after}
	}
	return err
}

func decodeError(resp *http.Response) *muster.Error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb ErrorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
		return &muster.Error{Code: eb.Error.Code, Message: eb.Error.Message}
	}
	// Not muster's reply: another server answered (a proxy, a wrong
	// address or path). Say which URL answered and what, on one line.
	msg := fmt.Sprintf("%d %s, not as muster does", resp.StatusCode, http.StatusText(resp.StatusCode))
	if text := strings.Join(strings.Fields(string(body)), " "); text != "" && len(body) < 512 {
		msg += fmt.Sprintf(" (%q)", text)
	}
	if req := resp.Request; req != nil && req.URL != nil {
		u := *req.URL
		u.RawQuery, u.User = "", nil
		msg = fmt.Sprintf("%s %s answered %s", req.Method, u.String(), msg)
	}
	return &muster.Error{Code: ErrorCodeFromStatus(resp.StatusCode), Message: msg}
}

// RetryLater is an error reply that said when to try again, with a
// Retry-After header: a server refusing for now (429 Too Many Requests,
// 503 Service Unavailable) asks its clients to stay away at least After.
// Its code is Err's.
type RetryLater struct {
	Err   *muster.Error
	After time.Duration
}

func (e *RetryLater) Error() string { return e.Err.Error() }
func (e *RetryLater) Unwrap() error { return e.Err }

// RetryAfter returns how long the reply err came from asked its client to
// wait before trying again, if it said.
func RetryAfter(err error) (time.Duration, bool) {
	var rl *RetryLater
	if errors.As(err, &rl) {
		return rl.After, true
	}
	return 0, false
}

// retryAfter reads a Retry-After header: a number of seconds, or a date,
// which is taken relative to the reply's Date (the server's clock, not
// ours). A date in the past, or without a Date to measure it from, asks
// for no wait.
func retryAfter(h http.Header) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, maxRetryAfter)) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil || !at.After(date) {
		return 0, true
	}
	return min(at.Sub(date), maxRetryAfter*time.Second), true
}

// maxRetryAfter bounds, in seconds, what a Retry-After header is read as: a
// day, which no client of muster's waits for anyway, and which keeps the
// duration from overflowing.
const maxRetryAfter = 24 * 60 * 60

// SetRetryAfter asks the client of a refusal to try again after d, rounded
// up to whole seconds.
func SetRetryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
}

// DecodeJSON decodes a request body into v, refusing a body declared as
// another type than JSON (CheckContentType), a key given twice or not
// spelled exactly as its field (CheckKeys), unknown fields and trailing
// data. The body is bounded by limit as Body bounds it.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if err := CheckContentType(r); err != nil {
		return err
	}
	body := NewBody(w, r, limit)
	data, err := readBody(body, r.ContentLength, limit)
	if err != nil {
		return body.Err(err)
	}
	if err := CheckKeys(data, reflect.TypeOf(v)); err != nil {
		return err
	}
	return DecodeFailure(decodeValue(data, v))
}

// readBody reads body whole, into a buffer of its length when it is known.
func readBody(body io.Reader, length, limit int64) ([]byte, error) {
	if length < 0 || length > limit {
		return io.ReadAll(body)
	}
	buf := make([]byte, 0, length+1) // + 1: the read that finds the end
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // a length that was not the body's
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// decodeValue decodes data, which holds one JSON value, into v, refusing
// unknown fields and trailing data.
func decodeValue(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	// More reads on to the end of the body, or to what follows the value.
	if dec.More() {
		return muster.Errorf(muster.EINVALID, "the request body holds more than one JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = muster.Errorf(muster.EINVALID, "the request body holds more than one JSON value")
		}
		return err
	}
	return nil
}

// Request is one JSON call: in, when not nil, is sent as the body; the reply
// is decoded into out, when not nil.
type Request struct {
	Method string
	URL    string
	Header http.Header
	In     any
	Out    any
	// ReplyHeader, when not nil, receives the reply's header: an ETag, for
	// one.
	ReplyHeader http.Header
	// Strict reads the reply as a request body is read (CheckReplyKeys):
	// a key given twice or spelled in another case than its field is
	// refused, not taken as one of its readings. A key of no field is
	// still let through: a newer server may add one.
	Strict bool
	// MaxReply, when not 0, bounds the reply body in bytes: one longer
	// is refused (ETOOLARGE) once MaxReply bytes of it are read, and the
	// rest is not read.
	MaxReply int64
}

// TransportError is a request that got no HTTP answer (the connection could
// not be made, or broke); callers turn it into advice.
type TransportError struct{ Err error }

func (e *TransportError) Error() string { return e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

// ReplyError is a reply of success whose body could not be taken: cut
// short, longer than the request's MaxReply, or not what out decodes (a
// key refused by Strict among them). What the server was asked may have
// been done; what it sent back is lost. Err keeps its code.
type ReplyError struct{ Err error }

func (e *ReplyError) Error() string { return e.Err.Error() }
func (e *ReplyError) Unwrap() error { return e.Err }

// Do sends req with hc. A reply of 300 or more (but 304 Not Modified,
// which leaves out as it is) is returned as the *muster.Error it carries; a request that got no answer as a
// *TransportError; a reply of success whose body cannot be taken as a
// *ReplyError. A reply with no body for out to decode leaves out as it
// is.
func Do(ctx context.Context, hc *http.Client, req Request) error {
	var body io.Reader
	if req.In != nil {
		b, err := json.Marshal(req.In)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.Method, req.URL, body)
	if err != nil {
		return err
	}
	for k, v := range req.Header {
		hreq.Header[k] = v
	}
	if req.In != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return &TransportError{Err: err}
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		if req.ReplyHeader != nil {
			req.ReplyHeader[k] = v
		}
	}
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified {
		return DecodeError(resp)
	}
	var reply io.Reader = resp.Body
	if req.MaxReply > 0 {
		reply = &limitedReply{r: io.LimitReader(resp.Body, req.MaxReply+1), left: req.MaxReply,
			err: muster.Errorf(muster.ETOOLARGE, "the reply to %s %s is over its limit of %d bytes", req.Method, hreq.URL.Path, req.MaxReply)}
	}
	// 304 Not Modified answers a conditional request (If-None-Match): what
	// the caller holds is still current, and there is no body.
	if err := decodeReply(reply, resp.StatusCode, req, hreq.URL.Path); err != nil {
		return &ReplyError{Err: err}
	}
	return nil
}

// decodeReply reads a reply of success into req.Out.
func decodeReply(reply io.Reader, status int, req Request, path string) error {
	if req.Out == nil || status == http.StatusNoContent || status == http.StatusNotModified {
		_, err := io.Copy(io.Discard, reply)
		return err
	}
	if req.Strict {
		return decodeStrictReply(reply, req.Out, req.Method, path)
	}
	if err := json.NewDecoder(reply).Decode(req.Out); err != nil {
		return fmt.Errorf("decode the reply to %s %s: %w", req.Method, path, err)
	}
	return nil
}

// limitedReply reads a reply body of at most left bytes more, and fails
// with err at the first byte past them: r reads one byte past the limit
// at most, so that a body of exactly the limit is told from a longer one,
// and nothing after it is read.
type limitedReply struct {
	r    io.Reader
	left int64
	err  error
}

func (l *limitedReply) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if int64(n) > l.left {
		n = int(l.left)
		l.left = 0
		return n, l.err
	}
	l.left -= int64(n)
	return n, err
}

// decodeStrictReply decodes the reply body into out, checking its keys
// first (CheckReplyKeys). A reply is read whole either way: encoding/json's
// Decoder buffers a value whole before it decodes it.
func decodeStrictReply(body io.Reader, out any, method, path string) error {
	data, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("read the reply to %s %s: %w", method, path, err)
	}
	if err := CheckReplyKeys(data, reflect.TypeOf(out)); err != nil {
		return muster.Wrap(muster.EINVALID, err, "the reply to %s %s", method, path)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode the reply to %s %s: %w", method, path, err)
	}
	return nil
}
