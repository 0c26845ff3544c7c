package untrusted

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"

	"github.com/micromdm/plist"
)

// ErrPlist wraps every refusal of a property list.
var ErrPlist = errors.New("unacceptable property list")

// PlistLimits bounds an XML property list. Zero fields take the value of
// DefaultPlist.
type PlistLimits struct {
	// MaxSize bounds the input in bytes.
	MaxSize int
	// MaxDepth bounds element nesting; <plist> is level 1. Real messages
	// stay under 10.
	MaxDepth int
	// MaxElements bounds the number of XML elements (each plist object is
	// one or two: <key> plus its value).
	MaxElements int
}

// DefaultPlist fits a device check-in.
var DefaultPlist = PlistLimits{MaxSize: 256 << 10, MaxDepth: 32, MaxElements: 20000}

func (l PlistLimits) withDefaults() PlistLimits {
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultPlist.MaxSize
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultPlist.MaxDepth
	}
	if l.MaxElements <= 0 {
		l.MaxElements = DefaultPlist.MaxElements
	}
	return l
}

// plistElements are the element names of Apple's plist DTD
// (PropertyList-1.0.dtd).
var plistElements = map[string]bool{"plist": true, "dict": true, "key": true, "array": true, "string": true,
	"data": true, "date": true, "integer": true, "real": true, "true": true, "false": true}

