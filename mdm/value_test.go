package mdm

import (
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/micromdm/plist"

	"github.com/pomona-mdm/pomona/untrusted/untrustedtest"
)

func doc(inner string) []byte {
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">` + inner + `</plist>`)
}

// Every kind of plist value becomes something json.Marshal accepts, and
// numbers stay exact.
func TestDecodeValueKinds(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     any
		json     string
	}{
		{"NaN", `<real>nan</real>`, "NaN", `"NaN"`},
		{"NaN upper case", `<real>NaN</real>`, "NaN", `"NaN"`},
		{"+Inf", `<real>+infinity</real>`, "Infinity", `"Infinity"`},
		{"inf", `<real>inf</real>`, "Infinity", `"Infinity"`},
		{"-Inf", `<real>-inf</real>`, "-Infinity", `"-Infinity"`},
		{"real", `<real>0.5</real>`, json.Number("0.5"), `0.5`},
		{"real kept as sent", `<real> 1.50E+01 </real>`, json.Number("1.50E+01"), `1.50E+01`},
		{"real normalised", `<real>.5</real>`, json.Number("0.5"), `0.5`},
		{"leading plus dropped", `<real>+1e10</real>`, json.Number("1e10"), `1e10`},
		{"beyond float64, no JSON number: the text", `<real>.5e999</real>`, ".5e999", `".5e999"`},
		{"hex real normalised", `<real>0x1p-2</real>`, json.Number("0.25"), `0.25`},
		{"real beyond float64 as text", `<real>1e400</real>`, "1e400", `"1e400"`},
		{"tiny real kept as sent", `<real>-1e-400</real>`, json.Number("-1e-400"), `-1e-400`},
		{"integer", `<integer>-42</integer>`, json.Number("-42"), `-42`},
		{"integer beyond uint64", `<integer>99999999999999999999999</integer>`, json.Number("99999999999999999999999"), `99999999999999999999999`},
		{"integer below int64", `<integer>-9223372036854775809</integer>`, json.Number("-9223372036854775809"), `-9223372036854775809`},
		{"uint64 max", `<integer>18446744073709551615</integer>`, json.Number("18446744073709551615"), `18446744073709551615`},
		{"hex integer", `<integer>0x10</integer>`, json.Number("16"), `16`},
		{"leading plus and zeros", `<integer>+007</integer>`, json.Number("7"), `7`},
		{"string", `<string>a &amp; b</string>`, "a & b", `"a \u0026 b"`},
		{"empty string", `<string/>`, "", `""`},
		{"date", `<date>2025-01-02T03:04:05Z</date>`, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), `"2025-01-02T03:04:05Z"`},
		{"date that does not parse kept as text", `<date>yesterday</date>`, "yesterday", `"yesterday"`},
		{"data", "<data>\n\tAAE=\n</data>", []byte{0, 1}, `"AAE="`},
		{"booleans", `<array><true/><false/></array>`, []any{true, false}, `[true,false]`},
		{"dict, last key wins", `<dict><key>a</key><real>nan</real><key>a</key><integer>1</integer><key>b</key><dict/></dict>`,
			map[string]any{"a": json.Number("1"), "b": map[string]any{}}, `{"a":1,"b":{}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, err := DecodeValue(doc(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(v, c.want) {
				t.Fatalf("got %#v, want %#v", v, c.want)
			}
			b, err := json.Marshal(v)
			if err != nil || string(b) != c.json {
				t.Fatalf("JSON %s (%v), want %s", b, err, c.json)
			}
		})
	}
}

func TestDecodeValueRefuses(t *testing.T) {
	deep := strings.Repeat("<array>", MaxDepth+1) + strings.Repeat("</array>", MaxDepth+1)
	for _, c := range []struct{ name, in string }{
		{"not a number", `<real>many</real>`},
		{"not an integer", `<integer>1.5</integer>`},
		{"underscores", `<integer>1_000</integer>`},
		{"bad base64", `<data>!!</data>`},
		{"unknown element", `<dict><key>a</key><float>1</float></dict>`},
		{"key without value", `<dict><key>a</key></dict>`},
		{"value without key", `<dict><string>a</string></dict>`},
		{"element inside a string", `<string><b/></string>`},
		{"text between elements", `<array>x<true/></array>`},
		{"two values", `<true/><false/>`},
		{"empty plist", ``},
		{"deep nesting", deep},
		{"invalid UTF-8", "<string>a\xff\xfeb</string>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := DecodeValue(doc(c.in)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	if _, err := DecodeValue([]byte("bplist00\x08")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("binary plist: %v", err)
	}
}

// The real captures decode to the same values as micromdm/plist gives
// (apart from the JSON-safe number form).
func TestDecodeValueCaptures(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.plist")
	if len(files) == 0 {
		t.Fatal("no captures")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var want map[string]any
		if err := plist.Unmarshal(b, &want); err != nil {
			t.Fatal(f, err)
		}
		got, err := DecodeDict(b)
		if err != nil {
			t.Fatal(f, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d keys, want %d", f, len(got), len(want))
		}
		for k, w := range want {
			g := got[k]
			if n, ok := g.(json.Number); ok {
				// micromdm/plist gives uint64/int64/float64.
				if x, err := n.Float64(); err != nil || x != toFloat(w) {
					t.Fatalf("%s %s: %v, want %v", f, k, g, w)
				}
				continue
			}
			if _, ok := w.(map[string]any); ok {
				continue // compared by the JSON round trip below
			}
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("%s %s: %#v, want %#v", f, k, g, w)
			}
		}
		if _, err := json.Marshal(got); err != nil {
			t.Fatal(f, err)
		}
	}
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case uint64:
		return float64(x)
	case int64:
		return float64(x)
	case float64:
		return x
	}
	return -1
}

// A result holding values no typed decoder or JSON encoder takes is still
// a result: decoded, and its inventory marshals.
func TestResultWithUnrepresentableValues(t *testing.T) {
	for _, v := range []string{`<real>nan</real>`, `<real>-inf</real>`, `<integer>99999999999999999999999</integer>`, `<real>1e400</real>`} {
		t.Run(v, func(t *testing.T) {
			body := doc(`<dict><key>EnrollmentID</key><string>E1</string><key>CommandUUID</key><string>C1</string>
				<key>Status</key><string>Acknowledged</string><key>QueryResponses</key><dict><key>BatteryLevel</key>` + v +
				`<key>OSVersion</key><string>18.2</string></dict></dict>`)
			r, err := DecodeResult(body)
			if err != nil {
				t.Fatal(err)
			}
			if r.EnrollmentID != "E1" || r.CommandUUID != "C1" || r.Status != Acknowledged || string(r.Raw) != string(body) {
				t.Fatalf("%+v", r)
			}
			section, data, f, ok := Inventory("DeviceInformation", r.Raw)
			if !ok || section != "device_information" || f.OSVersion != "18.2" {
				t.Fatalf("inventory: %v %v %+v", section, ok, f)
			}
			if _, err := json.Marshal(map[string]any{"data": data}); err != nil {
				t.Fatal(err)
			}
			if _, err := json.Marshal(r.Doc); err != nil {
				t.Fatal(err)
			}
		})
	}
	// The envelope's fields must be strings.
	if _, err := DecodeResult(doc(`<dict><key>EnrollmentID</key><string>E1</string><key>Status</key><integer>1</integer></dict>`)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("integer Status: %v", err)
	}
	// ErrorChain is read leniently.
	r, err := DecodeResult(doc(`<dict><key>EnrollmentID</key><string>E1</string><key>CommandUUID</key><string>C1</string>
		<key>Status</key><string>Error</string><key>ErrorChain</key><array><string>odd</string><dict><key>ErrorCode</key>
		<integer>12021</integer><key>ErrorDomain</key><string>MCMDMErrorDomain</string></dict><dict><key>ErrorCode</key>
		<integer>99999999999999999999</integer></dict></array></dict>`))
	if err != nil || len(r.ErrorChain) != 2 || r.ErrorChain[0].ErrorCode != 12021 || r.ErrorChain[0].ErrorDomain != "MCMDMErrorDomain" || r.ErrorChain[1].ErrorCode != 0 {
		t.Fatalf("ErrorChain: %+v %v", r, err)
	}
}

// TestDecodeValueBounds: DecodeValue reads its input once and enforces
// ResultPlist's bounds while it decodes (untrusted.PlistTokens): each of
// them refuses, with untrusted's reason, what the separate CheckPlist pass
// refused before.
func TestDecodeValueBounds(t *testing.T) {
	for _, tc := range []struct {
		name, in, err string
	}{
		{"elements", `<plist><array>` + strings.Repeat(`<true/>`, ResultPlist.MaxElements) + `</array></plist>`, "more than 400000 elements"},
		{"size", `<plist><string>` + strings.Repeat("a", MaxResult) + `</string></plist>`, "at most 8388608"},
		{"binary", "bplist00\x00\x01", "binary property lists are not accepted"},
		{"foreign element", `<plist><dict><key>a</key><html/></dict></plist>`, "<html> is not part"},
		{"default namespace", `<plist xmlns="urn:x"><dict/></plist>`, "not part"},
		{"two roots", `<plist><dict/></plist><plist><dict/></plist>`, "content after </plist>"},
		{"depth", `<plist>` + strings.Repeat(`<array>`, MaxDepth+1) + strings.Repeat(`</array>`, MaxDepth+1) + `</plist>`, "deeper than 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeValue([]byte(tc.in))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
	// One element fewer than the bound decodes.
	v, err := DecodeValue([]byte(`<plist><array>` + strings.Repeat(`<true/>`, ResultPlist.MaxElements-2) + `</array></plist>`))
	if err != nil || len(v.([]any)) != ResultPlist.MaxElements-2 {
		t.Fatalf("at the bound: %v", err)
	}
}

// TestDecodeValueLongIntegers: an <integer> as long as a result may be
// (8 MB) decodes in linear time. big.Int's decimal conversion is
// quadratic: one 8 MB integer in an enrolled device's result took
// 3 min 13 s of CPU to decode (load ~6), and again on every admin view of
// the stored result. A long decimal keeps its exact digits (no sign "+");
// long text big.Int would read in another base (0x, a leading 0: octal)
// is beyond any real value and refused.
func TestDecodeValueLongIntegers(t *testing.T) {
	n := MaxResult - 300
	for _, tc := range []struct {
		name, text, want string
	}{
		{"decimal", strings.Repeat("7", n), strings.Repeat("7", n)},
		{"negative", "-" + strings.Repeat("9", n), "-" + strings.Repeat("9", n)},
		{"plus", "+1" + strings.Repeat("0", n), "1" + strings.Repeat("0", n)},
		{"leading zeros (octal to big.Int)", "-" + strings.Repeat("0", n/2) + strings.Repeat("7", n/2), ""},
		{"zeros", strings.Repeat("0", n), ""},
		{"hexadecimal", "0x" + strings.Repeat("f", n), ""},
		{"not digits", strings.Repeat("7", n) + "a", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v any
			var err error
			untrustedtest.Bounded(t, 2*time.Second, 256<<20, func() {
				v, err = DecodeValue(doc(`<integer>` + tc.text + `</integer>`))
			})
			if tc.want == "" {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err != nil || v != json.Number(tc.want) {
				t.Fatalf("%.20v… %v", v, err)
			}
		})
	}
	// Short ones are what big.Int gives, as before.
	for _, s := range []string{"0", "-0", "+0", "007", "-007", "+18446744073709551616", "-9223372036854775809", "0x10", "-0x10", "0X1f", "0b101", "0o17", "017"} {
		v, err := DecodeValue(doc(`<integer> ` + s + ` </integer>`))
		b, ok := new(big.Int).SetString(strings.TrimPrefix(s, "+"), 0)
		if !ok || err != nil || v != json.Number(b.String()) {
			t.Fatalf("%s: %v %v, want %v", s, v, err, b)
		}
	}
}
