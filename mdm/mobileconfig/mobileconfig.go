// Package mobileconfig reads configuration profiles (.mobileconfig) an
// admin uploads and prepares them for one device: the file is decoded only
// through package untrusted (XML property list, or a CMS SignedData
// wrapping one; binary property lists are refused), its structure is
// checked (Apple, "Configuration Profile Reference": a Configuration
// dictionary with PayloadIdentifier, PayloadUUID and a PayloadContent
// array of payload dictionaries), and per-user variables in its string
// values are validated at upload and substituted per device at delivery.
// Pure: no HTTP, no database.
package mobileconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/micromdm/plist"

	"github.com/pomona-mdm/pomona/untrusted"
)

// ErrProfile wraps every refusal of an uploaded file.
var ErrProfile = errors.New("unacceptable configuration profile")

// MaxFile is the largest uploaded file Read accepts, in bytes (2 MiB: a
// signed profile; the property list inside, or an unsigned one, is at most
// 1 MiB). Every surface that takes an upload (API, console, CLI through
// the API) refuses a larger file as too large before reading the rest.
const MaxFile = 2 << 20

// TooLarge says why a file over MaxFile is refused and what the limits
// are: the one wording of the API, the console and the CLI.
var TooLarge = fmt.Sprintf("The file is larger than %d MiB: a configuration profile is at most %d MiB (signed) or 1 MiB (unsigned).", MaxFile>>20, MaxFile>>20)

// ErrTooLarge is Read's refusal of a file over MaxFile (it wraps
// ErrProfile; callers that answer with a status make it 413).
var ErrTooLarge = fmt.Errorf("%w: %s", ErrProfile, TooLarge)

// Limits of an uploaded profile: 1 MiB, 32 levels, 50,000 elements (a
// profile with a few certificates and restrictions is tens of KiB).
var (
	PlistLimits = untrusted.PlistLimits{MaxSize: 1 << 20, MaxDepth: 32, MaxElements: 50000}
	CMSLimits   = untrusted.ASN1Limits{MaxSize: MaxFile, MaxDepth: 32, MaxElements: 20000}
)

// Profile is a decoded configuration profile.
type Profile struct {
	Identifier  string // PayloadIdentifier of the profile
	DisplayName string // PayloadDisplayName ("" when absent)
	// Signed: the upload was a CMS SignedData whose signature verified.
	Signed bool
	// Doc is the decoded top-level dictionary.
	Doc map[string]any
	// Plist is the XML property list as uploaded (the signed content of a
	// signed upload): what Pomona stores, placeholders included.
	Plist []byte
	// Variables are the variable names the string values use, sorted.
	Variables []string
	// PayloadTypes lists PayloadContent's types in order.
	PayloadTypes []string
}

