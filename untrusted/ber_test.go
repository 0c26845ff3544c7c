package untrusted

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/untrusted/untrustedtest"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestToDER(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string // want "" with err
		err            string
	}{
		{name: "DER is kept", in: "30 06 02 01 01 04 01 41", want: "30 06 02 01 01 04 01 41"},
		{name: "empty SEQUENCE", in: "30 00", want: "30 00"},
		{name: "indefinite becomes definite", in: "30 80 02 01 01 00 00", want: "30 03 02 01 01"},
		{name: "nested indefinite, constructed OCTET STRING kept", in: "30 80 a0 80 24 80 04 01 41 04 01 42 00 00 00 00 00 00",
			want: "30 0a a0 08 24 06 04 01 41 04 01 42"},
		{name: "non-minimal long length", in: "30 81 03 02 01 01", want: "30 03 02 01 01"},
		{name: "indefinite inside definite", in: "30 05 30 80 05 00 00 00", err: "truncated"},
		{name: "indefinite inside definite, no room", in: "30 04 30 80 05 00 00 00", err: "without end-of-contents"},
		{name: "indefinite inside definite, fits", in: "30 08 30 80 05 00 00 00 05 00", want: "30 06 30 02 05 00 05 00"},
		{name: "empty", in: "", err: "empty"},
		{name: "trailing bytes", in: "05 00 00", err: "trailing"},
		{name: "child overruns parent", in: "30 02 30 02 05 00", err: "runs past its parent"},
		{name: "truncated", in: "30 05 02 01", err: "runs past"},
		{name: "truncated header", in: "30", err: "truncated"},
		{name: "indefinite primitive", in: "04 80 41 00 00", err: "primitive"},
		{name: "indefinite without end", in: "30 80 05 00", err: "without end-of-contents"},
		{name: "empty indefinite", in: "30 80 00 00", err: "empty indefinite"},
		{name: "stray end-of-contents", in: "30 02 00 00", err: "end-of-contents outside"},
		{name: "high tag number", in: "1f 81 01 00", err: "high tag"},
		{name: "reserved length", in: "04 ff 00", err: "reserved"},
		{name: "length of 4 octets", in: "04 84 00 00 00 01 41", err: "4 octets"},
		{name: "leading zero length", in: "04 81 00", err: "leading zero"},
		{name: "too deep", in: strings.Repeat("30 02 ", 5) + "05 00", err: "deeper than 3"},
		{name: "too many elements", in: "30 0a " + strings.Repeat("05 00 ", 5), err: "more than 4 elements"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := ASN1Limits{MaxSize: 64, MaxDepth: 3, MaxElements: 4}
			if !strings.Contains(tc.name, "too") {
				lim = ASN1Limits{MaxSize: 64}
			}
			if tc.name == "too deep" {
				// 5 wrappers + NULL: fix the lengths.
				tc.in = "30 0a 30 08 30 06 30 04 30 02 05 00"
			}
			got, err := ToDER(unhex(tc.in), lim)
			if tc.err != "" {
				if err == nil || !errors.Is(err, ErrASN1) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, unhex(tc.want)) {
				t.Fatalf("got % x, want %s", got, tc.want)
			}
			if err := CheckBER(got, lim); err != nil {
				t.Fatalf("own output refused: %v", err)
			}
		})
	}
	if _, err := ToDER(make([]byte, 65), ASN1Limits{MaxSize: 64}); err == nil || !strings.Contains(err.Error(), "at most 64") {
		t.Fatalf("size: %v", err)
	}
}

// The real enrollment body of an iPhone is BER (indefinite lengths,
// constructed OCTET STRING): it converts, parses to the same content and
// certificates as smallstep/pkcs7 alone, and still verifies.
func TestRealBERBody(t *testing.T) {
	body, err := os.ReadFile("../enroll/testdata/iphone12-1-ios15.7-enroll-body.p7s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(body, []byte{0x30, 0x80}) {
		t.Fatal("the capture is expected to be BER with an indefinite length")
	}
	der, err := ToDER(body, DefaultASN1)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := walk(body, DefaultASN1)
	depth := maxDepth(w, 0)
	t.Logf("real body: %d bytes BER, %d bytes DER, %d elements, depth %d", len(body), len(der), len(w.nodes), depth)
	p7, err := ParseCMS(body, DefaultASN1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := pkcs7.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p7.Content, ref.Content) || len(p7.Certificates) != len(ref.Certificates) || len(p7.Certificates) == 0 {
		t.Fatal("ParseCMS differs from pkcs7.Parse")
	}
	for i := range ref.Certificates {
		if !p7.Certificates[i].Equal(ref.Certificates[i]) {
			t.Fatal("certificates differ")
		}
	}
	if err := OneSigner(p7, SHA1, SHA256); err != nil {
		t.Fatal(err)
	}
	if err := p7.Verify(); err != nil {
		t.Fatal(err)
	}
	if err := OneSigner(p7, SHA256); err == nil || !errors.Is(err, ErrCMS) {
		t.Fatalf("SHA-1 accepted when only SHA-256 is: %v", err)
	}
}

