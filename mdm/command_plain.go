package mdm

import (
	"encoding/base64"
	"slices"
	"strconv"
)

// encodePlain is plist.MarshalIndent(c, "\t") — byte for byte — for a
// command made of the values the catalogue builds: strings of printable
// ASCII without '&', '<', '>', '"' and the apostrophe (nothing
// encoding/xml would escape), bools (not as array elements: micromdm/plist indents those
// its own way), Go integers, []byte, []string, []any and map[string]any,
// at most maxEncodeDepth levels. ok is false for anything else, and Encode
// then uses micromdm/plist itself. micromdm/plist builds a reflected value
// tree, sorts every dict's keys and writes through encoding/xml's encoder:
// about 55 allocations for a DeviceInformation command, a third of the
// API enqueue's own (docs/benchmarks.md "Session 13 — rt5");
// TestEncodePlainIsMarshalIndent keeps the two equal.
func (c Command) encodePlain() ([]byte, bool) {
	if !plainText(c.CommandUUID) {
		return nil, false
	}
	b := make([]byte, 0, 512)
	b = append(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"+plistDoctype+"\n<plist version=\"1.0\">\n<dict>"...)
	// The struct's fields in micromdm/plist's sorted order.
	b = append(b, "\n\t<key>Command</key>"...)
	b, ok := appendPlainValue(b, c.Command, 1, false)
	if !ok {
		return nil, false
	}
	b = append(b, "\n\t<key>CommandUUID</key>\n\t<string>"...)
	b = append(b, c.CommandUUID...)
	b = append(b, "</string>\n</dict>\n</plist>\n"...)
	return b, true
}

// plainText says whether s is written as is by encoding/xml (no escape).
func plainText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '&' || c == '<' || c == '>' || c == '"' || c == '\'' {
			return false
		}
	}
	return true
}

// appendIndent is encoding/xml's indentation before an element at depth.
func appendIndent(b []byte, depth int) []byte {
	b = append(b, '\n')
	for range depth {
		b = append(b, '\t')
	}
	return b
}

// appendPlainValue appends v's element at depth (its start tag's
// indentation), as micromdm/plist's indented encoder writes it.
func appendPlainValue(b []byte, v any, depth int, inArray bool) ([]byte, bool) {
	if depth > maxEncodeDepth {
		return nil, false
	}
	switch v := v.(type) {
	case string:
		if !plainText(v) {
			return nil, false
		}
		b = append(appendIndent(b, depth), "<string>"...)
		b = append(b, v...)
		return append(b, "</string>"...), true
	case bool:
		if inArray {
			return nil, false
		}
		if v {
			return append(appendIndent(b, depth), "<true/>"...), true
		}
		return append(appendIndent(b, depth), "<false/>"...), true
	case int:
		return appendInteger(b, int64(v), depth), true
	case int64:
		return appendInteger(b, v, depth), true
	case int32:
		return appendInteger(b, int64(v), depth), true
	case []byte:
		b = append(appendIndent(b, depth), "<data>"...)
		b = base64.StdEncoding.AppendEncode(b, v)
		return append(b, "</data>"...), true
	case []string:
		b = append(appendIndent(b, depth), "<array>"...)
		if len(v) == 0 {
			return append(b, "</array>"...), true
		}
		for _, s := range v {
			var ok bool
			if b, ok = appendPlainValue(b, s, depth+1, true); !ok {
				return nil, false
			}
		}
		return append(appendIndent(b, depth), "</array>"...), true
	case []any:
		b = append(appendIndent(b, depth), "<array>"...)
		if len(v) == 0 {
			return append(b, "</array>"...), true
		}
		for _, e := range v {
			var ok bool
			if b, ok = appendPlainValue(b, e, depth+1, true); !ok {
				return nil, false
			}
		}
		return append(appendIndent(b, depth), "</array>"...), true
	case map[string]any:
		if v == nil {
			return nil, false
		}
		b = append(appendIndent(b, depth), "<dict>"...)
		if len(v) == 0 {
			return append(b, "</dict>"...), true
		}
		var small [16]string
		keys := small[:0]
		for k := range v {
			if !plainText(k) {
				return nil, false
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = append(appendIndent(b, depth+1), "<key>"...)
			b = append(b, k...)
			b = append(b, "</key>"...)
			var ok bool
			if b, ok = appendPlainValue(b, v[k], depth+1, false); !ok {
				return nil, false
			}
		}
		return append(appendIndent(b, depth), "</dict>"...), true
	}
	return nil, false
}

func appendInteger(b []byte, n int64, depth int) []byte {
	b = append(appendIndent(b, depth), "<integer>"...)
	b = strconv.AppendInt(b, n, 10)
	return append(b, "</integer>"...)
}

// maxEncodeDepth bounds the nesting encodePlain writes; deeper commands
// (none the catalogue builds) are left to micromdm/plist.
const maxEncodeDepth = 16

// plistDoctype is the DOCTYPE micromdm/plist writes.
const plistDoctype = `<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">`
