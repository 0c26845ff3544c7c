package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/problem"
)

// IdempotencyHeader makes a command creation happen at most once
// (draft-ietf-httpapi-idempotency-key-header, section 2): repeating the
// request with the same key within app.IdempotencyTTL returns the
// first answer and queues nothing; the same key with another request is
// refused with 422.
const IdempotencyHeader = "Idempotency-Key"

// maxIdempotencyKey bounds the key (the draft sets no limit; UUIDs are
// 36 characters).
const maxIdempotencyKey = 255

// idempotency reads the Idempotency-Key header of r: nil without one. The
// draft's form is a Structured Field string (RFC 8941 section 3.3.3,
// "…" with \" and \\ escapes); a bare token of printable ASCII is accepted
// too. The fingerprint covers the method, the path and body, the request
// as decoded and re-encoded (so key order and spacing do not matter).
// Malformed keys give a 400.
func idempotency(r *http.Request, body any) (*app.Idempotency, error) {
	vs := r.Header.Values(IdempotencyHeader)
	if len(vs) == 0 {
		return nil, nil
	}
	key, ok := parseIdempotencyKey(vs)
	if !ok {
		return nil, &problem.Error{Kind: problem.Invalid, Code: "invalid_parameter",
			Message: `Idempotency-Key must be one string of 1 to 255 printable ASCII characters, e.g. Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"`}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.Path + "\n"))
	h.Write(b)
	return &app.Idempotency{Principal: Principal(r.Context()), Key: key, Fingerprint: hex.EncodeToString(h.Sum(nil))}, nil
}

func parseIdempotencyKey(vs []string) (string, bool) {
	if len(vs) != 1 {
		return "", false
	}
	v := strings.TrimSpace(vs[0])
	if strings.HasPrefix(v, `"`) {
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			switch c := v[i]; {
			case c == '\\':
				if i+1 >= len(v) || (v[i+1] != '"' && v[i+1] != '\\') {
					return "", false
				}
				i++
				b.WriteByte(v[i])
			case c == '"':
				if i != len(v)-1 {
					return "", false
				}
				if b.Len() < 1 || b.Len() > maxIdempotencyKey {
					return "", false
				}
				return b.String(), true
			case c < 0x20 || c > 0x7e:
				return "", false
			default:
				b.WriteByte(c)
			}
		}
		return "", false // unterminated
	}
	if v == "" || len(v) > maxIdempotencyKey {
		return "", false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= 0x20 || c > 0x7e || c == '"' || c == '\\' || c == ',' {
			return "", false
		}
	}
	return v, true
}
