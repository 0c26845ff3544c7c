package untrusted

import (
	"encoding/asn1"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// knownOIDs maps the DER (tag, length, content) of every object
// identifier a SignedData's parse compares with to that identifier, so
// that reading one allocates nothing: cryptobyte's
// ReadASN1ObjectIdentifier makes a new slice for each of the ~7 OIDs of
// an Mdm-Signature on every request (docs/benchmarks.md, Session 11 —
// idle3). The values are shared: nothing may modify them.
var knownOIDs = func() map[string]asn1.ObjectIdentifier {
	m := map[string]asn1.ObjectIdentifier{}
	for _, o := range []asn1.ObjectIdentifier{
		oidSignedData, oidMessageDigest, oidSigningTime, oidContentType, oidData,
		SHA1, SHA256, SHA384, SHA512,
		oidRSA, oidRSASHA1, oidRSASHA256, oidRSASHA384, oidRSASHA512,
		oidECDSASHA1, oidECDSASHA256, oidECDSASHA384, oidECDSASHA512,
		oidECDSAP256, oidECDSAP384, oidECDSAP521,
	} {
		der, err := asn1.Marshal(o)
		if err != nil {
			panic(err)
		}
		m[string(der)] = o[:len(o):len(o)] // an append copies
	}
	return m
}()

var (
	oidContentType = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidData        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
)

// readOID reads an OBJECT IDENTIFIER from s exactly as cryptobyte's
// ReadASN1ObjectIdentifier does (the same encodings accepted and refused,
// the same value, s advanced alike), without allocating when it is one of
// knownOIDs: *out is then the shared value, which the caller must not
// modify. Any other identifier is parsed by ReadASN1ObjectIdentifier
// itself (FuzzReadOID compares the two on any input).
func readOID(s *cryptobyte.String, out *asn1.ObjectIdentifier) bool {
	var elem cryptobyte.String
	if !s.ReadASN1Element(&elem, cbasn1.OBJECT_IDENTIFIER) {
		return false
	}
	if o, ok := knownOIDs[string(elem)]; ok { // no conversion: looked up in place
		*out = o
		return true
	}
	return elem.ReadASN1ObjectIdentifier(out)
}

// utcTimeZ reads the DER of a UTCTime in the one form RFC 5280
// §4.1.2.5.1 prescribes and devices write, "YYMMDDHHMMSSZ" (tag 0x17,
// length 13), to the same time.Time encoding/asn1's Unmarshal gives (UTC;
// YY below 50 is 20YY, else 19YY; every field in range, the day within
// its month): without Unmarshal's reflection, its string copies and the
// failed time.Parse of the form without seconds it tries first (5
// allocations a request). ok is false for every other input — another
// length, a time zone offset, no seconds, a GeneralizedTime, any
// non-digit —, which the caller hands to encoding/asn1 as before
// (FuzzUTCTimeZ compares the two on any input).
func utcTimeZ(raw []byte) (t time.Time, ok bool) {
	if len(raw) != 15 || raw[0] != 0x17 || raw[1] != 13 || raw[14] != 'Z' {
		return time.Time{}, false
	}
	var f [6]int
	for i := range f {
		hi, lo := raw[2+2*i], raw[3+2*i]
		if hi < '0' || hi > '9' || lo < '0' || lo > '9' {
			return time.Time{}, false
		}
		f[i] = int(hi-'0')*10 + int(lo-'0')
	}
	year := 1900 + f[0]
	if f[0] < 50 {
		year = 2000 + f[0]
	}
	month, day, hour, minute, sec := f[1], f[2], f[3], f[4], f[5]
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	t = time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC)
	if t.Day() != day { // past the month's end: time.Date normalized it
		return time.Time{}, false
	}
	return t, true
}