// CheckPlist checks that in is an XML property list within lim, in one
// linear pass of encoding/xml's tokenizer (no object is built). Binary
// property lists (bplist00) are refused: Apple devices send XML, and
// micromdm/plist's binary decoder crashes the process on a few dozen bytes
// (self-referencing containers, huge declared sizes, bad offsets). Only
// the DTD's element names are accepted. Errors wrap ErrPlist.
func CheckPlist(in []byte, lim PlistLimits) error {
	lim = lim.withDefaults()
	if err := checkPlistStart(in, lim); err != nil {
		return err
	}
	t := PlistTokens{dec: xml.NewDecoder(bytes.NewReader(in)), lim: lim, raw: true}
	t.dec.Strict = true
	for {
		if _, err := t.Token(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// checkPlistStart is CheckPlist's look at the whole input before any
// token: its size, binary property lists, an XML start.
func checkPlistStart(in []byte, lim PlistLimits) error {
	if len(in) > lim.MaxSize {
		return fmt.Errorf("%w: %d bytes (at most %d)", ErrPlist, len(in), lim.MaxSize)
	}
	t := bytes.TrimLeft(in, " \t\r\n\ufeff")
	if bytes.HasPrefix(t, []byte("bplist")) {
		return fmt.Errorf("%w: binary property lists are not accepted; devices send XML", ErrPlist)
	}
	if !bytes.HasPrefix(t, []byte("<?xml")) && !bytes.HasPrefix(t, []byte("<plist")) && !bytes.HasPrefix(t, []byte("<!DOCTYPE")) {
		return fmt.Errorf("%w: not an XML property list", ErrPlist)
	}
	return nil
}

// PlistTokens reads an XML property list token by token (encoding/xml's
// Token, strict: end tags must match) and enforces CheckPlist's bounds on
// the tokens as they pass, so that a decoder built on it reads the input
// once instead of twice (CheckPlist's pass, then its own: an Idle's
// decoding 124 → 75 allocations, docs/benchmarks.md "Session 7 — idle"). The bounds
// are the same: size, binary refused, an XML start (NewPlistTokens);
// only the DTD's element names, without a namespace (a default xmlns
// declaration too, which CheckPlist's raw pass did not see), at most
// MaxDepth levels, at most MaxElements elements, one root element (Token).
// A bound crossed stops the reading at that token: a refused document is
// read no further than CheckPlist read it, and what was decoded before it
// is bounded by the same limits.
type PlistTokens struct {
	dec                    *xml.Decoder
	lim                    PlistLimits
	raw                    bool // RawToken (CheckPlist: no end-tag matching, no namespaces)
	depth, elements, roots int
}

// NewPlistTokens checks in's size and start (see CheckPlist) and returns
// its tokens. Errors wrap ErrPlist.
func NewPlistTokens(in []byte, lim PlistLimits) (*PlistTokens, error) {
	lim = lim.withDefaults()
	if err := checkPlistStart(in, lim); err != nil {
		return nil, err
	}
	t := &PlistTokens{dec: xml.NewDecoder(bytes.NewReader(in)), lim: lim}
	t.dec.Strict = true
	return t, nil
}

// Token is the next token (xml.Decoder.Token), or an error wrapping
// ErrPlist when it crosses a bound or the XML is malformed; io.EOF (as
// is) at the end of a document that had its root element.
func (t *PlistTokens) Token() (xml.Token, error) {
	var tok xml.Token
	var err error
	if t.raw {
		tok, err = t.dec.RawToken()
	} else {
		tok, err = t.dec.Token()
	}
	if err == io.EOF {
		if t.roots == 0 {
			return nil, fmt.Errorf("%w: no root element", ErrPlist)
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("%w: XML: %v", ErrPlist, err)
	}
	switch el := tok.(type) {
	case xml.StartElement:
		if !plistElements[el.Name.Local] || el.Name.Space != "" {
			return nil, fmt.Errorf("%w: element <%s> is not part of a property list", ErrPlist, el.Name.Local)
		}
		if t.depth == 0 {
			if t.roots++; t.roots > 1 {
				return nil, fmt.Errorf("%w: more than one root element", ErrPlist)
			}
		}
		t.depth++
		t.elements++
		if t.depth > t.lim.MaxDepth {
			return nil, fmt.Errorf("%w: nested deeper than %d levels", ErrPlist, t.lim.MaxDepth)
		}
		if t.elements > t.lim.MaxElements {
			return nil, fmt.Errorf("%w: more than %d elements", ErrPlist, t.lim.MaxElements)
		}
	case xml.EndElement:
		// RawToken (CheckPlist) does not match end tags to start tags:
		// an end tag with no open element would take the depth below
		// zero and lift the depth and one-root bounds for what follows.
		if t.depth == 0 {
			return nil, fmt.Errorf("%w: end tag </%s> without its start tag", ErrPlist, el.Name.Local)
		}
		t.depth--
	}
	return tok, nil
}

// Plist decodes an XML property list from untrusted bytes into v (as
// micromdm/plist.Unmarshal does) after CheckPlist within lim. Errors wrap
// ErrPlist.
func Plist(in []byte, v any, lim PlistLimits) error {
	if err := CheckPlist(in, lim); err != nil {
		return err
	}
	// CheckPlist refused anything starting with bplist (after optional
	// whitespace), so this is micromdm/plist's XML decoder.
	if err := plist.NewXMLDecoder(bytes.NewReader(in)).Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrPlist, err)
	}
	return nil
}

// The fixed parts of the one document shape PlistStringDict reads: what
// Apple's devices (and micromdm/plist, and so devicesim) write before
// and after a dict of strings.
const (
	plistXMLDecl = `<?xml version="1.0" encoding="UTF-8"?>`
	plistDoctype = `<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">`
	plistOpen    = `<plist version="1.0">`
)

// maxStringDictPairs bounds the pairs PlistStringDict reads; a larger
// dict is left to the full decoding (an Idle has two to five).
const maxStringDictPairs = 16

// PlistStringDict reads the shape most of a device's command polls take —
// an XML property list whose value is one dict of <key>/<string> pairs of
// plain text (a Status Idle) — in one pass over the bytes, without
// encoding/xml (whose tokens were a quarter of an idle poll's
// allocations, docs/benchmarks.md "Session 10 — idle2"). It accepts only
// this exact form:
//
//	<?xml version="1.0" encoding="UTF-8"?> WS
//	[<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd"> WS]
//	<plist version="1.0"> WS <dict> WS
//	(<key>TEXT</key> WS <string>TEXT</string> WS){0,16}
//	</dict> WS </plist> WS
//
// where WS is spaces, tabs, CRs and LFs and TEXT is printable ASCII
// (0x20–0x7E) without '<', '>' and '&': no entity, no CDATA, no comment,
// no attribute but the ones shown, no byte encoding/xml would normalise.
// Every such document is accepted by PlistTokens within lim (at most 3
// levels, 2 + 2×pairs elements, lim.MaxSize bytes; otherwise ok is
// false), and the pairs are exactly the text a decoder of its tokens
// reads, in document order (a repeated key appears twice). ok is false
// for anything else — not a refusal: the caller then decodes the input
// in full, which accepts or refuses it. The strings share one copy of in.
func PlistStringDict(in []byte, lim PlistLimits) (pairs []string, ok bool) {
	lim = lim.withDefaults()
	if len(in) > lim.MaxSize || lim.MaxDepth < 3 {
		return nil, false
	}
	p := stringDictScanner{byteCursor{in: in}}
	if !p.lit(plistXMLDecl) {
		return nil, false
	}
	p.ws()
	if p.lit(plistDoctype) {
		p.ws()
	}
	if !p.lit(plistOpen) || !p.wsLit("<dict>") {
		return nil, false
	}
	var spans [2 * maxStringDictPairs][2]int
	n := 0
	for {
		p.ws()
		if p.lit("</dict>") {
			break
		}
		if n == len(spans) {
			return nil, false
		}
		k0, k1, ok := p.element("<key>", "</key>")
		if !ok {
			return nil, false
		}
		p.ws()
		v0, v1, ok := p.element("<string>", "</string>")
		if !ok {
			return nil, false
		}
		spans[n], spans[n+1] = [2]int{k0, k1}, [2]int{v0, v1}
		n += 2
	}
	if !p.wsLit("</plist>") {
		return nil, false
	}
	p.ws()
	if p.i != len(in) || 2+n > lim.MaxElements {
		return nil, false
	}
	s := string(in) // one copy for every key and value
	pairs = make([]string, n)
	for i := range pairs {
		pairs[i] = s[spans[i][0]:spans[i][1]]
	}
	return pairs, true
}

// stringDictScanner is PlistStringDict's position in its input.
type stringDictScanner struct{ byteCursor }

// byteCursor is a position in a plist's bytes, with the two moves the
// hand scanners (PlistStringDict, PlistPlain) share.
type byteCursor struct {
	in []byte
	i  int
}

// lit consumes s when the input continues with it.
func (p *byteCursor) lit(s string) bool {
	if len(p.in)-p.i < len(s) || string(p.in[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// ws consumes spaces, tabs, CRs and LFs.
func (p *byteCursor) ws() {
	for p.i < len(p.in) {
		switch p.in[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *stringDictScanner) wsLit(s string) bool {
	p.ws()
	return p.lit(s)
}

// element consumes open TEXT close and returns TEXT's span.
func (p *stringDictScanner) element(open, close string) (start, end int, ok bool) {
	if !p.lit(open) {
		return 0, 0, false
	}
	start = p.i
	for p.i < len(p.in) {
		c := p.in[p.i]
		if c < 0x20 || c > 0x7e || c == '>' || c == '&' {
			return 0, 0, false
		}
		if c == '<' {
			break
		}
		p.i++
	}
	end = p.i
	return start, end, p.lit(close)
}
