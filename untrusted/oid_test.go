package untrusted

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"reflect"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// oidInputs are object identifiers (and near misses) in DER, each followed
// by a trailing byte so that where the reader stops is compared too.
func oidInputs(t testing.TB) [][]byte {
	var in [][]byte
	for der := range knownOIDs {
		in = append(in, append([]byte(der), 0x05))
		// The same content under another length or tag, cut short,
		// one content byte changed.
		b := []byte(der)
		in = append(in, b[:len(b)-1], append([]byte{0x06, b[1] + 1}, b[2:]...), append([]byte{0x04}, b[1:]...))
		c := append([]byte(nil), b...)
		c[len(c)-1] ^= 0x01
		in = append(in, c)
	}
	for _, o := range []asn1.ObjectIdentifier{{2, 5, 4, 3}, {1, 2, 3}, {1, 3, 6, 1, 4, 1, 311, 21, 20}} {
		der, err := asn1.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, der)
	}
	// Non-minimal and oversized arcs, empty content, long-form length.
	in = append(in, []byte{0x06, 0x00}, []byte{0x06, 0x02, 0x2a, 0x80}, []byte{0x06, 0x03, 0x80, 0x80, 0x01},
		[]byte{0x06, 0x81, 0x03, 0x2a, 0x86, 0x48}, []byte{0x06, 0x0b, 0x2a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		[]byte{0x06, 0x01, 0x00}, nil)
	return in
}

// readOID reads exactly what ReadASN1ObjectIdentifier reads: the same
// verdict, value and rest, for the known identifiers and near misses.
func TestReadOIDMatchesCryptobyte(t *testing.T) {
	for _, in := range oidInputs(t) {
		checkReadOID(t, in)
	}
}

func checkReadOID(t *testing.T, in []byte) {
	t.Helper()
	a, b := cryptobyte.String(append([]byte(nil), in...)), cryptobyte.String(append([]byte(nil), in...))
	var got, want asn1.ObjectIdentifier
	okGot, okWant := readOID(&a, &got), b.ReadASN1ObjectIdentifier(&want)
	if okGot != okWant || !reflect.DeepEqual(got, want) || string(a) != string(b) {
		t.Fatalf("% x: readOID %v %v rest % x; cryptobyte %v %v rest % x", in, okGot, got, []byte(a), okWant, want, []byte(b))
	}
}

// The known identifiers are read without allocating, and what is read
// cannot be grown into the shared value.
func TestReadOIDKnownNoAllocation(t *testing.T) {
	der, _ := asn1.Marshal(SHA256)
	var o asn1.ObjectIdentifier
	if n := testing.AllocsPerRun(100, func() {
		s := cryptobyte.String(der)
		if !readOID(&s, &o) {
			t.Fatal("not read")
		}
	}); n != 0 {
		t.Fatalf("%v allocations reading SHA-256's OID", n)
	}
	_ = append(o, 9)
	if !SHA256.Equal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}) || !knownOIDs[string(der)].Equal(SHA256) {
		t.Fatal("the shared value was modified")
	}
}

func FuzzReadOID(f *testing.F) {
	for _, in := range oidInputs(f) {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkReadOID(t, in) })
}

// utcTimeInputs are UTCTime and GeneralizedTime encodings, the usual form
// and every near miss of it.
func utcTimeInputs() [][]byte {
	var in [][]byte
	for _, s := range []string{
		"250102030405Z", "491231235959Z", "500101000000Z", "680229120000Z", "690101000000Z", "991231235959Z",
		"000229000000Z", "240229000000Z", "230229000000Z", "250431000000Z", "250230000000Z", "251301000000Z",
		"250001000000Z", "250100000000Z", "252401000000Z", "250102240000Z", "250102036000Z", "250102030460Z",
		"2501020304Z", "250102030405+0100", "250102030405-0000", "25010203040Z5", "2501020304 5Z", "25010203040aZ",
		"+50102030405Z", "25010203040.Z", "250102030405z", "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00Z",
	} {
		in = append(in, append([]byte{0x17, byte(len(s))}, s...))
	}
	in = append(in, append([]byte{0x18, 15}, "20250102030405Z"...), append([]byte{0x17, 14}, "250102030405Z\x00"...),
		append([]byte{0x17, 13}, "250102030405Z\x00"...), []byte{0x17, 0x81, 13, '2', '5', '0', '1', '0', '2', '0', '3', '0', '4', '0', '5', 'Z'}, nil)
	return in
}

// utcTimeZ reads what encoding/asn1 reads into a time.Time, to the same
// value, or declines; it never accepts what asn1 refuses.
func TestUTCTimeZMatchesEncodingASN1(t *testing.T) {
	fast := 0
	for _, in := range utcTimeInputs() {
		if checkUTCTimeZ(t, in) {
			fast++
		}
	}
	if fast != 8 {
		t.Fatalf("%d inputs read by utcTimeZ, want the 8 valid ones", fast)
	}
}

func checkUTCTimeZ(t *testing.T, in []byte) bool {
	t.Helper()
	got, ok := utcTimeZ(in)
	if !ok {
		return false
	}
	var want time.Time
	rest, err := asn1.Unmarshal(in, &want)
	if err != nil || len(rest) != 0 || !reflect.DeepEqual(got, want) {
		t.Fatalf("% x: utcTimeZ %v; encoding/asn1 %v, rest %d, %v", in, got, want, len(rest), err)
	}
	return true
}

func FuzzUTCTimeZ(f *testing.F) {
	for _, in := range utcTimeInputs() {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkUTCTimeZ(t, in) })
}

// An Mdm-Signature's parse and verification, with its certificate parsed
// once (as mdm.CertCache does), allocates no more than this: the OIDs,
// the signing time and the digest cost nothing any more (33 before: 7 OIDs,
// 5 for the signing time, 2 for the digest).
func TestSignedDataAllocations(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	c := signer(t, rk)
	body := []byte("<plist><dict><key>Status</key><string>Idle</string></dict></plist>")
	for _, digest := range []asn1.ObjectIdentifier{SHA1, SHA256} {
		der := detached(t, body, c, rk, digest, false)
		parse := func([]byte) (*x509.Certificate, error) { return c, nil }
		n := testing.AllocsPerRun(50, func() {
			sd, err := ParseSignedDataWith(der, DefaultASN1, parse, SHA1, SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sd.Verify(body, false); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%v: %v allocations", digest, n)
		if n > 19 {
			t.Fatalf("%v: %v allocations per parse and verification, want at most 19", digest, n)
		}
	}
}
