package mdm

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/micromdm/plist"

	"github.com/pomona-mdm/pomona/untrusted"
)

// stringDictCases are documents near the form untrusted.PlistStringDict
// reads: fast says whether it must read them (the rest go to the full
// decoding, which accepts or refuses them).
var stringDictCases = []struct {
	name string
	in   string
	fast bool
}{
	{"idle", string(doc(`<dict><key>EnrollmentID</key><string>FB833D84</string><key>Status</key><string>Idle</string></dict>`)), true},
	{"no doctype", `<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Status</key><string>Idle</string></dict></plist>`, true},
	{"whitespace everywhere", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\t<plist version=\"1.0\">\n<dict>\n\t<key>Status</key>\n\t<string>Idle</string>\n</dict>\n</plist>\n\n", true},
	{"empty dict", string(doc(`<dict></dict>`)), true},
	{"empty strings", string(doc(`<dict><key></key><string></string></dict>`)), true},
	{"repeated key: the last wins", string(doc(`<dict><key>Status</key><string>Acknowledged</string><key>Status</key><string>Idle</string></dict>`)), true},
	{"spaces and punctuation kept", string(doc(`<dict><key> a b </key><string> "x" 'y' ; ] ]] = / </string></dict>`)), true},
	{"entity", string(doc(`<dict><key>Status</key><string>Idle&amp;</string></dict>`)), false},
	{"character reference", string(doc(`<dict><key>Status</key><string>&#73;dle</string></dict>`)), false},
	{"greater-than", string(doc(`<dict><key>Status</key><string>a>b</string></dict>`)), false},
	{"CR in text (XML makes it LF)", string(doc("<dict><key>Status</key><string>a\rb</string></dict>")), false},
	{"tab in text", string(doc("<dict><key>Status</key><string>a\tb</string></dict>")), false},
	{"non-ASCII", string(doc(`<dict><key>Name</key><string>Zoë</string></dict>`)), false},
	{"invalid UTF-8", string(doc("<dict><key>Name</key><string>\xff</string></dict>")), false},
	{"NUL", string(doc("<dict><key>Name</key><string>\x00</string></dict>")), false},
	{"CDATA", string(doc(`<dict><key>Status</key><string><![CDATA[Idle]]></string></dict>`)), false},
	{"comment", string(doc(`<dict><!-- x --><key>Status</key><string>Idle</string></dict>`)), false},
	{"integer value", string(doc(`<dict><key>N</key><integer>1</integer></dict>`)), false},
	{"nested dict", string(doc(`<dict><key>D</key><dict></dict></dict>`)), false},
	{"self-closing string", string(doc(`<dict><key>S</key><string/></dict>`)), false},
	{"self-closing dict", string(doc(`<dict/>`)), false},
	{"attribute on dict", string(doc(`<dict a="b"><key>S</key><string>x</string></dict>`)), false},
	{"namespace on plist", `<?xml version="1.0" encoding="UTF-8"?><plist version="1.0" xmlns="urn:x"><dict></dict></plist>`, false},
	{"other version", `<?xml version="1.1" encoding="UTF-8"?><plist version="1.0"><dict></dict></plist>`, false},
	{"other encoding", `<?xml version="1.0" encoding="ISO-8859-1"?><plist version="1.0"><dict></dict></plist>`, false},
	{"no XML declaration", `<plist version="1.0"><dict></dict></plist>`, false},
	{"leading space", ` <?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict></dict></plist>`, false},
	{"BOM", "\ufeff<?xml version=\"1.0\" encoding=\"UTF-8\"?><plist version=\"1.0\"><dict></dict></plist>", false},
	{"key without value", string(doc(`<dict><key>S</key></dict>`)), false},
	{"value without key", string(doc(`<dict><string>x</string></dict>`)), false},
	{"key not closed", string(doc(`<dict><key>S<string>x</string></dict>`)), false},
	{"mismatched close", string(doc(`<dict><key>S</string><string>x</key></dict>`)), false},
	{"content after plist", string(doc(`<dict></dict>`)) + "x", false},
	{"second root", string(doc(`<dict></dict>`)) + "<plist/>", false},
	{"truncated", `<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>S</key><string>x</string></dict>`, false},
	{"not a dict", string(doc(`<string>x</string>`)), false},
	{"uppercase element", string(doc(`<dict><KEY>S</KEY><string>x</string></dict>`)), false},
	{"text between elements", string(doc(`<dict>x<key>S</key><string>x</string></dict>`)), false},
}

