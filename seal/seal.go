// Package seal encrypts secrets at rest (CA and TLS private keys, TOTP
// secrets) with AES-256-GCM under one server key. A sealed value names the
// key it was sealed with, so opening it with another key fails with a
// clear error instead of garbage.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const (
	version   = 1
	keyIDLen  = 8
	nonceLen  = 12
	headerLen = 1 + keyIDLen + nonceLen
	// KeySize is the length of a sealing key in bytes.
	KeySize = 32
)

// ErrWrongKey means the value was sealed with another key.
var ErrWrongKey = errors.New("seal: value was sealed with a different key (check POMONA_SECRET_KEY or the key file in the data directory)")

// Sealer seals and opens values under one key.
type Sealer struct {
	aead  cipher.AEAD
	keyID [keyIDLen]byte
}

// New returns a Sealer for a 32-byte key.
func New(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("seal: key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	s := &Sealer{aead: aead}
	sum := sha256.Sum256(append([]byte("pomona seal key id\x00"), key...))
	copy(s.keyID[:], sum[:])
	return s, nil
}

// KeyID is a short public fingerprint of the key, for logs.
func (s *Sealer) KeyID() string { return fmt.Sprintf("%x", s.keyID) }

// Seal encrypts plaintext. context binds the value to its purpose (for
// example "ca-key"), so a sealed value cannot be moved to another slot.
func (s *Sealer) Seal(plaintext []byte, context string) []byte {
	out := make([]byte, headerLen, headerLen+len(plaintext)+s.aead.Overhead())
	out[0] = version
	copy(out[1:], s.keyID[:])
	if _, err := rand.Read(out[1+keyIDLen : headerLen]); err != nil {
		panic("seal: no randomness: " + err.Error())
	}
	return s.aead.Seal(out, out[1+keyIDLen:headerLen], plaintext, aad(out[:1+keyIDLen], context))
}

// Open decrypts a value made by Seal with the same key and context.
func (s *Sealer) Open(sealed []byte, context string) ([]byte, error) {
	if len(sealed) < headerLen+s.aead.Overhead() || sealed[0] != version {
		return nil, errors.New("seal: not a sealed value")
	}
	if string(sealed[1:1+keyIDLen]) != string(s.keyID[:]) {
		return nil, ErrWrongKey
	}
	pt, err := s.aead.Open(nil, sealed[1+keyIDLen:headerLen], sealed[headerLen:], aad(sealed[:1+keyIDLen], context))
	if err != nil {
		return nil, errors.New("seal: value is corrupt or was sealed for another purpose")
	}
	return pt, nil
}

func aad(header []byte, context string) []byte {
	return append(append([]byte{}, header...), context...)
}

// ParseKey decodes a key given as base64 (standard or URL alphabet, padded
// or not) or 64 hex digits.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("seal: key decodes to %d bytes, want %d", len(b), KeySize)
			}
			return b, nil
		}
	}
	return nil, errors.New("seal: key is neither base64 nor 64 hex digits")
}

// NewKey returns a fresh random key, base64-encoded.
func NewKey() string {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// LoadOrCreateKeyFile reads the key at path, creating it (mode 0600) with
// a fresh key when it does not exist. created reports a new key.
func LoadOrCreateKeyFile(path string) (key []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key, err := ParseKey(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return key, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	k := NewKey()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		// Another process won the race; use its key.
		return LoadOrCreateKeyFile(path)
	}
	if err != nil {
		return nil, false, err
	}
	if _, err := f.WriteString(k + "\n"); err != nil {
		f.Close()
		return nil, false, err
	}
	if err := f.Close(); err != nil {
		return nil, false, err
	}
	key, err = ParseKey(k)
	return key, true, err
}
