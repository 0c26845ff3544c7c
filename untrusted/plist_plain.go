package untrusted

import "unicode/utf8"

// PlistPlainMaxDepth bounds the element nesting PlistPlain reads (<plist>
// is level 1, as PlistLimits counts), whatever lim allows: deeper
// documents are left to the full decoding. Real results stay under 10.
const PlistPlainMaxDepth = 16

// PlistPlain reads the form a device's command result takes — an
// Acknowledged DeviceInformation, SecurityInfo or ProfileList answer, as
// Apple's devices (and micromdm/plist, and so devicesim) write it — in one
// pass over the bytes, without encoding/xml, whose tokens were most of a
// result's allocations (docs/benchmarks.md "Session 13 — rt5"). It is
// PlistStringDict's scanner extended to nested values. It reads only this
// form:
//
//	<?xml version="1.0" encoding="UTF-8"?> WS
//	[<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd"> WS]
//	<plist version="1.0"> WS VALUE WS </plist> WS
//
//	VALUE = <dict> WS (<key>TEXT</key> WS VALUE WS)* </dict> | <dict/>
//	      | <array> WS (VALUE WS)* </array> | <array/>
//	      | <string>TEXT</string> | <string/> | <integer>TEXT</integer>
//	      | <real>TEXT</real> | <date>TEXT</date> | <data>DATA</data>
//	      | <true/> | <false/>
//
// where WS is spaces, tabs, CRs and LFs; TEXT is printable ASCII
// (0x20–0x7E) without '<', '>' and '&', plus tabs, LFs and well-formed
// UTF-8 sequences of the characters XML allows above ASCII (U+0080–U+D7FF,
// U+E000–U+FFFD, U+10000–U+10FFFF: XML 1.0 §2.2's Char, the ranges
// encoding/xml checks every rune of character data against; a device
// name such as "Alice’s iPhone"); DATA is TEXT plus CRs (a base64
// decoding drops them, as it drops the LFs encoding/xml would have made
// of them). No entity, CDATA, comment, processing instruction, attribute
// (but the ones shown), byte that is not UTF-8 or character XML excludes
// (encoding/xml refuses those): nothing encoding/xml would resolve or
// normalise, so each TEXT is exactly the character data a decoder of
// PlistTokens' tokens reads. Every such
// document is accepted by PlistTokens within lim: at most lim.MaxSize
// bytes, min(lim.MaxDepth, PlistPlainMaxDepth) levels and lim.MaxElements
// elements (each start tag one, <plist> and <key> included, as
// PlistTokens counts); otherwise ok is false.
//
// A dict is a map[string]any (a repeated key: the last wins), an array a
// []any (never nil), <true/> and <false/> a bool; every other leaf is what
// leaf makes of its element name and TEXT ("" for <name/>), and leaf's
// false makes ok false (so that the caller's full decoding gives its own
// error). ok is false for anything else — not a refusal: the caller then
// decodes the input in full, which accepts or refuses it. The keys and
// TEXTs share one copy of in.
func PlistPlain(in []byte, lim PlistLimits, leaf func(name, text string) (any, bool)) (v any, ok bool) {
	lim = lim.withDefaults()
	if len(in) > lim.MaxSize {
		return nil, false
	}
	p := plainScanner{byteCursor: byteCursor{in: in}, leaf: leaf, maxDepth: min(lim.MaxDepth, PlistPlainMaxDepth), maxElements: lim.MaxElements}
	if !p.lit(plistXMLDecl) {
		return nil, false
	}
	p.ws()
	if p.lit(plistDoctype) {
		p.ws()
	}
	if !p.lit(plistOpen) {
		return nil, false
	}
	p.elements = 1
	p.ws()
	p.s = string(in) // one copy for every key and text
	v, ok = p.value(2)
	if !ok {
		return nil, false
	}
	p.ws()
	if !p.lit("</plist>") {
		return nil, false
	}
	p.ws()
	if p.i != len(in) {
		return nil, false
	}
	return v, true
}

// plainScanner is PlistPlain's position in its input.
type plainScanner struct {
	byteCursor
	s                     string // in as a string: keys and texts are its substrings
	elements              int    // start tags read, <plist> included
	maxDepth, maxElements int
	leaf                  func(name, text string) (any, bool)
}

// start consumes a start tag "<name>" (or "<name/>", then empty is true)
// and counts it as an element. ok is false when the input does not
// continue with either, or when the element count would exceed
// p.maxElements.
func (p *plainScanner) start(name string) (empty, ok bool) {
	n := len(name)
	if len(p.in)-p.i < n+2 || p.in[p.i] != '<' || string(p.in[p.i+1:p.i+1+n]) != name {
		return false, false
	}
	j := p.i + 1 + n
	switch {
	case p.in[j] == '>':
		p.i = j + 1
	case p.in[j] == '/' && j+1 < len(p.in) && p.in[j+1] == '>':
		p.i, empty = j+2, true
	default:
		return false, false
	}
	if p.elements++; p.elements > p.maxElements {
		return false, false
	}
	return empty, true
}