// Read decodes an uploaded .mobileconfig: an XML property list or a
// DER/BER CMS SignedData (RFC 5652) with one signer whose signature
// verifies, wrapping one. Binary property lists, other formats, hostile
// inputs beyond the limits and profiles without Apple's required keys are
// refused with the reason; an unknown $VARIABLE is refused too. Errors
// wrap ErrProfile.
func Read(in []byte) (*Profile, error) {
	t := bytes.TrimLeft(in, " \t\r\n\ufeff")
	var p Profile
	switch {
	case len(in) > MaxFile: // white space before a property list counts too
		return nil, ErrTooLarge
	case len(t) == 0:
		return nil, fmt.Errorf("%w: the file is empty", ErrProfile)
	case bytes.HasPrefix(t, []byte("bplist")):
		return nil, fmt.Errorf("%w: binary property lists are not accepted: save the profile as XML (plutil -convert xml1 file.mobileconfig)", ErrProfile)
	case in[0] == 0x30: // an ASN.1 SEQUENCE: CMS ContentInfo
		p7, err := untrusted.ParseCMS(in, CMSLimits)
		if err != nil {
			return nil, fmt.Errorf("%w: not a readable signed profile: %w", ErrProfile, err)
		}
		if err := untrusted.OneSigner(p7, untrusted.SHA1, untrusted.SHA256, untrusted.SHA384, untrusted.SHA512); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrProfile, err)
		}
		if err := p7.Verify(); err != nil {
			return nil, fmt.Errorf("%w: the signature does not verify: %v", ErrProfile, err)
		}
		t = p7.Content
		if bytes.HasPrefix(bytes.TrimLeft(t, " \t\r\n\ufeff"), []byte("bplist")) {
			return nil, fmt.Errorf("%w: the signed content is a binary property list: sign the XML form", ErrProfile)
		}
		p.Signed = true
	}
	if len(t) > PlistLimits.MaxSize {
		// Said in the administrator's terms; the bounded parser would
		// refuse it too, but in bytes of a "property list".
		return nil, fmt.Errorf("%w: the profile's property list is larger than %d MiB (%d bytes): an unsigned profile, or what a signed one wraps, is at most %d MiB", ErrProfile, PlistLimits.MaxSize>>20, len(t), PlistLimits.MaxSize>>20)
	}
	if err := untrusted.Plist(t, &p.Doc, PlistLimits); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProfile, err)
	}
	p.Plist = t
	if err := p.check(); err != nil {
		return nil, err
	}
	vars, err := Variables(p.Doc)
	if err != nil {
		return nil, err
	}
	p.Variables = vars
	return &p, nil
}

func str(d map[string]any, k string) string { s, _ := d[k].(string); return s }

// check enforces the keys Apple requires of a profile and its payloads.
func (p *Profile) check() error {
	d := p.Doc
	if d == nil {
		return fmt.Errorf("%w: the property list is not a dictionary", ErrProfile)
	}
	if t := str(d, "PayloadType"); t != "Configuration" {
		return fmt.Errorf("%w: PayloadType is %q, not Configuration", ErrProfile, t)
	}
	p.Identifier, p.DisplayName = strings.TrimSpace(str(d, "PayloadIdentifier")), str(d, "PayloadDisplayName")
	if p.Identifier == "" {
		return fmt.Errorf("%w: PayloadIdentifier is missing", ErrProfile)
	}
	if len(p.Identifier) > 255 || strings.ContainsAny(p.Identifier, "$ ") || strings.IndexFunc(p.Identifier, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: PayloadIdentifier %q must be a reverse-DNS name of at most 255 characters without spaces or variables", ErrProfile, p.Identifier)
	}
	if str(d, "PayloadUUID") == "" {
		return fmt.Errorf("%w: PayloadUUID is missing", ErrProfile)
	}
	content, ok := d["PayloadContent"].([]any)
	if !ok || len(content) == 0 {
		return fmt.Errorf("%w: PayloadContent must be a non-empty array of payloads", ErrProfile)
	}
	seen := map[string]bool{}
	for i, item := range content {
		pl, ok := item.(map[string]any)
		if !ok {
			return fmt.Errorf("%w: PayloadContent[%d] is not a dictionary", ErrProfile, i)
		}
		t, id := str(pl, "PayloadType"), str(pl, "PayloadIdentifier")
		for _, k := range []string{"PayloadType", "PayloadIdentifier", "PayloadUUID"} {
			if str(pl, k) == "" {
				return fmt.Errorf("%w: PayloadContent[%d] (%s) has no %s", ErrProfile, i, t, k)
			}
		}
		if seen[id] {
			return fmt.Errorf("%w: two payloads have the PayloadIdentifier %q", ErrProfile, id)
		}
		seen[id] = true
		p.PayloadTypes = append(p.PayloadTypes, t)
	}
	return nil
}

