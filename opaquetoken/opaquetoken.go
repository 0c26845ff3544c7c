// Package opaquetoken makes and reads the opaque access tokens Pomona hands to a
// device through the sign-in callback, and the other one-time secrets of
// enrollment (SCEP challenges). A token is 256 random bits in base64url;
// only its SHA-256 is stored, so a database leak yields no usable token.
package opaquetoken

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// Len is the length of a token string (32 bytes in unpadded base64url).
const Len = 43

var (
	ErrMissing   = errors.New("no bearer token")
	ErrMalformed = errors.New("malformed bearer token")
)

// New returns a fresh token and the hash to store.
func New() (string, []byte) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	t := base64.RawURLEncoding.EncodeToString(b)
	return t, Hash(t)
}

// Hash is what is stored for a token.
func Hash(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

// Valid reports whether s is shaped like a token.
func Valid(s string) bool {
	if len(s) != Len {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// FromHeader extracts the token from an Authorization header value
// ("Bearer <token>"). An absent header is ErrMissing; anything else that is
// not exactly one well-formed token is ErrMalformed.
func FromHeader(h string) (string, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return "", ErrMissing
	}
	scheme, t, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrMalformed
	}
	t = strings.TrimSpace(t)
	if !Valid(t) {
		return "", ErrMalformed
	}
	return t, nil
}
