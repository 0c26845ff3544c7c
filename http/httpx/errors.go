// Package httpx holds what every Pomona HTTP handler shares: the JSON
// error shape and the single place where errors (problem.Error, the
// store's sentinels, a cancelled request) become status codes (Classify),
// strict JSON decoding within a size bound, and the logging, metrics and
// panic-recovery middleware.
package httpx

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// statusOf is the HTTP status of each problem.Kind: the one table.
var statusOf = map[problem.Kind]int{
	problem.Invalid:              http.StatusBadRequest,
	problem.Unauthenticated:      http.StatusUnauthorized,
	problem.Forbidden:            http.StatusForbidden,
	problem.NotFound:             http.StatusNotFound,
	problem.MethodNotAllowed:     http.StatusMethodNotAllowed,
	problem.Conflict:             http.StatusConflict,
	problem.TooLarge:             http.StatusRequestEntityTooLarge,
	problem.UnsupportedMediaType: http.StatusUnsupportedMediaType,
	problem.Unprocessable:        http.StatusUnprocessableEntity,
	problem.TooManyRequests:      http.StatusTooManyRequests,
	problem.BadGateway:           http.StatusBadGateway,
	problem.Unavailable:          http.StatusServiceUnavailable,
	problem.Gone:                 http.StatusGone,
}

// StatusClientClosed is the status logged (and recorded in the audit log)
// for a request the client gave up on (nginx's 499; never seen by it).
const StatusClientClosed = 499

// Body is the JSON error document: {"error": "...", "code": "...",
// "field": "..."}. Challenge is not part of it: WriteError sends it as the
// WWW-Authenticate header.
type Body struct {
	Error     string `json:"error"`
	Code      string `json:"code"`
	Field     string `json:"field,omitempty"`
	Challenge string `json:"-"`
}

// Classify is the one place where an error becomes what a client sees,
// used by the API (as JSON, WriteError) and the console (as an HTML page
// or a message after a form, with the same status and message): a
// *problem.Error by its Kind; the store's sentinels (ErrNotFound 404,
// ErrConflict and ErrInUse 409) with the store's message for people;
// context.Canceled 499; anything else 500 with a fixed message (the cause
// is only logged).
func Classify(err error) (status int, body Body) {
	if pe, ok := problem.As(err); ok {
		if st, ok := statusOf[pe.Kind]; ok {
			code := pe.Code
			if code == "" {
				code = pe.Kind.String()
			}
			return st, Body{Error: pe.Message, Code: code, Field: pe.Field, Challenge: pe.Challenge}
		}
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, Body{Error: clean(err), Code: "not_found"}
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, Body{Error: clean(err), Code: "conflict"}
	case errors.Is(err, store.ErrInUse):
		return http.StatusConflict, Body{Error: clean(err), Code: "in_use"}
	case errors.Is(err, context.Canceled):
		return StatusClientClosed, Body{Error: "request cancelled", Code: "cancelled"}
	}
	return http.StatusInternalServerError, Body{Error: "internal error; the server log has the details", Code: "internal"}
}

// Log logs a failed request once: at error level for 5xx (with the cause),
// at info level otherwise. It returns the status and body to show.
func Log(log *slog.Logger, r *http.Request, err error, attrs ...any) (int, Body) {
	status, body := Classify(err)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	args := append([]any{"method", r.Method, "path", r.URL.Path, "status", status, "code", body.Code, "err", err.Error(), "remote", r.RemoteAddr}, attrs...)
	log.Log(r.Context(), level, "request failed", args...)
	return status, body
}

// clean keeps the part of a store error meant for people: store errors
// read "conflict: domain x already belongs to another tenant".
func clean(err error) string {
	s := err.Error()
	for _, p := range []string{store.ErrConflict.Error() + ": ", store.ErrInUse.Error() + ": ", store.ErrNotFound.Error() + ": "} {
		if i := strings.Index(s, p); i >= 0 {
			s = s[i+len(p):]
		}
	}
	// Never leak driver detail such as SQL text.
	if i := strings.Index(s, "constraint failed"); i >= 0 {
		return "the change conflicts with existing data"
	}
	return s
}

// WriteError logs err and writes it as JSON (Classify), with the
// WWW-Authenticate header of an Unauthenticated problem that carries one.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status, body := Log(log, r, err)
	if body.Challenge != "" {
		w.Header().Set("WWW-Authenticate", body.Challenge)
	}
	WriteJSON(w, status, body)
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// DecodeJSON reads one JSON object from the body into v: the Content-Type
// must be application/json, the body at most max bytes, unknown fields and
// trailing data are refused.
func DecodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return problem.Coded(problem.UnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json, got %q", ct)
		}
	} else {
		return problem.Coded(problem.UnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
	}
	body := http.MaxBytesReader(w, r.Body, max)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, max)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return jsonError(err, max)
		}
		return problem.Coded(problem.Invalid, "invalid_json", "request body must hold a single JSON object")
	}
	return nil
}

func jsonError(err error, max int64) error {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var b64 base64.CorruptInputError
	switch {
	case errors.As(err, &mbe):
		return problem.Coded(problem.TooLarge, "body_too_large", "request body is larger than %d bytes", max)
	case errors.As(err, &b64):
		return problem.Coded(problem.Invalid, "invalid_json", "a file field is not standard base64 (RFC 4648 §4, with padding, no spaces): byte %d; encode the file with base64 -w0 (macOS: base64 -i FILE)", int64(b64))
	case errors.As(err, &se):
		return problem.Coded(problem.Invalid, "invalid_json", "malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return problem.Coded(problem.Invalid, "invalid_json", "field %q must be %s", te.Field, te.Type)
	case errors.Is(err, io.EOF):
		return problem.Coded(problem.Invalid, "invalid_json", "request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem.Coded(problem.Invalid, "invalid_json", "request body ends in the middle of the JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return problem.Coded(problem.Invalid, "unknown_field", "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return problem.Coded(problem.Invalid, "invalid_json", "malformed JSON: %v", err)
}
