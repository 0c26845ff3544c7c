package mdm

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/untrusted/untrustedtest"
)

// signN signs body detached with n copies of the SignerInfo.
func signN(t testing.TB, body []byte, c *x509.Certificate, k crypto.PrivateKey, n int) string {
	return base64.StdEncoding.EncodeToString(untrustedtest.DetachedRepeated(t, body, c, k, n))
}

// Finding 1 (Mdm-Signature) and finding 7: each hostile header is refused
// within a second and a few MiB, before any hashing.
func TestHostileSignatures(t *testing.T) {
	ca, _ := pki.NewCA("ca", pki.ECDSAP256, time.Now())
	c, k := identity(t, ca)
	big := bytes.Repeat([]byte("<plist><string>x</string></plist>"), (8<<20)/33)
	// Anyone can do this: pkcs7 verifies every SignerInfo (hashing the
	// body each time) before the server looks at who signed, so a
	// self-signed P-256 certificate does (40 SignerInfos fit the header).
	ac, ak := untrustedtest.SelfSigned(t, "attacker")
	repeated := signN(t, big, ac, ak, 40)
	if len(repeated) > MaxSignature {
		t.Fatalf("the 40-signer header is %d characters", len(repeated))
	}
	sha512 := func() string {
		sd, _ := pkcs7.NewSignedData(big)
		sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA512)
		if err := sd.AddSigner(c, k, pkcs7.SignerInfoConfig{}); err != nil {
			t.Fatal(err)
		}
		sd.Detach()
		der, _ := sd.Finish()
		return base64.StdEncoding.EncodeToString(der)
	}()
	for _, tc := range []struct {
		name, sig string
		body      []byte
		err       string
		maxAlloc  uint64
	}{
		{"nested definite BER", base64.StdEncoding.EncodeToString(untrustedtest.Read(t, untrustedtest.NestedBER)), []byte("<plist/>"), "runs past its parent", 4 << 20},
		{"40 SignerInfos over 8 MiB", repeated, big, "40 SignerInfos", 4 << 20},
		{"SHA-512 digest", sha512, big, "is not accepted", 4 << 20},
		{"body over the limit", signN(t, []byte("x"), c, k, 1), make([]byte, MaxResult+1), "larger than", 4 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			// The refusal must come from the SignerInfo count, which is
			// checked before Verify: the code before this check hashed
			// the 8 MiB body 40 times (650 ms of CPU) and then refused
			// the signer as not from the CA, a different error.
			untrustedtest.Bounded(t, time.Second, tc.maxAlloc, func() {
				_, err = VerifySignature(tc.sig, tc.body, ca.Cert, time.Now())
			})
			if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
	// One SignerInfo over the same 8 MiB body verifies (hashed once).
	if _, err := VerifySignature(signN(t, big, c, k, 1), big, ca.Cert, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// Finding 2's class on the MDM channel: the three hostile binary plists
// are refused by both decoders (this path refused "bplist" already).
func TestHostileBinaryPlists(t *testing.T) {
	for _, name := range untrustedtest.BinaryPlists {
		b := untrustedtest.Read(t, name)
		untrustedtest.Bounded(t, time.Second, 1<<20, func() {
			if _, err := DecodeCheckin(b); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "devices send XML") {
				t.Errorf("%s: %v", name, err)
			}
			if _, err := DecodeResult(b); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: %v", name, err)
			}
			if _, _, _, ok := Inventory("DeviceInformation", b); ok {
				t.Errorf("%s: inventory from a binary plist", name)
			}
		})
	}
}
