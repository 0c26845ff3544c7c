package untrusted

import (
	"encoding/xml"
	"io"
	"reflect"
	"strings"
	"testing"
)

// plainText is a leaf function that keeps every TEXT as is.
func plainText(_, text string) (any, bool) { return text, true }

// tokensAccept reads in's tokens to the end within lim.
func tokensAccept(in []byte, lim PlistLimits) error {
	toks, err := NewPlistTokens(in, lim)
	if err != nil {
		return err
	}
	for {
		if _, err := toks.Token(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

const plainDoc = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>QueryResponses</key>
	<dict>
		<key>OSVersion</key>
		<string>18.2</string>
		<key>IsSupervised</key>
		<false/>
		<key>L</key>
		<array><integer>1</integer><dict/><array/><string/></array>
	</dict>
	<key>Status</key>
	<string>Acknowledged</string>
</dict>
</plist>
`

// Every document PlistPlain reads is one PlistTokens accepts within the
// same limits; at the limits it reads, one element or level past them it
// does not.
func TestPlistPlainWithinTokens(t *testing.T) {
	lim := PlistLimits{MaxSize: len(plainDoc), MaxDepth: 5, MaxElements: 16}
	if _, ok := PlistPlain([]byte(plainDoc), lim, plainText); !ok {
		t.Fatal("not read at its limits")
	}
	if err := tokensAccept([]byte(plainDoc), lim); err != nil {
		t.Fatal(err)
	}
	for _, l := range []PlistLimits{{MaxSize: len(plainDoc) - 1, MaxDepth: 5, MaxElements: 16}, {MaxSize: len(plainDoc), MaxDepth: 4, MaxElements: 16},
		{MaxSize: len(plainDoc), MaxDepth: 5, MaxElements: 15}} {
		if _, ok := PlistPlain([]byte(plainDoc), l, plainText); ok {
			t.Errorf("read beyond %+v", l)
		}
		if tokensAccept([]byte(plainDoc), l) == nil {
			t.Errorf("the tokens accept beyond %+v", l)
		}
	}
	deep := `<?xml version="1.0" encoding="UTF-8"?><plist version="1.0">` + strings.Repeat("<array>", PlistPlainMaxDepth) + strings.Repeat("</array>", PlistPlainMaxDepth) + `</plist>`
	if _, ok := PlistPlain([]byte(deep), DefaultPlist, plainText); ok {
		t.Error("read deeper than PlistPlainMaxDepth")
	}
}

// leafTexts are the texts PlistPlain hands its leaf function, in document
// order, with XML's end-of-line handling applied (only DATA may hold a
// CR, which PlistPlain leaves to the base64 decoding); ok is false when
// it does not read in.
func leafTexts(in []byte, lim PlistLimits) (texts []string, ok bool) {
	eol := strings.NewReplacer("\r\n", "\n", "\r", "\n")
	texts = []string{}
	_, ok = PlistPlain(in, lim, func(_, text string) (any, bool) {
		texts = append(texts, eol.Replace(text))
		return text, true
	})
	return texts, ok
}

// tokenTexts are the character data of in's leaf elements (string,
// integer, real, date, data: each element's CharData joined) as
// PlistTokens reads them, in document order.
func tokenTexts(in []byte, lim PlistLimits) ([]string, error) {
	toks, err := NewPlistTokens(in, lim)
	if err != nil {
		return nil, err
	}
	texts := []string{}
	var cur *strings.Builder
	for {
		tok, err := toks.Token()
		if err == io.EOF {
			return texts, nil
		} else if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "string", "integer", "real", "date", "data":
				cur = &strings.Builder{}
			}
		case xml.CharData:
			if cur != nil {
				cur.Write(t)
			}
		case xml.EndElement:
			if cur != nil {
				texts = append(texts, cur.String())
				cur = nil
			}
		}
	}
}

// Text above ASCII is read as it stands when it is UTF-8 of characters XML
// allows, exactly as the tokens read it; anything encoding/xml refuses
// (not UTF-8, an encoded surrogate, U+FFFE, U+FFFF) is not read.
func TestPlistPlainUTF8(t *testing.T) {
	doc := func(text string) []byte {
		return []byte(`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>` + text + `</key><string>` + text + `</string></dict></plist>`)
	}
	for _, text := range []string{"Alice’s iPhone", "Zoë", "日本語", "🍐 emoji", "\u0080\u0085\u00a0", "\ud7ff\ue000\ufffd", "\U00010000\U0010ffff"} {
		in := doc(text)
		got, ok := leafTexts(in, DefaultPlist)
		if !ok {
			t.Errorf("%q: not read", text)
			continue
		}
		want, err := tokenTexts(in, DefaultPlist)
		if err != nil {
			t.Fatalf("%q: the tokens refuse it: %v", text, err)
		}
		if !reflect.DeepEqual(got, want) || got[0] != text {
			t.Errorf("%q: read %q, the tokens %q", text, got, want)
		}
	}
	for _, text := range []string{"\xff", "a\x80", "\xc0\xaf", "\xe2\x80", "\xe2\x80x", "\xed\xa0\x80", "\xef\xbf\xbe", "\xef\xbf\xbf", "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80"} {
		in := doc(text)
		if _, ok := leafTexts(in, DefaultPlist); ok {
			t.Errorf("%q: read", text)
		}
		if tokensAccept(in, DefaultPlist) == nil {
			t.Errorf("%q: the tokens accept it (the case shows nothing)", text)
		}
	}
}

// FuzzPlistPlain: whatever PlistPlain reads, PlistTokens accepts within
// the same limits, and every leaf's text is the character data the tokens
// read in it.
func FuzzPlistPlain(f *testing.F) {
	f.Add([]byte(plainDoc))
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>a</key><data>AA
EC</data></dict></plist>`))
	f.Add([]byte("<?xml version=\"1.0\" encoding=\"UTF-8\"?><plist version=\"1.0\"><data>AA\r\nEC\rAw==</data></plist>"))
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Zoë</key><string>Alice’s iPhone 🍐</string></dict></plist>`))
	f.Add([]byte("<?xml version=\"1.0\" encoding=\"UTF-8\"?><plist version=\"1.0\"><array><string>\xef\xbf\xbd\xef\xbf\xbe</string></array></plist>"))
	lim := PlistLimits{MaxSize: 4096, MaxDepth: 6, MaxElements: 40}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, ok := leafTexts(in, lim)
		if !ok {
			return
		}
		want, err := tokenTexts(in, lim)
		if err != nil {
			t.Fatalf("PlistPlain reads what the tokens refuse: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("PlistPlain's texts %q, the tokens' %q", got, want)
		}
	})
}