// text consumes TEXT (DATA when cr) up to "</name>" and returns it.
func (p *plainScanner) text(name string, cr bool) (string, bool) {
	start := p.i
	for p.i < len(p.in) {
		c := p.in[p.i]
		if c == '<' {
			break
		}
		if c >= utf8.RuneSelf {
			n := xmlRuneLen(p.in[p.i:])
			if n == 0 {
				return "", false
			}
			p.i += n
			continue
		}
		if (c < 0x20 && c != '\t' && c != '\n' && !(cr && c == '\r')) || c > 0x7e || c == '>' || c == '&' {
			return "", false
		}
		p.i++
	}
	t := p.s[start:p.i]
	if !p.lit("</") || !p.lit(name) || !p.lit(">") {
		return "", false
	}
	return t, true
}

// xmlRuneLen is the length of the well-formed UTF-8 sequence b starts
// with when it encodes a character above ASCII that XML allows in
// character data (U+0080–U+D7FF, U+E000–U+FFFD, U+10000–U+10FFFF), else
// 0. These are exactly the non-ASCII runes encoding/xml's Decoder lets
// through text unchanged: it refuses a sequence utf8.DecodeRune cannot
// read ("invalid UTF-8": a stray byte, an overlong form, an encoded
// surrogate, beyond U+10FFFF) and a rune outside isInCharacterRange
// ("illegal character code": U+FFFE, U+FFFF). A well-formed U+FFFD is a
// character like any other.
func xmlRuneLen(b []byte) int {
	r, n := utf8.DecodeRune(b)
	switch {
	case r == utf8.RuneError && n <= 1:
		return 0
	case r < utf8.RuneSelf, r > 0xD7FF && r < 0xE000, r > 0xFFFD && r < 0x10000, r > utf8.MaxRune:
		return 0
	}
	return n
}

// value reads one VALUE whose start tag is at nesting level depth.
func (p *plainScanner) value(depth int) (any, bool) {
	if depth > p.maxDepth || p.i >= len(p.in) || p.in[p.i] != '<' || p.i+1 >= len(p.in) {
		return nil, false
	}
	var name string
	switch p.in[p.i+1] {
	case 'd':
		if p.i+2 < len(p.in) && p.in[p.i+2] == 'i' {
			return p.dict(depth)
		}
		if p.i+3 < len(p.in) && p.in[p.i+3] == 't' {
			if p.i+4 < len(p.in) && p.in[p.i+4] == 'a' {
				name = "data"
			} else {
				name = "date"
			}
		}
	case 'a':
		return p.array(depth)
	case 's':
		name = "string"
	case 'i':
		name = "integer"
	case 'r':
		name = "real"
	case 't':
		if p.lit("<true/>") {
			p.elements++
			return true, p.elements <= p.maxElements
		}
		return nil, false
	case 'f':
		if p.lit("<false/>") {
			p.elements++
			return false, p.elements <= p.maxElements
		}
		return nil, false
	}
	if name == "" {
		return nil, false
	}
	empty, ok := p.start(name)
	if !ok {
		return nil, false
	}
	t := ""
	if !empty {
		if t, ok = p.text(name, name == "data"); !ok {
			return nil, false
		}
	}
	return p.leaf(name, t)
}

func (p *plainScanner) dict(depth int) (any, bool) {
	empty, ok := p.start("dict")
	if !ok {
		return nil, false
	}
	m := map[string]any{}
	if empty {
		return m, true
	}
	for {
		p.ws()
		if p.lit("</dict>") {
			return m, true
		}
		if empty, ok := p.start("key"); !ok || empty {
			return nil, false
		}
		k, ok := p.text("key", false)
		if !ok {
			return nil, false
		}
		p.ws()
		v, ok := p.value(depth + 1)
		if !ok {
			return nil, false
		}
		m[k] = v // valid UTF-8 (text); a repeated key: the last wins, as in decodeValue
	}
}

func (p *plainScanner) array(depth int) (any, bool) {
	empty, ok := p.start("array")
	if !ok {
		return nil, false
	}
	a := []any{}
	if empty {
		return a, true
	}
	for {
		p.ws()
		if p.lit("</array>") {
			return a, true
		}
		v, ok := p.value(depth + 1)
		if !ok {
			return nil, false
		}
		a = append(a, v)
	}
}
