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
