// Package discovery is the protocol logic of account-driven enrollment
// service discovery (GET /.well-known/com.apple.remotemanagement): parse
// what the device sends, and shape the answer or the rejection Apple
// defines. It does no I/O; the HTTP handler and the tenant lookup live
// elsewhere.
//
// Apple: "Onboarding users with account-driven enrollment",
// https://developer.apple.com/documentation/devicemanagement/onboarding-users-with-account-driven-enrollment
// and the endpoint, https://developer.apple.com/documentation/devicemanagement/get-.well-known-com.apple.remotemanagement
package discovery

import (
	"errors"
	"net/url"
	"strings"

	"github.com/pomona-mdm/pomona/address"
)

// Path is where devices (or the company domain's redirect) ask.
const Path = "/.well-known/com.apple.remotemanagement"

// Version values of an AvailableServer.
const (
	VersionBYOD = "mdm-byod" // account-driven user enrollment
	VersionADDE = "mdm-adde" // account-driven device enrollment
)

// FailedCode is the required code of a 403 rejection body.
const FailedCode = "com.apple.well-known.failed"

// Model families a device may send. Pomona enrolls Enrolled ones.
var (
	KnownFamilies = []string{"AppleTV", "iPad", "iPhone", "Mac", "RealityDevice", "Watch"}
	Enrolled      = map[string]bool{"iPhone": true, "iPad": true, "Mac": true}
)

// MaxQuery bounds the raw query string that is parsed at all.
const MaxQuery = 2048

// Request is a parsed discovery query.
type Request struct {
	// UserIdentifier is exactly what the person typed (after percent-decoding).
	UserIdentifier string
	// Email is the identifier lower-cased; Domain its part after the last '@'.
	Email, Domain string
	ModelFamily   string
}

// Response is the JSON document of a successful answer (Apple's
// AvailableServers, https://developer.apple.com/documentation/devicemanagement/get-.well-known-com.apple.remotemanagement).
type Response struct {
	Servers []Server `json:"Servers"`
}

// Server is one AvailableServer entry.
type Server struct {
	Version string `json:"Version"`
	BaseURL string `json:"BaseURL"`
}

// Failure is the JSON body of a 403 rejection; Code is always FailedCode
// (com.apple.well-known.failed).
type Failure struct {
	Code        string `json:"code"`
	Description string `json:"description,omitempty"`
	Message     string `json:"message,omitempty"`
}

// Rejection is why a request is refused. Reason is a short stable label
// (for metrics and logs), Description goes to the device log, Message may
// be shown to the person.
type Rejection struct {
	Reason      string
	Description string
	Message     string
}

func (r *Rejection) Error() string { return r.Reason + ": " + r.Description }

// Body renders the rejection as Apple's well-known.failed document.
func (r *Rejection) Body() Failure {
	return Failure{Code: FailedCode, Description: r.Description, Message: r.Message}
}

const contactIT = "Contact your IT department."

func reject(reason, desc, msg string) *Rejection {
	return &Rejection{Reason: reason, Description: desc, Message: msg}
}

// ParseQuery reads user-identifier and model-family from a raw query
// string. It decodes percent-escapes itself so that a literal '+' in an
// identifier (alice+work@example.com) stays a '+', where url.ParseQuery
// would turn it into a space. Unknown parameters are ignored; a repeated
// parameter is refused as ambiguous.
func ParseQuery(raw string) (Request, error) {
	var req Request
	if len(raw) > MaxQuery {
		return req, reject("malformed", "query string too long", "This address can't be used to sign in. "+contactIT)
	}
	var uid, fam string
	var haveUID, haveFam bool
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.PathUnescape(k)
		if err != nil {
			return req, reject("malformed", "bad percent-encoding in query", "This address can't be used to sign in. "+contactIT)
		}
		switch key {
		case "user-identifier", "model-family":
		default:
			continue
		}
		val, err := url.PathUnescape(v)
		if err != nil {
			return req, reject("malformed", "bad percent-encoding in "+key, "This address can't be used to sign in. "+contactIT)
		}
		if key == "user-identifier" {
			if haveUID {
				return req, reject("malformed", "user-identifier given more than once", "This address can't be used to sign in. "+contactIT)
			}
			uid, haveUID = val, true
		} else {
			if haveFam {
				return req, reject("malformed", "model-family given more than once", "This device can't be enrolled. "+contactIT)
			}
			fam, haveFam = val, true
		}
	}
	if !haveUID || uid == "" {
		return req, reject("missing-identifier", "user-identifier is missing", "Enter your work email address. "+contactIT)
	}
	email, domain, err := address.Email(uid)
	if err != nil {
		return req, reject("malformed-identifier", "user-identifier is not a valid email address: "+err.Error(),
			"Enter your work email address, like name@company.com.")
	}
	if !haveFam || fam == "" {
		return req, reject("missing-model-family", "model-family is missing", "This device can't be enrolled. "+contactIT)
	}
	if !Enrolled[fam] {
		return req, reject("unsupported-model-family", "model family "+quote(fam)+" is not enrolled by this server (iPhone, iPad and Mac are)",
			"This kind of device can't be enrolled. "+contactIT)
	}
	return Request{UserIdentifier: uid, Email: email, Domain: domain, ModelFamily: fam}, nil
}

// UnknownDomain is the rejection for a domain no tenant owns.
func UnknownDomain(domain string) *Rejection {
	return reject("unknown-domain", "no organisation on this server owns the domain "+quote(domain),
		"Your organisation doesn't use this server for device management. "+contactIT)
}

// Answer is the success document pointing the device at baseURL.
func Answer(baseURL string) Response {
	return Response{Servers: []Server{{Version: VersionBYOD, BaseURL: baseURL}}}
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s) + `"`
}

// ValidateResponse checks a success document the way the device does
// before using it: at least one server, the first with a known Version and
// an absolute https BaseURL. It is used by `pomona discovery check` and
// the simulator.
func ValidateResponse(r Response) error {
	if len(r.Servers) == 0 {
		return errors.New(`"Servers" is missing or empty`)
	}
	s := r.Servers[0]
	switch s.Version {
	case VersionBYOD, VersionADDE:
	case "":
		return errors.New(`the first server has no "Version"`)
	default:
		return errors.New(`the first server's "Version" is ` + quote(s.Version) + `, not "mdm-byod"`)
	}
	if s.BaseURL == "" {
		return errors.New(`the first server has no "BaseURL"`)
	}
	u, err := url.Parse(s.BaseURL)
	if err != nil || u.Host == "" {
		return errors.New(`"BaseURL" ` + quote(s.BaseURL) + ` is not an absolute URL`)
	}
	if u.Scheme != "https" {
		return errors.New(`"BaseURL" ` + quote(s.BaseURL) + ` is not https`)
	}
	return nil
}
