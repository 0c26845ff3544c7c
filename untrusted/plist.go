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
	dec := xml.NewDecoder(bytes.NewReader(in))
	dec.Strict = true
	depth, elements, roots := 0, 0, 0
	for {
		tok, err := dec.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: XML: %v", ErrPlist, err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if !plistElements[el.Name.Local] || el.Name.Space != "" {
				return fmt.Errorf("%w: element <%s> is not part of a property list", ErrPlist, el.Name.Local)
			}
			if depth == 0 {
				if roots++; roots > 1 {
					return fmt.Errorf("%w: more than one root element", ErrPlist)
				}
			}
			depth++
			elements++
			if depth > lim.MaxDepth {
				return fmt.Errorf("%w: nested deeper than %d levels", ErrPlist, lim.MaxDepth)
			}
			if elements > lim.MaxElements {
				return fmt.Errorf("%w: more than %d elements", ErrPlist, lim.MaxElements)
			}
		case xml.EndElement:
			depth--
		}
	}
	if roots == 0 {
		return fmt.Errorf("%w: no root element", ErrPlist)
	}
	return nil
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
