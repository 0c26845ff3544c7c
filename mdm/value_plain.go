package mdm

import (
	"encoding/json"

	"github.com/pomona-mdm/pomona/untrusted"
)

// decodePlain is DecodeValue for the plain form devices write a result in
// (untrusted.PlistPlain says which form: nested dicts and arrays, text
// without entities, ASCII or UTF-8 of the characters XML allows), read
// without encoding/xml's tokens — a DeviceInformation result 217 → 13
// allocations, one with a device name such as "Alice’s iPhone" too. Each leaf is converted by
// leaf, as in the full decoding, so the values are the full decoding's:
// FuzzDecodePlain checks that whatever decodePlain reads, decodeValue reads
// the same. ok is false for anything else, and for a leaf the full
// decoding refuses (so that the error is the full decoding's).
func decodePlain(b []byte) (any, bool) {
	return untrusted.PlistPlain(b, ResultPlist, plainLeaf)
}

// plainLeaf is leaf for PlistPlain: a string as it is (PlistPlain reads
// only valid UTF-8, which validUTF8 returns as it is), a canonical decimal integer as
// big.Int would write it (without big.Int), anything else through leaf.
func plainLeaf(name, text string) (any, bool) {
	switch name {
	case "string":
		return text, true
	case "integer":
		if n, ok := canonicalDecimal(text); ok && len(text) <= maxBigIntegerText {
			return json.Number(n), true
		}
	}
	v, err := leaf(name, text)
	return v, err == nil
}
