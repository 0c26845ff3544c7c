// Package address validates and normalises the identifiers people type: the
// email address entered on the device, and the enterprise domains tenants
// own. Discovery and the directory share it so that both agree on what a
// valid domain or email is.
package address

import (
	"errors"
	"fmt"
	"strings"
)

// MaxEmail bounds an email address (RFC 5321: 64 + 1 + 255).
const MaxEmail = 320

// Domain lower-cases d, drops one trailing dot and checks that it is a
// fully qualified ASCII host name (IDNs must be given in punycode).
func Domain(d string) (string, error) {
	d = strings.ToLower(strings.TrimSpace(d))
	d = strings.TrimSuffix(d, ".")
	if d == "" {
		return "", errors.New("domain is empty")
	}
	if len(d) > 253 {
		return "", errors.New("domain is longer than 253 characters")
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("domain %q is not fully qualified (it needs a dot)", d)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return "", fmt.Errorf("domain %q has an empty or over-long label", d)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("domain %q has a label that starts or ends with '-'", d)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				if c >= 0x80 {
					return "", fmt.Errorf("domain %q is not ASCII: give internationalised domains in punycode (xn--…)", d)
				}
				return "", fmt.Errorf("domain %q contains %q", d, string(c))
			}
		}
	}
	tld := labels[len(labels)-1]
	if strings.Trim(tld, "0123456789") == "" {
		return "", fmt.Errorf("domain %q looks like an IP address", d)
	}
	return d, nil
}

// Email splits s at its last '@', validates both parts and returns the
// address lower-cased with its domain.
func Email(s string) (email, domain string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", "", errors.New("email is empty")
	}
	if len(s) > MaxEmail {
		return "", "", fmt.Errorf("email is longer than %d characters", MaxEmail)
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", "", fmt.Errorf("%q is not an email address (no '@')", s)
	}
	local, dom := s[:at], s[at+1:]
	if local == "" || len(local) > 64 {
		return "", "", fmt.Errorf("%q has an empty or over-long part before '@'", s)
	}
	if strings.ContainsRune(local, '@') {
		return "", "", fmt.Errorf("%q contains more than one '@'", s)
	}
	for _, r := range local {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`"(),:;<>[\]`, r) {
			return "", "", fmt.Errorf("%q contains %q before '@'", s, r)
		}
	}
	dom, err = Domain(dom)
	if err != nil {
		return "", "", err
	}
	return strings.ToLower(local) + "@" + dom, dom, nil
}