func maxDepth(w *walker, i int) int {
	d := 0
	for c := w.nodes[i].first; c != -1; c = w.nodes[c].next {
		d = max(d, maxDepth(w, int(c)))
	}
	return d + 1
}

// nestedDefinite builds the hostile shape of finding 1: units of
// 30 len(h) | h where h is the header of a SEQUENCE that runs to the end of
// the input, past its parent.
func nestedDefinite(units int) []byte {
	b := []byte{0x05, 0x00}
	for range units {
		rest := len(b)
		var h []byte
		switch {
		case rest < 0x80:
			h = []byte{0x30, byte(rest)}
		case rest <= 0xff:
			h = []byte{0x30, 0x81, byte(rest)}
		default:
			h = []byte{0x30, 0x82, byte(rest >> 8), byte(rest)}
		}
		b = append(append([]byte{0x30, byte(len(h))}, h...), b...)
	}
	return b
}

// Finding 1: the 512-byte input in testdata (pkcs7.Parse alone: 90 bytes
// of it took 24 s and 1.2 GB) is refused at once, and everything built
// with ParseCMS or ParseSCEP is too.
func TestNestedDefiniteBER(t *testing.T) {
	in := untrustedtest.Read(t, untrustedtest.NestedBER)
	if !bytes.Equal(in, nestedDefinite(100)) {
		t.Fatal("testdata/nested-definite.ber is not nestedDefinite(100)")
	}
	for name, f := range map[string]func() error{
		"ToDER":     func() error { _, err := ToDER(in, DefaultASN1); return err },
		"ParseCMS":  func() error { _, err := ParseCMS(in, DefaultASN1); return err },
		"ParseSCEP": func() error { _, err := ParseSCEP(in, DefaultASN1); return err },
	} {
		var err error
		untrustedtest.Bounded(t, time.Second, 8<<20, func() { err = f() })
		if !errors.Is(err, ErrASN1) || !strings.Contains(err.Error(), "runs past its parent") {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// ToDER is linear: 10,000 nested indefinite levels of 2 MiB within limits
// large enough to accept them, and a 1 MiB flat list, convert quickly.
func TestToDERLinear(t *testing.T) {
	deep := append(bytes.Repeat([]byte{0x30, 0x80}, 10000), 0x05, 0x00)
	deep = append(deep, bytes.Repeat([]byte{0, 0}, 10000)...)
	flat := append([]byte{0x30, 0x83, 0x10, 0x00, 0x00}, bytes.Repeat([]byte{0x05, 0x00}, 1<<19)...)
	for _, in := range [][]byte{deep, flat} {
		untrustedtest.Bounded(t, 2*time.Second, 64<<20, func() {
			if _, err := ToDER(in, ASN1Limits{MaxSize: 4 << 20, MaxDepth: 20000, MaxElements: 1 << 20}); err != nil {
				t.Error(err)
			}
		})
	}
}

func FuzzToDER(f *testing.F) {
	body, _ := os.ReadFile("../enroll/testdata/iphone12-1-ios15.7-enroll-body.p7s")
	f.Add(body)
	f.Add(nestedDefinite(30))
	f.Add(unhex("30 80 a0 80 24 80 04 01 41 04 01 42 00 00 00 00 00 00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var der []byte
		var err error
		untrustedtest.Bounded(t, time.Second, 32<<20, func() {
			der, err = ToDER(in, DefaultASN1)
			if err == nil {
				pkcs7.Parse(der) // pkcs7's converter must stay linear on our output
			}
		})
		if err != nil {
			if !errors.Is(err, ErrASN1) {
				t.Fatalf("error not wrapping ErrASN1: %v", err)
			}
			return
		}
		again, err := ToDER(der, DefaultASN1)
		if err != nil || !bytes.Equal(again, der) {
			t.Fatalf("output is not a fixed point: %v", err)
		}
	})
}

// A small input's walk takes its nodes from the pool: ToDER of a real
// device's BER (an Mdm-Signature's size) allocates the walker and the
// DER, not the nodes; the pooled nodes of one walk do not leak into the
// next (the same DER every time, also after a refused input).
func TestToDERPooledNodes(t *testing.T) {
	body, err := os.ReadFile("../enroll/testdata/iphone12-1-ios15.7-enroll-body.p7s")
	if err != nil {
		t.Fatal(err)
	}
	want, err := ToDER(body, DefaultASN1)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ToDER(body, DefaultASN1); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Errorf("ToDER: %.0f allocations, want 2 (walker, DER)", allocs)
	}
	for range 3 {
		if _, err := ToDER(append(bytes.Clone(body), 0), DefaultASN1); err == nil {
			t.Fatal("trailing byte accepted")
		}
		if got, err := ToDER(body, DefaultASN1); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("ToDER after a pooled walk: %v, equal %v", err, bytes.Equal(got, want))
		}
	}
}
