package mdm

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pomona-mdm/pomona/untrusted"
)

// DecodeValue decodes an XML property list (Apple's "Property List
// Programming Guide", XML format; the DTD at
// http://www.apple.com/DTDs/PropertyList-1.0.dtd) into values that
// encoding/json always accepts, so a device's answer can always be stored
// and shown as JSON, whatever numbers it holds:
//
//   - dict → map[string]any (a repeated key: the last one wins), array → []any
//   - string → string (XML text is valid UTF-8; anything else would be
//     replaced with U+FFFD)
//   - integer → json.Number in canonical decimal, of any size (lossless:
//     a plist integer may exceed int64 and uint64, JSON numbers have no
//     limit); decimal or 0x-prefixed hexadecimal input
//   - real → json.Number: the text as sent when it is a JSON number
//     (lossless; a leading "+" dropped), otherwise the shortest form that
//     reads back as the same float64 (".5" → 0.5); NaN, +Inf and -Inf,
//     which JSON cannot express, become the strings "NaN", "Infinity" and
//     "-Infinity", and text beyond float64's range (1e400), which many
//     JSON readers refuse as a number, the text itself as a string
//   - date → time.Time (RFC 3339, UTC) or, when it does not parse, the
//     text as sent
//   - data → []byte (base64 in JSON); true/false → bool
//
// The input is bounded by untrusted.PlistTokens with ResultPlist's limits
// (size, depth, element count, the DTD's elements; binary plists refused):
// the bounds are enforced on each token as it is decoded, in the one pass
// over the input (CheckPlist's separate pass cost a third of an idle
// poll's plist work). A dict of plain-text strings in the form devices
// write (an Idle; untrusted.PlistStringDict says which form), and any
// other document in the plain form devices write for a result (nested
// dicts and arrays, UTF-8 text without entities; decodePlain says which
// form), are read without the XML tokenizer, with the same result. Errors (malformed XML,
// an unknown element, a dict key without a value, bad base64) wrap
// ErrMalformed.
func DecodeValue(b []byte) (any, error) {
	if pairs, ok := untrusted.PlistStringDict(b, ResultPlist); ok {
		m := make(map[string]any, len(pairs)/2)
		for i := 0; i < len(pairs); i += 2 {
			m[pairs[i]] = pairs[i+1] // printable ASCII: valid UTF-8; a repeated key: the last wins
		}
		return m, nil
	}
	if v, ok := decodePlain(b); ok {
		return v, nil
	}
	return decodeValue(b)
}

// decodeValue is DecodeValue through encoding/xml's tokens: any document.
func decodeValue(b []byte) (any, error) {
	// Bounded (size, depth, element count, binary refused) before any
	// decoding, like every plist from outside.
	toks, err := untrusted.NewPlistTokens(b, ResultPlist)
	if err != nil {
		return nil, malformed("%v", err)
	}
	d := &valueDecoder{dec: toks}
	tok, err := d.next()
	if err != nil {
		return nil, err
	}
	root, ok := tok.(xml.StartElement)
	if !ok || root.Name.Local != "plist" {
		return nil, malformed("not a property list: <plist> expected")
	}
	tok, err = d.next()
	if err != nil {
		return nil, err
	}
	se, ok := tok.(xml.StartElement)
	if !ok {
		return nil, malformed("empty property list")
	}
	v, err := d.value(se, 1)
	if err != nil {
		return nil, err
	}
	if tok, err = d.next(); err != nil {
		return nil, err
	}
	if _, ok := tok.(xml.EndElement); !ok {
		return nil, malformed("a property list holds one value")
	}
	if _, err := d.next(); err != io.EOF {
		return nil, malformed("content after </plist>")
	}
	return v, nil
}

// DecodeDict is DecodeValue for a document whose value is a dict (every
// MDM message and result).
func DecodeDict(b []byte) (map[string]any, error) {
	v, err := DecodeValue(b)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, malformed("the property list is not a dict")
	}
	return m, nil
}

type valueDecoder struct{ dec *untrusted.PlistTokens }

// next returns the next element boundary, skipping the prolog, comments
// and whitespace; text between elements is an error. io.EOF is returned
// as is.
func (d *valueDecoder) next() (xml.Token, error) {
	for {
		tok, err := d.dec.Token()
		if err == io.EOF {
			return nil, io.EOF
		}
		if err != nil {
			return nil, malformed("%v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement, xml.EndElement:
			return t, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, malformed("unexpected text %q between elements", truncate(string(t), 20))
			}
		}
	}
}

// text reads the character data of a leaf element up to its end tag.
func (d *valueDecoder) text(name string) (string, error) {
	var b strings.Builder
	for {
		tok, err := d.dec.Token()
		if err != nil {
			return "", malformed("in <%s>: %v", name, eofMalformed(err))
		}
		switch t := tok.(type) {
		case xml.CharData:
			b.Write(t)
		case xml.EndElement:
			return b.String(), nil
		case xml.StartElement:
			return "", malformed("<%s> inside <%s>", t.Name.Local, name)
		}
	}
}

