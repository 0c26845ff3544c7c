package mdm

import (
	"reflect"
	"strings"
	"testing"

	"github.com/micromdm/plist"

	"github.com/pomona-mdm/pomona/untrusted"
)

// plainCases are documents near the form decodePlain reads: fast says
// whether it must read them (the rest go to the full decoding, which
// accepts or refuses them).
var plainCases = []struct {
	name string
	in   string
	fast bool
}{
	{"device information", `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CommandUUID</key>
	<string>76eda240-5488-4989-8339-f2ae160113c4</string>
	<key>QueryResponses</key>
	<dict>
		<key>OSVersion</key>
		<string>18.2</string>
		<key>IsSupervised</key>
		<false/>
		<key>IsMultiUser</key>
		<true/>
		<key>BatteryLevel</key>
		<real>0.5</real>
		<key>DeviceCapacity</key>
		<integer>128</integer>
	</dict>
	<key>RequestType</key>
	<string>DeviceInformation</string>
	<key>Status</key>
	<string>Acknowledged</string>
</dict>
</plist>
`, true},
	{"idle", string(doc(`<dict><key>EnrollmentID</key><string>FB833D84</string><key>Status</key><string>Idle</string></dict>`)), true},
	{"no doctype", `<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Status</key><string>Idle</string></dict></plist>`, true},
	{"CRs between elements", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<plist version=\"1.0\">\r\n<dict>\r\n<key>A</key>\r\n<array>\r\n<integer>1</integer>\r\n</array>\r\n</dict>\r\n</plist>\r\n", true},
	{"every leaf kind", string(doc(`<dict><key>s</key><string>x y</string><key>i</key><integer>-42</integer><key>big</key><integer>123456789012345678901234567890</integer><key>hex</key><integer>0x1F</integer><key>plus</key><integer>+7</integer><key>zero</key><integer>0</integer><key>minus zero</key><integer>-0</integer><key>spaced</key><integer> 5 </integer><key>r</key><real>1e400</real><key>nan</key><real>nan</real><key>dot</key><real>.5</real><key>d</key><date>2026-12-02T10:00:00Z</date><key>bad date</key><date>yesterday</date><key>data</key><data>
	AAEC
	Aw==
	</data><key>t</key><true/><key>f</key><false/></dict>`)), true},
	{"empty forms", string(doc(`<dict><key>a</key><array/><key>b</key><array></array><key>d</key><dict/><key>e</key><dict></dict><key>s</key><string/><key>t</key><string></string><key>x</key><data/></dict>`)), true},
	{"nested arrays and dicts", string(doc(`<array><dict><key>a</key><array><array><dict><key>b</key><string>c</string></dict></array></array></dict><string>z</string></array>`)), true},
	{"tab and LF in text", string(doc("<dict><key>a\tb</key><string>x\ny\tz</string></dict>")), true},
	{"CR in data (base64 drops it)", string(doc("<dict><key>d</key><data>AA\r\nEC</data></dict>")), true},
	{"repeated key: the last wins", string(doc(`<dict><key>S</key><string>1</string><key>S</key><integer>2</integer></dict>`)), true},
	{"a string root", string(doc(`<string>x</string>`)), true},

	{"CR in a string (XML makes it LF)", string(doc("<dict><key>S</key><string>a\rb</string></dict>")), false},
	{"CR in a key", string(doc("<dict><key>a\rb</key><string>x</string></dict>")), false},
	{"entity", string(doc(`<dict><key>S</key><string>a&amp;b</string></dict>`)), false},
	{"greater-than", string(doc(`<dict><key>S</key><string>a>b</string></dict>`)), false},
	{"non-ASCII", string(doc(`<dict><key>DeviceName</key><string>Zoë’s iPhone</string></dict>`)), true},
	{"non-ASCII key, four-byte UTF-8, U+FFFD", string(doc("<dict><key>Größe</key><array><string>🍐</string><string>\ufffd</string><string>\u0085\ud7ff\ue000\U0010ffff</string></array></dict>")), true},
	{"invalid UTF-8", string(doc("<dict><key>N</key><string>\xff</string></dict>")), false},
	{"invalid UTF-8 in a key", string(doc("<dict><key>\xc3</key><string>x</string></dict>")), false},
	{"overlong UTF-8", string(doc("<dict><key>N</key><string>\xc0\xaf</string></dict>")), false},
	{"encoded surrogate", string(doc("<dict><key>N</key><string>\xed\xa0\x80</string></dict>")), false},
	{"U+FFFE", string(doc("<dict><key>N</key><string>\xef\xbf\xbe</string></dict>")), false},
	{"beyond U+10FFFF", string(doc("<dict><key>N</key><string>\xf4\x90\x80\x80</string></dict>")), false},
	{"non-ASCII integer", string(doc("<dict><key>N</key><integer>١٢</integer></dict>")), false},
	{"non-ASCII date (kept as text, as the full decoding keeps it)", string(doc("<dict><key>D</key><date>2026-12-02T10:00:00Z’</date></dict>")), true},
	{"NUL", string(doc("<dict><key>N</key><string>\x00</string></dict>")), false},
	{"CDATA", string(doc(`<dict><key>S</key><string><![CDATA[x]]></string></dict>`)), false},
	{"comment", string(doc(`<dict><!-- x --><key>S</key><string>x</string></dict>`)), false},
	{"processing instruction", string(doc(`<dict><?x y?><key>S</key><string>x</string></dict>`)), false},
	{"attribute", string(doc(`<dict><key>S</key><string a="b">x</string></dict>`)), false},
	{"space in a tag", string(doc(`<dict ><key>S</key><string>x</string></dict>`)), false},
	{"true with an end tag", string(doc(`<dict><key>T</key><true></true></dict>`)), false},
	{"true with content", string(doc(`<dict><key>T</key><true>x</true></dict>`)), false},
	{"self-closing key", string(doc(`<dict><key/><string>x</string></dict>`)), false},
	{"integer that is none", string(doc(`<dict><key>N</key><integer>1_0</integer></dict>`)), false},
	{"empty integer", string(doc(`<dict><key>N</key><integer/></dict>`)), false},
	{"real that is none", string(doc(`<dict><key>R</key><real>x</real></dict>`)), false},
	{"bad base64", string(doc(`<dict><key>D</key><data>!!</data></dict>`)), false},
	{"unknown element", string(doc(`<dict><key>S</key><strong>x</strong></dict>`)), false},
	{"element inside a string", string(doc(`<dict><key>S</key><string><true/></string></dict>`)), false},
	{"mismatched close", string(doc(`<dict><key>S</key><string>x</integer></dict>`)), false},
	{"array closed as dict", string(doc(`<dict><key>A</key><array></dict></dict>`)), false},
	{"key without value", string(doc(`<dict><key>S</key></dict>`)), false},
	{"value without key", string(doc(`<dict><string>x</string></dict>`)), false},
	{"key in an array", string(doc(`<array><key>x</key></array>`)), false},
	{"text between elements", string(doc(`<dict>x<key>S</key><string>x</string></dict>`)), false},
	{"content after plist", string(doc(`<dict></dict>`)) + "x", false},
	{"second root", string(doc(`<dict></dict>`)) + "<plist/>", false},
	{"two values", string(doc(`<dict></dict><dict></dict>`)), false},
	{"truncated", `<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>S</key><dict><key>T</key><array>`, false},
	{"no XML declaration", `<plist version="1.0"><dict></dict></plist>`, false},
	{"other encoding", `<?xml version="1.0" encoding="ISO-8859-1"?><plist version="1.0"><dict></dict></plist>`, false},
	{"empty plist", string(doc(``)), false},
}

