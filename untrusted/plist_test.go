package untrusted

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/untrusted/untrustedtest"
)

func TestPlist(t *testing.T) {
	lim := PlistLimits{MaxSize: 4096, MaxDepth: 4, MaxElements: 12}
	const head = `<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">`
	for _, tc := range []struct {
		name, in, err string
	}{
		{"dict", head + `<plist version="1.0"><dict><key>A</key><string>x</string><key>B</key><array><integer>1</integer></array></dict></plist>`, ""},
		{"no prolog", `<plist><dict/></plist>`, ""},
		{"leading whitespace and comment", " \n<plist><!-- c --><dict/></plist>", ""},
		{"binary", "bplist00\x00", "binary property lists are not accepted; devices send XML"},
		{"binary after whitespace", "\n bplist00", "binary property lists are not accepted"},
		{"JSON", `{"a":1}`, "not an XML property list"},
		{"too deep", `<plist><array><array><array><array/></array></array></array></plist>`, "deeper than 4"},
		{"too many elements", `<plist><array>` + strings.Repeat(`<true/>`, 11) + `</array></plist>`, "more than 12 elements"},
		{"foreign element", `<plist><dict><key>a</key><html/></dict></plist>`, "<html> is not part"},
		{"namespaced element", `<plist><x:dict xmlns:x="urn:x"/></plist>`, "not part"},
		{"two roots", `<plist><dict/></plist><plist><dict/></plist>`, "more than one root"},
		{"unclosed", `<plist><dict>`, "XML"},
		{"mismatched", `<plist><dict></array></plist>`, "XML"},
		{"too large", `<plist><string>` + strings.Repeat("a", 4096) + `</string></plist>`, "at most 4096"},
		{"no root", `<?xml version="1.0"?>`, "no root"},
		{"not a plist to the decoder", `<plist><integer>x</integer></plist>`, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v any
			err := Plist([]byte(tc.in), &v, lim)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrPlist) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

// TestCheckPlistUnbalanced: CheckPlist's raw pass does not match end
// tags to start tags, so an end tag without its start must not take the
// depth below zero: otherwise the elements after it are nested deeper than
// MaxDepth, and a second root is not counted as one, while CheckPlist
// says yes.
func TestCheckPlistUnbalanced(t *testing.T) {
	lim := PlistLimits{MaxSize: 4096, MaxDepth: 4, MaxElements: 64}
	for _, in := range []string{
		`<plist/>` + strings.Repeat(`</a>`, 10) + strings.Repeat(`<array>`, 10) + strings.Repeat(`</array>`, 10),
		`<plist/></dict><plist><dict/></plist>`,
		`<plist></plist></plist>`,
	} {
		if err := CheckPlist([]byte(in), lim); !errors.Is(err, ErrPlist) || !strings.Contains(err.Error(), "end tag") {
			t.Errorf("%s: %v", in, err)
		}
	}
}

// Real device messages decode within the default limits.
func TestPlistRealCaptures(t *testing.T) {
	files, _ := filepath.Glob("../mdm/testdata/*.plist")
	if len(files) == 0 {
		t.Fatal("no captures")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := Plist(b, &v, DefaultPlist); err != nil || len(v) == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
}

// Findings 2 and 3: the three hostile binary plists (each crashes or
// kills micromdm/plist's binary decoder) are refused at once.
func TestHostileBinaryPlists(t *testing.T) {
	for _, name := range untrustedtest.BinaryPlists {
		in := untrustedtest.Read(t, name)
		if len(in) > 60 || !strings.HasPrefix(string(in), "bplist00") {
			t.Fatalf("%s: not a small binary plist", name)
		}
		var err error
		untrustedtest.Bounded(t, time.Second, 1<<20, func() {
			var v any
			err = Plist(in, &v, DefaultPlist)
		})
		if !errors.Is(err, ErrPlist) || !strings.Contains(err.Error(), "binary") {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func FuzzPlist(f *testing.F) {
	files, _ := filepath.Glob("../mdm/testdata/*.plist")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte(`<plist><array><array><dict><key>a</key><data>AAAA</data></dict></array></array></plist>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		untrustedtest.Bounded(t, time.Second, 32<<20, func() {
			var v any
			if err := Plist(in, &v, DefaultPlist); err != nil && !errors.Is(err, ErrPlist) {
				t.Errorf("error not wrapping ErrPlist: %v", err)
			}
		})
	})
}

// TestPlistTokens: the tokens a one-pass decoder reads (mdm.DecodeValue)
// cross no bound CheckPlist enforces: every input CheckPlist refuses is
// refused while its tokens are read, with the same reason, and the
// accepted ones read to io.EOF. A default namespace, which CheckPlist's
// raw pass does not see, is refused too, and so are unclosed and
// mismatched tags (CheckPlist's raw pass leaves those to the decoder).
func TestPlistTokens(t *testing.T) {
	lim := PlistLimits{MaxSize: 4096, MaxDepth: 4, MaxElements: 12}
	for _, tc := range []struct {
		name, in, err string
	}{
		{"dict", `<?xml version="1.0"?><plist version="1.0"><dict><key>A</key><string>x</string></dict></plist>`, ""},
		{"leading whitespace and comment", " \n<plist><!-- c --><dict/></plist>", ""},
		{"binary", "bplist00\x00", "binary property lists are not accepted"},
		{"JSON", `{"a":1}`, "not an XML property list"},
		{"too deep", `<plist><array><array><array><array/></array></array></array></plist>`, "deeper than 4"},
		{"deep enough", `<plist><array><array><array/></array></array></plist>`, ""},
		{"too many elements", `<plist><array>` + strings.Repeat(`<true/>`, 11) + `</array></plist>`, "more than 12 elements"},
		{"as many elements as allowed", `<plist><array>` + strings.Repeat(`<true/>`, 10) + `</array></plist>`, ""},
		{"foreign element", `<plist><dict><key>a</key><html/></dict></plist>`, "<html> is not part"},
		{"namespaced element", `<plist><x:dict xmlns:x="urn:x"/></plist>`, "not part"},
		{"undeclared prefix", `<plist><x:dict/></plist>`, "not part"},
		{"default namespace", `<plist xmlns="urn:x"><dict/></plist>`, "not part"},
		{"two roots", `<plist><dict/></plist><plist><dict/></plist>`, "more than one root"},
		{"unclosed", `<plist><dict>`, "XML"},
		{"mismatched", `<plist><dict></array></plist>`, "XML"},
		{"too large", `<plist><string>` + strings.Repeat("a", 4096) + `</string></plist>`, "at most 4096"},
		{"no root", `<?xml version="1.0"?>`, "no root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			toks, err := NewPlistTokens([]byte(tc.in), lim)
			for err == nil {
				_, err = toks.Token()
			}
			if tc.err == "" {
				if err != io.EOF {
					t.Fatalf("err %v, want io.EOF", err)
				}
				return
			}
			if err == io.EOF || !errors.Is(err, ErrPlist) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
			if !strings.Contains("default namespace unclosed mismatched", tc.name) && CheckPlist([]byte(tc.in), lim) == nil {
				t.Fatalf("CheckPlist accepts what the tokens refuse")
			}
		})
	}
}

// FuzzPlistTokens: the one-pass reader (PlistTokens, what mdm.DecodeValue
// reads) accepts nothing CheckPlist refuses, and its error always wraps
// ErrPlist; within a second and 32 MiB on any input.
func FuzzPlistTokens(f *testing.F) {
	files, _ := filepath.Glob("../mdm/testdata/*.plist")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte(`<plist><array><array><dict><key>a</key><data>AAAA</data></dict></array></array></plist>`))
	f.Add([]byte(`<plist/></dict></dict><plist><array><array/></array></plist>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		lim := PlistLimits{MaxSize: 1 << 16, MaxDepth: 4, MaxElements: 64}
		untrustedtest.Bounded(t, time.Second, 32<<20, func() {
			var err error
			toks, err := NewPlistTokens(in, lim)
			for err == nil {
				_, err = toks.Token()
			}
			if err != io.EOF {
				if !errors.Is(err, ErrPlist) {
					t.Fatalf("error not wrapping ErrPlist: %v", err)
				}
				return
			}
			if cerr := CheckPlist(in, lim); cerr != nil {
				t.Fatalf("PlistTokens accepted what CheckPlist refuses: %v", cerr)
			}
		})
	})
}
