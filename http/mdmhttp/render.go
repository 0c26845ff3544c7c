package mdmhttp

import (
	"net/http"

	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/mdmservice"
	"github.com/pomona-mdm/pomona/problem"
)

// response is an MDM answer on its way out.
type response struct {
	status      int
	contentType string
	body        []byte
	challenge   string // WWW-Authenticate
	reason      string // for the log
}

// render is the only place where the MDM channel's answers and errors
// become HTTP. A device reads no problem documents: an error's body is its
// message as plain text, except Apple's com.apple.unrecognized.device,
// which is the JSON {"code": "com.apple.unrecognized.device"} Apple
// specifies. An error without a Kind is the server's own failure: 500
// with a fixed body (internalError), its cause only in the log line, so
// that a device never reads SQL text, file paths or driver detail — the
// same rule as the API's httpx.Classify.
func render(ans *mdmservice.Answer, err error) response {
	if err == nil {
		if ans == nil {
			ans = &mdmservice.Answer{}
		}
		return response{status: http.StatusOK, contentType: ans.ContentType, body: ans.Body, reason: ans.Reason}
	}
	pe, ok := problem.As(err)
	if !ok {
		resp := plainText(http.StatusInternalServerError, internalError)
		resp.reason = err.Error()
		return resp
	}
	// The statuses are httpx's one table (Apple's MDM protocol: 401 with
	// a challenge asks for a new sign-in, 403 refuses, 410 tells a Mac not
	// to send UserAuthenticate again).
	status, known := httpx.StatusOf(pe.Kind)
	if !known {
		status = http.StatusInternalServerError
	}
	if pe.Code == mdmservice.UnrecognizedDevice {
		return response{status: status, contentType: "application/json", body: []byte(`{"code":"` + mdmservice.UnrecognizedDevice + `"}`), reason: pe.Message}
	}
	resp := plainText(status, pe.Message)
	resp.challenge = pe.Challenge
	return resp
}

// internalError is the body of every 500: the cause is logged, not sent.
const internalError = "internal error; the server log has the details"

func plainText(status int, reason string) response {
	return response{status: status, contentType: "text/plain; charset=utf-8", body: []byte(reason + "\n"), reason: reason}
}

func (r response) write(w http.ResponseWriter) {
	if r.challenge != "" {
		w.Header().Set("WWW-Authenticate", r.challenge)
	}
	if r.contentType != "" {
		w.Header().Set("Content-Type", r.contentType)
	}
	w.WriteHeader(r.status)
	w.Write(r.body)
}
