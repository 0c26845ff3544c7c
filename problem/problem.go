// Package problem holds the typed errors Pomona's services return to their
// callers: the application layer (tenants, users, devices, commands, …), the
// MDM channel and the enrollment service. A service says what went wrong as
// a Kind (not an HTTP status); http/httpx renders every Kind to a status and
// body in one place for the API and the console, and http/mdmhttp for the
// MDM channel (devices read plain text or Apple's JSON codes), so handlers
// never invent status codes. The shape
// follows RFC 9457 (Problem Details for HTTP APIs): a stable machine code,
// a message for people, and the offending field where there is one.
//
// The package is a leaf: it imports nothing of Pomona and nothing of
// net/http.
package problem

import (
	"errors"
	"fmt"
)

// Kind is what went wrong, independent of the transport. httpx maps each
// Kind to exactly one HTTP status (noted beside it).
type Kind uint8

const (
	// Invalid: the request is malformed (bad syntax, missing or unparsable
	// field). 400.
	Invalid Kind = iota + 1
	// Unauthenticated: credentials are missing, wrong or no longer valid;
	// Error.Challenge, when set, is the WWW-Authenticate value that tells the
	// client how to get new ones (RFC 9110 §11.6.1). 401.
	Unauthenticated
	// Forbidden: the caller is known but may not do this (a role, a
	// certificate bound to another enrollment, an ended enrollment). 403.
	Forbidden
	// NotFound: the named resource does not exist (or the caller may not
	// know that it does). 404.
	NotFound
	// Conflict: the request collides with the current state (a duplicate
	// domain, a resource in use, a replayed one-time value). 409.
	Conflict
	// Unprocessable: well-formed, but a rule refuses it (a command a user
	// enrollment may not receive, a weak password). 422.
	Unprocessable
	// TooLarge: the body exceeds its bound. 413.
	TooLarge
	// UnsupportedMediaType: the body's Content-Type is not the one the
	// endpoint reads. 415.
	UnsupportedMediaType
	// TooManyRequests: a rate limit refused the request. 429.
	TooManyRequests
	// Unavailable: something the request needs is not configured or not
	// reachable (no push certificate yet). 503.
	Unavailable
	// MethodNotAllowed: the path exists, but not with this method. 405.
	MethodNotAllowed
	// BadGateway: a service the request relies on (APNs) refused or
	// failed. 502.
	BadGateway
	// Gone: the endpoint or message is not served and the client should
	// not ask again (an MDM UserAuthenticate to a user-enrollment server).
	// 410.
	Gone
)

var kindNames = [...]string{
	Invalid:              "invalid",
	Unauthenticated:      "unauthenticated",
	Forbidden:            "forbidden",
	NotFound:             "not_found",
	Conflict:             "conflict",
	Unprocessable:        "unprocessable",
	TooLarge:             "too_large",
	UnsupportedMediaType: "unsupported_media_type",
	TooManyRequests:      "too_many_requests",
	Unavailable:          "unavailable",
	MethodNotAllowed:     "method_not_allowed",
	BadGateway:           "bad_gateway",
	Gone:                 "gone",
}

// String is the Kind's default machine code ("not_found", …).
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Error is a typed failure a service returns. Code is stable and
// machine-readable (defaults to the Kind's name; Apple-defined codes such as
// "com.apple.unrecognized.device" are used verbatim where the protocol
// defines them); Message is for people and never holds secrets; Field names
// the offending input; Challenge is the WWW-Authenticate value for
// Unauthenticated; Err is the cause, logged but never sent.
type Error struct {
	Kind      Kind
	Code      string
	Message   string
	Field     string
	Challenge string
	Err       error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// New makes an *Error of kind with the default code and a formatted message.
func New(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: kind.String(), Message: fmt.Sprintf(format, args...)}
}

// Coded makes an *Error of kind with an explicit machine code.
func Coded(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap makes an *Error of kind whose cause is err (logged, not sent).
func Wrap(kind Kind, err error, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: kind.String(), Message: fmt.Sprintf(format, args...), Err: err}
}

// FieldError makes an Invalid or Unprocessable *Error naming the offending field.
func FieldError(kind Kind, field, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: kind.String(), Field: field, Message: fmt.Sprintf(format, args...)}
}

// Validation makes the Unprocessable *Error for input that is well-formed
// but not acceptable (a tenant's domain, a user's password, a webhook's
// URL): code "validation_failed", Field set, and a Message that starts with
// the field ("email: must be an email address") so that it reads on its own.
func Validation(field, format string, args ...any) *Error {
	return &Error{Kind: Unprocessable, Code: "validation_failed", Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// As finds the first *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// KindOf is the Kind of the first *Error in err's chain, or 0 when there is
// none (the renderer treats 0 as an internal error unless it recognises a
// store sentinel or context cancellation).
func KindOf(err error) Kind {
	if e, ok := As(err); ok {
		return e.Kind
	}
	return 0
}
