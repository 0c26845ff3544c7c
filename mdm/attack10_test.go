package mdm

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/micromdm/plist"

	"github.com/pomona-mdm/pomona/untrusted"
)

// Session 10, lane attack: the fields a command-channel body is
// authorised and routed by (Status, the identity, CommandUUID), read by
// DecodeResult — whose plain-string dicts now skip encoding/xml
// (untrusted.PlistStringDict) — against two independent readers of the
// same bytes: DecodeResult through the full decoding only, and
// micromdm/plist's typed decoder (encoding/xml), which the check-in path
// and earlier sessions used. An accepted body read differently by a
// reader the server could route through would be a parser-differential
// bypass (another device's UDID, another command's UUID, an Idle read as
// a result).

// resultFields is what the server decides by.
type resultFields struct {
	EnrollmentID     string `plist:"EnrollmentID"`
	EnrollmentUserID string `plist:"EnrollmentUserID"`
	UDID             string `plist:"UDID"`
	UserID           string `plist:"UserID"`
	Status           string `plist:"Status"`
	CommandUUID      string `plist:"CommandUUID"`
	RequestType      string `plist:"RequestType"`
}

func fieldsOf(r *Result) resultFields {
	return resultFields{r.EnrollmentID, r.EnrollmentUserID, r.UDID, r.UserID, r.Status, r.CommandUUID, r.RequestType}
}

// decodeResultFull is DecodeResult with the full decoding only.
func decodeResultFull(b []byte) (*Result, error) {
	doc, err := decodeValue(b)
	if err != nil {
		return nil, err
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, malformed("not a dict")
	}
	r, err := resultOf(m)
	if err != nil {
		return nil, err
	}
	r.Raw, r.Doc = b, m
	return r, nil
}

// attackBodies are hostile command-channel bodies near the fast form.
var attackBodies = []string{
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><string>A</string><key>Status</key><string>Idle</string></dict></plist>`,
	// A second dict after </dict>, in the root: the fast form must not stop at the first.
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><string>A</string><key>Status</key><string>Idle</string></dict><dict><key>UDID</key><string>B</string></dict></plist>`,
	// Keys differing in case, repeated keys in both orders.
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>udid</key><string>B</string><key>UDID</key><string>A</string><key>Status</key><string>Idle</string></dict></plist>`,
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><string>A</string><key>UDID</key><string>B</string><key>Status</key><string>Idle</string></dict></plist>`,
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Status</key><string>Acknowledged</string><key>CommandUUID</key><string>X</string><key>Status</key><string>Idle</string><key>UDID</key><string>A</string></dict></plist>`,
	// Entities and references that the XML decoders expand.
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><string>&#x41;</string><key>Status</key><string>&#73;dle</string></dict></plist>`,
	`<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE plist [<!ENTITY u "B">]><plist version="1.0"><dict><key>UDID</key><string>&u;</string><key>Status</key><string>Idle</string></dict></plist>`,
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><string><![CDATA[A]]></string><key>Status</key><string>Idle</string></dict></plist>`,
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><string>A<!--B--></string><key>Status</key><string>Idle</string></dict></plist>`,
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><string>A<?pi B?></string><key>Status</key><string>Idle</string></dict></plist>`,
	// Namespaces, attributes, self-closing, nested.
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><x:string xmlns:x="u">A</x:string><key>Status</key><string>Idle</string></dict></plist>`,
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><string a="b">A</string><key>Status</key><string>Idle</string></dict></plist>`,
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><string/><key>Status</key><string>Idle</string></dict></plist>`,
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><dict><key>UDID</key><string>B</string></dict><key>Status</key><string>Idle</string></dict></plist>`,
	// Whitespace inside text, BOM, CR, trailing garbage.
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?><plist version=\"1.0\"><dict><key>UDID</key><string> A\r\n</string><key>Status</key><string>Idle</string></dict></plist>",
	"\ufeff<?xml version=\"1.0\" encoding=\"UTF-8\"?><plist version=\"1.0\"><dict><key>UDID</key><string>A</string><key>Status</key><string>Idle</string></dict></plist>",
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><string>A</string><key>Status</key><string>Idle</string></dict></plist><plist><dict/></plist>`,
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><string>A</string><key>Status</key><string>Idle</string></dict></plist>garbage`,
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><string>A</string><key>Status</key><string>Idle</string></dict>`,
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?><plist version=\"1.0\"><dict><key>UDID</key><string>A\xff</string><key>Status</key><string>Idle</string></dict></plist>",
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><string>A</string><key>Status</key><string>Idle</string></dict></plist   >`,
	`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict ><key>UDID</key><string>A</string><key>Status</key><string>Idle</string></dict></plist>`,
}

// FuzzDecodeResultDifferential: a body DecodeResult accepts reads the same
// fields through the full decoding alone, and — where micromdm/plist
// accepts it as well — the same fields as micromdm/plist reads.
func FuzzDecodeResultDifferential(f *testing.F) {
	for _, b := range attackBodies {
		f.Add([]byte(b))
	}
	for _, c := range stringDictCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkResultDifferential(t, b)
	})
}

func checkResultDifferential(t *testing.T, b []byte) {
	t.Helper()
	r, err := DecodeResult(b)
	full, ferr := decodeResultFull(b)
	_, fast := untrusted.PlistStringDict(b, ResultPlist)
	if err != nil {
		if fast {
			// The fast form was read, and refused after: the full
			// decoding must refuse it too, or agree on the fields.
			if ferr == nil {
				if _, verr := DecodeResult(b); verr == nil {
					t.Fatalf("fast form refused but the full decoding accepts")
				}
			}
		}
		return
	}
	if ferr != nil {
		t.Fatalf("DecodeResult (fast %v) accepts, the full decoding refuses: %v", fast, ferr)
	}
	if got, want := fieldsOf(r), fieldsOf(full); got != want {
		t.Fatalf("fast %v: DecodeResult reads %+v, the full decoding %+v", fast, got, want)
	}
	if !reflect.DeepEqual(r.Doc, full.Doc) {
		t.Fatalf("fast %v: documents differ: %#v vs %#v", fast, r.Doc, full.Doc)
	}
	var typed resultFields
	if untrusted.CheckPlist(b, ResultPlist) != nil {
		return
	}
	if plist.NewXMLDecoder(bytes.NewReader(b)).Decode(&typed) != nil {
		return
	}
	if got := fieldsOf(r); got != typed {
		t.Fatalf("fast %v: DecodeResult reads %+v, micromdm/plist %+v", fast, got, typed)
	}
}

// The hostile bodies give the same fields through every reader (or are
// refused).
func TestDecodeResultDifferentialCorpus(t *testing.T) {
	for i, b := range attackBodies {
		t.Run("", func(t *testing.T) {
			_ = i
			checkResultDifferential(t, []byte(b))
		})
	}
}