// A document PlistStringDict reads decodes to exactly what the full
// decoding gives; anything else still goes through the full decoding.
func TestDecodeValueStringDict(t *testing.T) {
	for _, c := range stringDictCases {
		t.Run(c.name, func(t *testing.T) {
			_, fast := untrusted.PlistStringDict([]byte(c.in), ResultPlist)
			if fast != c.fast {
				t.Fatalf("read without the tokenizer: %v, want %v", fast, c.fast)
			}
			sameAsFull(t, []byte(c.in))
		})
	}
	// More pairs than the form takes: the full decoding, the same map.
	var many strings.Builder
	for i := range 17 {
		many.WriteString("<key>k" + string(rune('a'+i)) + "</key><string>v</string>")
	}
	in := doc("<dict>" + many.String() + "</dict>")
	if _, fast := untrusted.PlistStringDict(in, ResultPlist); fast {
		t.Fatal("17 pairs read without the tokenizer")
	}
	sameAsFull(t, in)
}

// sameAsFull checks that DecodeValue and the full decoding agree on in.
func sameAsFull(t *testing.T, in []byte) {
	t.Helper()
	got, err := DecodeValue(in)
	want, werr := decodeValue(in)
	if (err == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeValue = %#v, %v; the full decoding = %#v, %v", got, err, want, werr)
	}
}

// The limits hold on the fast form too: a document beyond them is left
// to the full decoding, which refuses it.
func TestPlistStringDictLimits(t *testing.T) {
	in := doc(`<dict><key>Status</key><string>Idle</string></dict>`)
	for _, lim := range []untrusted.PlistLimits{{MaxSize: len(in) - 1}, {MaxDepth: 2}, {MaxElements: 3}} {
		if _, ok := untrusted.PlistStringDict(in, lim); ok {
			t.Errorf("read within %+v", lim)
		}
		if toks, err := untrusted.NewPlistTokens(in, lim); err == nil {
			// Depth and elements are refused by the tokens as they pass.
			var terr error
			for terr == nil {
				_, terr = toks.Token()
			}
			if errors.Is(terr, io.EOF) {
				t.Errorf("the tokens accept what %+v refuses", lim)
			}
		}
	}
	if pairs, ok := untrusted.PlistStringDict(in, untrusted.PlistLimits{MaxSize: len(in), MaxDepth: 3, MaxElements: 4}); !ok || len(pairs) != 2 {
		t.Fatalf("not read at its limits: %v %v", pairs, ok)
	}
}

// A device's Idle (Apple's, and devicesim's through micromdm/plist) is
// decoded without the XML tokenizer: a handful of allocations, not ~60.
func TestDecodeIdleAllocations(t *testing.T) {
	sim, err := plist.Marshal(map[string]any{"Status": "Idle", "EnrollmentID": "FB833D84-50C0-41DD-99DE-F748E44FFEF5"})
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{"apple": read(t, "adue-ios18.2.1-Idle.plist"), "devicesim": sim} {
		if _, ok := untrusted.PlistStringDict(body, ResultPlist); !ok {
			t.Fatalf("%s: the Idle is not read without the tokenizer:\n%s", name, body)
		}
		allocs := testing.AllocsPerRun(100, func() {
			if r, err := DecodeResult(body); err != nil || r.Status != Idle {
				t.Fatal(r, err)
			}
		})
		if allocs > 10 {
			t.Errorf("%s: DecodeResult of an Idle: %.0f allocations", name, allocs)
		}
	}
}

// FuzzDecodeValueStringDict: whatever PlistStringDict reads, the full
// decoding reads the same (so the form accepts nothing the tokens refuse,
// and the values are the same).
func FuzzDecodeValueStringDict(f *testing.F) {
	for _, c := range stringDictCases {
		f.Add([]byte(c.in))
	}
	f.Add(read(f, "adue-ios18.2.1-Idle.plist"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, ok := untrusted.PlistStringDict(b, ResultPlist); !ok {
			return
		}
		want, err := decodeValue(b)
		if err != nil {
			t.Fatalf("read without the tokenizer, refused by the full decoding: %v", err)
		}
		if got, _ := DecodeValue(b); !reflect.DeepEqual(got, want) {
			t.Fatalf("DecodeValue = %#v, the full decoding = %#v", got, want)
		}
	})
}
