// Package apikey makes and checks admin API keys. A key reads
// "pomona_<id>_<secret>": the id finds the stored row, the 256-bit secret
// is kept only as its SHA-256 (a random secret of that size needs no slow
// hash) and compared in constant time.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"strings"
)

const prefix = "pomona_"

var idEnc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ErrMalformed: the presented string is not shaped like a Pomona key.
var ErrMalformed = errors.New("apikey: malformed key")

// New returns a new key string with its id and the hash to store.
func New() (key, id string, hash []byte) {
	idb := make([]byte, 10)
	sec := make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		panic(err)
	}
	if _, err := rand.Read(sec); err != nil {
		panic(err)
	}
	id = idEnc.EncodeToString(idb)
	secret := base64.RawURLEncoding.EncodeToString(sec)
	return prefix + id + "_" + secret, id, Hash(secret)
}

// Parse splits a presented key into id and secret.
func Parse(key string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return "", "", ErrMalformed
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 16 || len(secret) != 43 {
		return "", "", ErrMalformed
	}
	if _, err := idEnc.DecodeString(id); err != nil {
		return "", "", ErrMalformed
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", "", ErrMalformed
	}
	return id, secret, nil
}

// Hash is what is stored for a secret.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Match compares a presented secret with a stored hash in constant time.
func Match(secret string, stored []byte) bool {
	return subtle.ConstantTimeCompare(Hash(secret), stored) == 1
}
