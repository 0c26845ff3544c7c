package mdmhttp

import (
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/pomona-mdm/pomona/mdmservice"
	"github.com/pomona-mdm/pomona/problem"
)

// TestRender: every answer of the MDM channel becomes the status, body and
// headers a device reads here, and only here.
func TestRender(t *testing.T) {
	tests := []struct {
		name              string
		ans               *mdmservice.Answer
		err               error
		status            int
		contentType, body string
		challenge         string
	}{
		{"acknowledged", &mdmservice.Answer{Reason: "no command"}, nil, 200, "", "", ""},
		{"command", &mdmservice.Answer{Body: []byte("<plist/>"), ContentType: "application/xml; charset=utf-8"}, nil, 200, "application/xml; charset=utf-8", "<plist/>", ""},
		{"bad request", nil, problem.New(problem.Invalid, "unknown MessageType X"), 400, "text/plain; charset=utf-8", "unknown MessageType X\n", ""},
		{"sign in again", nil, &problem.Error{Kind: problem.Unauthenticated, Message: "sign-in required: expired", Challenge: `Bearer method="apple-as-web", url="https://x/login"`},
			401, "text/plain; charset=utf-8", "sign-in required: expired\n", `Bearer method="apple-as-web", url="https://x/login"`},
		{"forbidden", nil, problem.New(problem.Forbidden, "this identity certificate belongs to another enrollment"), 403, "text/plain; charset=utf-8", "this identity certificate belongs to another enrollment\n", ""},
		{"unrecognized device", nil, problem.Coded(problem.Forbidden, mdmservice.UnrecognizedDevice, "the enrollment was ended"), 403, "application/json", `{"code":"com.apple.unrecognized.device"}`, ""},
		{"gone", nil, problem.New(problem.Gone, "UserAuthenticate is not used with user enrollments"), 410, "text/plain; charset=utf-8", "UserAuthenticate is not used with user enrollments\n", ""},
		{"no push certificate: the cause is not sent", nil, problem.Wrap(problem.Unavailable, errors.New("sealed blob"), "no push certificate"), 503, "text/plain; charset=utf-8", "no push certificate\n", ""},
		// The cause of a 500 (SQL text, paths, driver detail) is logged, never sent.
		{"internal: the cause is not sent", nil, errors.New(`sqlstore: UNIQUE constraint failed: channels.id (/var/lib/pomona/pomona.db)`), 500,
			"text/plain; charset=utf-8", "internal error; the server log has the details\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			render(tc.ans, tc.err).write(rec)
			if rec.Code != tc.status || rec.Header().Get("Content-Type") != tc.contentType || rec.Body.String() != tc.body ||
				rec.Header().Get("WWW-Authenticate") != tc.challenge {
				t.Fatalf("got %d %q %q challenge %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String(), rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
}
