// Package httpx holds what every Pomona HTTP handler shares: the JSON
// error shape and the single place where errors become status codes,
// strict JSON decoding within a size bound, and the logging, metrics and
// panic-recovery middleware.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/store"
)

// Error is an error with its HTTP status and a stable machine code.
type Error struct {
	Status  int
	Code    string
	Message string
	Err     error // cause, logged but never sent
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf makes an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Body is the JSON error document: {"error": "...", "code": "..."}.
type Body struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	Field string `json:"field,omitempty"`
}

// Classify maps any error to its status, code and public message.
func Classify(err error) (status int, body Body) {
	var he *Error
	var ve *directory.ValidationError
	switch {
	case errors.As(err, &he):
		return he.Status, Body{Error: he.Message, Code: he.Code}
	case errors.As(err, &ve):
		return http.StatusUnprocessableEntity, Body{Error: ve.Error(), Code: "validation_failed", Field: ve.Field}
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, Body{Error: clean(err), Code: "not_found"}
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, Body{Error: clean(err), Code: "conflict"}
	case errors.Is(err, store.ErrInUse):
		return http.StatusConflict, Body{Error: clean(err), Code: "in_use"}
	case errors.Is(err, context.Canceled):
		return 499, Body{Error: "request cancelled", Code: "cancelled"}
	}
	return http.StatusInternalServerError, Body{Error: "internal error; the server log has the details", Code: "internal"}
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

// WriteError logs err and writes it as JSON.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status, body := Classify(err)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	log.Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path, "status", status,
		"code", body.Code, "err", err.Error(), "remote", r.RemoteAddr)
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
			return Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json, got %q", ct)
		}
	} else {
		return Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
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
		return Errorf(http.StatusBadRequest, "invalid_json", "request body must hold a single JSON object")
	}
	return nil
}

func jsonError(err error, max int64) error {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "request body is larger than %d bytes", max)
	case errors.As(err, &se):
		return Errorf(http.StatusBadRequest, "invalid_json", "malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return Errorf(http.StatusBadRequest, "invalid_json", "field %q must be %s", te.Field, te.Type)
	case errors.Is(err, io.EOF):
		return Errorf(http.StatusBadRequest, "invalid_json", "request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(http.StatusBadRequest, "invalid_json", "request body ends in the middle of the JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return Errorf(http.StatusBadRequest, "unknown_field", "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return Errorf(http.StatusBadRequest, "invalid_json", "malformed JSON: %v", err)
}
