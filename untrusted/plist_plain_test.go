package untrusted

import (
	"io"
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

// FuzzPlistPlain: whatever PlistPlain reads, PlistTokens accepts within
// the same limits.
func FuzzPlistPlain(f *testing.F) {
	f.Add([]byte(plainDoc))
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>a</key><data>AA
EC</data></dict></plist>`))
	lim := PlistLimits{MaxSize: 4096, MaxDepth: 6, MaxElements: 40}
	f.Fuzz(func(t *testing.T, in []byte) {
		if _, ok := PlistPlain(in, lim, plainText); ok {
			if err := tokensAccept(in, lim); err != nil {
				t.Fatalf("PlistPlain reads what the tokens refuse: %v", err)
			}
		}
	})
}
