// Package totp implements RFC 6238 time-based one-time passwords (HMAC-SHA1,
// 6 digits, 30-second steps: what every authenticator app expects) with a
// ±1 step window and single use: a code is accepted only for a step later
// than the last one accepted.
package totp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/url"
	"strings"
	"time"
)

const (
	Period  = 30
	Digits  = 6
	KeySize = 20 // 160 bits, RFC 4226's recommendation
	// Skew is how many steps before and after now are accepted.
	Skew = 1
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewSecret returns a random secret.
func NewSecret() []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return k
}

// Encode is the base32 form people type into an authenticator.
func Encode(secret []byte) string { return b32.EncodeToString(secret) }

// Decode reads a base32 secret, tolerating spaces, lower case and padding.
func Decode(s string) ([]byte, error) {
	s = strings.ToUpper(strings.NewReplacer(" ", "", "-", "", "=", "").Replace(s))
	k, err := b32.DecodeString(s)
	if err != nil || len(k) < 10 {
		return nil, fmt.Errorf("totp: not a base32 secret")
	}
	return k, nil
}

// URI is the otpauth:// link (and QR code content) for an authenticator.
func URI(secret []byte, issuer, account string) string {
	label := url.PathEscape(issuer) + ":" + url.PathEscape(account)
	q := url.Values{"secret": {Encode(secret)}, "issuer": {issuer}, "algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}}
	return "otpauth://totp/" + label + "?" + q.Encode()
}

// Step is the time step of t.
func Step(t time.Time) int64 { return t.Unix() / Period }

// CodeAt returns the code for a step with n digits.
func CodeAt(secret []byte, step int64, n int) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	m := hmac.New(sha1.New, secret)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for i := 0; i < n; i++ {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", n, v%mod)
}

// Code is the current 6-digit code.
func Code(secret []byte, t time.Time) string { return CodeAt(secret, Step(t), Digits) }

// Verify checks code against the steps around t and returns the matching
// step. Steps at or before lastStep are refused, so each code works once.
func Verify(secret []byte, code string, t time.Time, lastStep int64) (int64, bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != Digits {
		return 0, false
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	now := Step(t)
	for d := -Skew; d <= Skew; d++ {
		s := now + int64(d)
		if s <= lastStep {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(CodeAt(secret, s, Digits)), []byte(code)) == 1 {
			return s, true
		}
	}
	return 0, false
}