// A document decodePlain reads decodes to exactly what the full decoding
// gives; anything else goes through the full decoding (DecodeValue agrees
// with it either way).
func TestDecodePlain(t *testing.T) {
	for _, c := range plainCases {
		t.Run(c.name, func(t *testing.T) {
			_, fast := decodePlain([]byte(c.in))
			if fast != c.fast {
				t.Fatalf("read without the tokenizer: %v, want %v", fast, c.fast)
			}
			if c.fast {
				if _, err := decodeValue([]byte(c.in)); err != nil {
					t.Fatalf("the full decoding refuses it: %v", err)
				}
			}
			samePlainAsFull(t, []byte(c.in))
			sameAsFull(t, []byte(c.in))
		})
	}
}

// samePlainAsFull checks that whatever decodePlain reads, the full
// decoding reads the same.
func samePlainAsFull(t *testing.T, in []byte) {
	t.Helper()
	got, ok := decodePlain(in)
	if !ok {
		return
	}
	want, err := decodeValue(in)
	if err != nil {
		t.Fatalf("decodePlain reads %#v, the full decoding refuses: %v", got, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodePlain = %#v; the full decoding = %#v", got, want)
	}
}

// What micromdm/plist writes (devicesim's answers, and the server
// benchmarks') is read without the tokenizer.
func TestDecodePlainReadsMicromdmPlist(t *testing.T) {
	v := map[string]any{"CommandUUID": "x", "Status": "Acknowledged", "RequestType": "DeviceInformation",
		"QueryResponses":  map[string]any{"OSVersion": "18.2", "IsSupervised": false, "N": 3, "L": []any{"a", 1, true}, "E": map[string]any{}},
		"CertificateList": []any{map[string]any{"CommonName": "c", "IsIdentity": true, "Data": []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789")}}}
	for _, indent := range []bool{false, true} {
		var b []byte
		var err error
		if indent {
			b, err = plist.MarshalIndent(v, "\t")
		} else {
			b, err = plist.Marshal(v)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := decodePlain(b); !ok {
			t.Fatalf("indent %v: not read:\n%s", indent, b)
		}
		samePlainAsFull(t, b)
	}
}

// The bounds: deeper than untrusted.PlistPlainMaxDepth, or more elements than
// ResultPlist takes, is left to the full decoding (which refuses the
// latter, and applies MaxDepth to the former).
func TestDecodePlainLimits(t *testing.T) {
	nest := func(n int) []byte {
		return doc(strings.Repeat("<array>", n) + strings.Repeat("</array>", n))
	}
	// <plist> is level 1: n arrays reach level n+1.
	if _, ok := decodePlain(nest(untrusted.PlistPlainMaxDepth - 1)); !ok {
		t.Errorf("%d levels not read", untrusted.PlistPlainMaxDepth)
	}
	if _, ok := decodePlain(nest(untrusted.PlistPlainMaxDepth)); ok {
		t.Errorf("%d levels read", untrusted.PlistPlainMaxDepth+1)
	}
	sameAsFull(t, nest(untrusted.PlistPlainMaxDepth))
	if _, err := DecodeValue(nest(MaxDepth + 1)); err == nil {
		t.Error("beyond MaxDepth accepted")
	}
	// MaxElements: <plist>, <array> and n <true/>.
	many := func(n int) []byte { return doc("<array>" + strings.Repeat("<true/>", n) + "</array>") }
	if _, ok := decodePlain(many(ResultPlist.MaxElements - 2)); !ok {
		t.Error("MaxElements elements not read")
	}
	for _, b := range [][]byte{many(ResultPlist.MaxElements - 1), doc("<array>" + strings.Repeat("<string/>", ResultPlist.MaxElements-1) + "</array>")} {
		if _, ok := decodePlain(b); ok {
			t.Error("MaxElements+1 elements read")
		}
		if _, err := DecodeValue(b); err == nil {
			t.Error("MaxElements+1 elements accepted")
		}
	}
}

// FuzzDecodePlain: whatever decodePlain reads, the full decoding reads the
// same.
func FuzzDecodePlain(f *testing.F) {
	for _, c := range plainCases {
		f.Add([]byte(c.in))
	}
	for _, c := range stringDictCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		samePlainAsFull(t, b)
	})
}

// deviceInformationAck is the server benchmarks' Acknowledged answer to a
// DeviceInformation command (server/hotpath_bench_test.go), as devicesim
// writes it.
func deviceInformationAck(t testing.TB) []byte {
	return deviceInformationAckNamed(t, "")
}

// deviceInformationAckNamed is deviceInformationAck with a DeviceName
// among the answers ("": none).
func deviceInformationAckNamed(t testing.TB, name string) []byte {
	q := map[string]any{"OSVersion": "18.2", "ModelName": "iPhone", "BuildVersion": "22C161", "IsSupervised": false}
	if name != "" {
		q["DeviceName"] = name
	}
	b, err := plist.MarshalIndent(map[string]any{"Status": "Acknowledged", "CommandUUID": "6E1F2C3A-0B7D-4C1E-9E55-1A2B3C4D5E6F",
		"RequestType": "DeviceInformation", "EnrollmentID": "FB833D84-0CA0-4E7E-9A25-6D2BD5E1A7B1",
		"QueryResponses": q}, "\t")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A DeviceInformation result costs its map, its strings and their
// interface values: 13 allocations here, 217 through encoding/xml's tokens
// (the full decoding; the test fails with decodePlain switched off).
func TestDecodeResultAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	// A device name with a typographic apostrophe (iOS's default,
	// "Alice’s iPhone") took the full decoding until Session 14 (~230
	// allocations).
	for _, name := range []string{"", "Alice’s iPhone"} {
		b := deviceInformationAckNamed(t, name)
		n := testing.AllocsPerRun(100, func() {
			if _, err := DecodeResult(b); err != nil {
				t.Fatal(err)
			}
		})
		if n > 20 {
			t.Errorf("%v allocations per DeviceInformation result (DeviceName %q), want at most 20", n, name)
		}
	}
}

func BenchmarkDecodeDeviceInformation(b *testing.B) {
	for _, c := range []struct{ name, device string }{{"ASCII", ""}, {"DeviceName=Alice’s iPhone", "Alice’s iPhone"}} {
		b.Run(c.name, func(b *testing.B) {
			body := deviceInformationAckNamed(b, c.device)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := DecodeResult(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
