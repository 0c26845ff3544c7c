package cli

import (
	"crypto/rand"
	"math/big"
)

// The alphabets of randomString.
const (
	// lowerBase32 (RFC 4648 base32, lower-case): generated passwords, easy
	// to read out and to type on a phone.
	lowerBase32 = "abcdefghijklmnopqrstuvwxyz234567"
	// lowerHex is safe in an email's local part and in a domain label.
	lowerHex = "0123456789abcdef"
	// urlSafe is base64url's alphabet (RFC 4648 §5).
	urlSafe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

// generatedPasswordLen is the length of a --generate-password password:
// 24 characters of lowerBase32 are 120 bits.
const generatedPasswordLen = 24

// randomString is the CLI's one generator of random text (generated
// passwords, the names and passwords of simulated users): n characters
// drawn uniformly from alphabet with crypto/rand. The error is
// crypto/rand's.
func randomString(n int, alphabet string) (string, error) {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		k, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b), nil
}