func (d *valueDecoder) value(se xml.StartElement, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, malformed("nested deeper than %d levels", MaxDepth)
	}
	name := se.Name.Local
	switch name {
	case "dict":
		m := map[string]any{}
		for {
			tok, err := d.next()
			if err != nil {
				return nil, eofMalformed(err)
			}
			if _, ok := tok.(xml.EndElement); ok {
				return m, nil
			}
			k := tok.(xml.StartElement)
			if k.Name.Local != "key" {
				return nil, malformed("<%s> where a dict expects <key>", k.Name.Local)
			}
			key, err := d.text("key")
			if err != nil {
				return nil, err
			}
			tok, err = d.next()
			if err != nil {
				return nil, eofMalformed(err)
			}
			vs, ok := tok.(xml.StartElement)
			if !ok {
				return nil, malformed("dict key %q has no value", truncate(key, 40))
			}
			v, err := d.value(vs, depth+1)
			if err != nil {
				return nil, err
			}
			m[validUTF8(key)] = v
		}
	case "array":
		a := []any{}
		for {
			tok, err := d.next()
			if err != nil {
				return nil, eofMalformed(err)
			}
			if _, ok := tok.(xml.EndElement); ok {
				return a, nil
			}
			v, err := d.value(tok.(xml.StartElement), depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
	case "true", "false":
		if s, err := d.text(name); err != nil {
			return nil, err
		} else if strings.TrimSpace(s) != "" {
			return nil, malformed("<%s> with content", name)
		}
		return name == "true", nil
	case "string", "integer", "real", "date", "data":
		s, err := d.text(name)
		if err != nil {
			return nil, err
		}
		return leaf(name, s)
	}
	return nil, malformed("unknown property list element <%s>", name)
}

var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

func leaf(name, s string) (any, error) {
	switch name {
	case "string":
		return validUTF8(s), nil
	case "integer":
		t := strings.TrimSpace(s)
		if len(t) > maxBigIntegerText {
			// big.Int's conversions are quadratic in the digits: an 8 MB
			// integer (a result's size limit) took minutes of CPU, on
			// every decode of the stored result. Long decimal text is
			// made canonical in one pass instead; long text in another
			// base is beyond any value a device sends.
			if n, ok := canonicalDecimal(t); ok {
				return json.Number(n), nil
			}
			return nil, malformed("<integer> %q… is not a decimal integer of at most %d characters", truncate(t, 40), maxBigIntegerText)
		}
		n, ok := new(big.Int).SetString(strings.TrimPrefix(t, "+"), 0)
		if !ok || strings.Contains(t, "_") {
			return nil, malformed("<integer> %q is not an integer", truncate(t, 40))
		}
		return json.Number(n.String()), nil
	case "real":
		return Real(s)
	case "date":
		t := strings.TrimSpace(s)
		if tm, err := time.Parse(time.RFC3339, t); err == nil {
			return tm.UTC(), nil
		}
		return validUTF8(t), nil
	case "data":
		clean := strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, s)
		b, err := base64.StdEncoding.DecodeString(clean)
		if err != nil {
			return nil, malformed("<data> is not base64")
		}
		return b, nil
	}
	return nil, malformed("unknown property list element <%s>", name)
}

// Real converts the text of a plist <real> into a JSON-safe value: a
// json.Number, or "NaN", "Infinity" or "-Infinity" (JSON has no literal
// for them; RFC 8259 §6). Text that is no number wraps ErrMalformed.
func Real(s string) (any, error) {
	t := strings.TrimSpace(s)
	f, err := strconv.ParseFloat(t, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, malformed("<real> %q is not a number", truncate(t, 40))
	}
	if errors.Is(err, strconv.ErrRange) {
		// Beyond float64: many JSON readers (Go's among them) refuse such
		// a number, so the text as sent, as a string.
		return t, nil
	}
	if lit := strings.TrimPrefix(t, "+"); jsonNumber.MatchString(lit) {
		return json.Number(lit), nil // exactly as sent
	}
	return JSONFloat(f), nil
}

// JSONFloat is f as a value encoding/json accepts: a json.Number, or for
// NaN and ±Inf the strings "NaN", "Infinity" and "-Infinity".
func JSONFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
}

// maxBigIntegerText bounds the <integer> text converted with big.Int
// (what leaf does for short integers: any base of strconv's 0 prefixes);
// a 64-bit value is at most 20 decimal digits.
const maxBigIntegerText = 256

// canonicalDecimal is big.Int's String of decimal text t ("+" or "-",
// then digits, the first not 0), in linear time: the sign "+" dropped.
// ok is false when t is not such text (a leading 0 is a base prefix to
// big.Int: octal, 0x, 0b, 0o).
func canonicalDecimal(t string) (string, bool) {
	neg := false
	switch {
	case strings.HasPrefix(t, "+"):
		t = t[1:]
	case strings.HasPrefix(t, "-"):
		neg, t = true, t[1:]
	}
	if t == "" || t[0] == '0' {
		// A leading 0 is a base prefix to big.Int (octal, 0x, 0b, 0o).
		return "", false
	}
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return "", false
		}
	}
	if neg {
		return "-" + t, true
	}
	return t, true
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func eofMalformed(err error) error {
	if err == io.EOF {
		return malformed("the property list ends early")
	}
	return err
}

// fieldString reads a string field of a decoded message; a value of
// another type is malformed.
func fieldString(m map[string]any, key string) (string, error) {
	v, ok := m[key]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", malformed("%s is not a string", key)
	}
	return s, nil
}
