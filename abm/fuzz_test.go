package abm_test

import (
	"errors"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/abm"
	"github.com/pomona-mdm/pomona/abm/abmstub"
)

// FuzzDecryptServerToken: an uploaded server token is hostile input; any
// bytes give a token or one of the documented refusals, never a panic,
// within the untrusted layer's bounds.
func FuzzDecryptServerToken(f *testing.F) {
	kp, err := abm.NewKeyPair("fuzz", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	good, err := abmstub.SMIME(abm.OAuthTokens{ConsumerKey: "CK", ConsumerSecret: "CS", AccessToken: "AT", AccessSecret: "AS",
		AccessTokenExpiry: time.Now().Add(time.Hour)}, kp.Cert)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("Content-Type: application/pkcs7-mime\r\n\r\nMIIB"))
	f.Add([]byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03, 0xa0, 0x80, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		_, err := abm.DecryptServerToken(in, kp, time.Now())
		if err != nil && !errors.Is(err, abm.ErrBadToken) && !errors.Is(err, abm.ErrForeignToken) && !errors.Is(err, abm.ErrExpiredToken) {
			t.Fatalf("undocumented refusal: %v", err)
		}
	})
}