// Per-user variables a profile may use in string values. A literal "$"
// is written "$$".
const (
	VarEmail          = "EMAIL"            // the user's email address
	VarManagedAppleID = "MANAGED_APPLE_ID" // the user's Managed Apple Account
	VarUserName       = "USER_NAME"        // the user's full name
	VarUserID         = "USER_ID"          // Pomona's user id (us_…)
	VarEnrollmentID   = "ENROLLMENT_ID"    // Apple's EnrollmentID of the device
	VarTenant         = "TENANT"           // the tenant's name
	// VarSCEPURL is Pomona's SCEP service; VarSCEPChallenge, in a
	// com.apple.security.scep payload's Challenge, becomes a one-time
	// challenge bound to the device and the profile that issues a user
	// certificate (filled in after the content hash is taken: the hash
	// stays the same from one delivery to the next).
	VarSCEPURL       = "SCEP_URL"
	VarSCEPChallenge = "SCEP_CHALLENGE"
)

// Known lists the variable names, sorted.
var Known = []string{VarEmail, VarEnrollmentID, VarManagedAppleID, VarSCEPChallenge, VarSCEPURL, VarTenant, VarUserID, VarUserName}

// ChallengePlaceholder is what a rendered profile holds where the one-time
// SCEP challenge goes (pass it as the value of VarSCEPChallenge).
const ChallengePlaceholder = "$" + VarSCEPChallenge

var varRE = regexp.MustCompile(`\$\$|\$[A-Z][A-Z0-9_]*`)

// Variables returns the variable names doc's string values use (sorted),
// or an error naming the first unknown one (wrapping ErrProfile).
func Variables(doc map[string]any) ([]string, error) {
	used := map[string]bool{}
	var bad error
	walkStrings(doc, "", func(path, s string) string {
		for _, m := range varRE.FindAllString(s, -1) {
			if m == "$$" {
				continue
			}
			name := m[1:]
			if !known(name) {
				if bad == nil {
					bad = fmt.Errorf("%w: %s uses the unknown variable $%s (known: $%s; write $$ for a literal $)", ErrProfile, path, name, strings.Join(Known, ", $"))
				}
				continue
			}
			used[name] = true
		}
		return s
	})
	if bad != nil {
		return nil, bad
	}
	out := make([]string, 0, len(used))
	for n := range used {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func known(name string) bool {
	for _, k := range Known {
		if k == name {
			return true
		}
	}
	return false
}

// walkStrings calls fn on every string value under v (dictionary values
// and array items, not keys) and replaces it with fn's result. path names
// the value for messages ("PayloadContent[0].SSID_STR").
func walkStrings(v any, path string, fn func(path, s string) string) any {
	switch x := v.(type) {
	case string:
		return fn(path, x)
	case map[string]any:
		for k, e := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			x[k] = walkStrings(e, p, fn)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = walkStrings(e, fmt.Sprintf("%s[%d]", path, i), fn)
		}
		return x
	}
	return v
}

// MissingValueError: a variable the profile uses has no value for this
// user or device (the item fails for that device only).
type MissingValueError struct{ Names []string }

func (e *MissingValueError) Error() string {
	return "no value for $" + strings.Join(e.Names, ", $") + " for this user or device"
}

// Render substitutes values (variable name → value) into a copy of the
// stored profile plist and returns the XML property list to deliver and
// its content hash (hex SHA-256 of those bytes): the hash changes when the
// profile or any substituted value changes. A used variable without a
// non-empty value gives *MissingValueError.
func Render(stored []byte, values map[string]string) ([]byte, string, error) {
	var doc map[string]any
	if err := untrusted.Plist(stored, &doc, PlistLimits); err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrProfile, err)
	}
	missing := map[string]bool{}
	walkStrings(doc, "", func(_, s string) string {
		if !strings.Contains(s, "$") {
			return s
		}
		return varRE.ReplaceAllStringFunc(s, func(m string) string {
			if m == "$$" {
				return "$"
			}
			v := values[m[1:]]
			if v == "" {
				missing[m[1:]] = true
			}
			return v
		})
	})
	if len(missing) > 0 {
		e := &MissingValueError{}
		for n := range missing {
			e.Names = append(e.Names, n)
		}
		sort.Strings(e.Names)
		return nil, "", e
	}
	out, err := plist.MarshalIndent(doc, "\t")
	if err != nil {
		return nil, "", err
	}
	return out, Hash(out), nil
}

// Hash is the hex SHA-256 of b.
func Hash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
