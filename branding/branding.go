// Package branding validates a tenant's branding of the device sign-in
// pages: an accent colour, a logo, a "contact IT" line and a link to the
// company's privacy statement. It is pure: no HTTP, no storage.
//
// The rules keep the pages accessible and inert:
//   - the accent is a hex colour with a contrast of at least 4.5:1 against
//     white (WCAG 2.2 SC 1.4.3, https://www.w3.org/TR/WCAG22/#contrast-minimum):
//     it carries the primary button's white text and is the link colour on
//     the white card; in dark mode links keep the page's own light colour;
//   - a logo is PNG or JPEG only, at most MaxLogoBytes and MaxLogoSide
//     pixels a side, checked by decoding its header; SVG is refused
//     because it can carry scripts;
//   - the contact line is one line of plain text (at most MaxContact
//     characters), the privacy link an absolute https URL.
package branding

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // registers the JPEG header decoder for DecodeConfig
	_ "image/png"  // registers the PNG header decoder
	"math"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits.
const (
	MaxLogoBytes = 256 << 10 // 256 KiB: a logo, not a photo
	MaxLogoSide  = 2048      // pixels, either side
	MaxContact   = 200       // characters
	MaxURL       = 2048      // bytes
	MinContrast  = 4.5       // WCAG 2.2 AA, normal text
)

// ErrInvalid wraps every refusal; the message says why.
var ErrInvalid = errors.New("invalid branding")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Accent normalises an accent colour: "" (none, the default colours) or
// "#rrggbb" / "#rgb" in any case, returned as lower-case "#rrggbb". It is
// refused when its contrast against white is below MinContrast, with the
// ratio in the message.
func Accent(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	hex := strings.TrimPrefix(s, "#")
	if len(hex) == 3 {
		hex = string([]byte{hex[0], hex[0], hex[1], hex[1], hex[2], hex[2]})
	}
	if !strings.HasPrefix(s, "#") || len(hex) != 6 {
		return "", invalid("accent colour %q: give it as #rrggbb (hex)", s)
	}
	if _, err := strconv.ParseUint(hex, 16, 32); err != nil {
		return "", invalid("accent colour %q: give it as #rrggbb (hex)", s)
	}
	c := "#" + strings.ToLower(hex)
	if r := Contrast(c, "#ffffff"); r < MinContrast {
		return "", invalid("accent colour %s has a contrast of %.2f:1 with white; it needs at least %.1f:1 (white button text and links on white): choose a darker shade", c, r, MinContrast)
	}
	return c, nil
}

// Contrast returns the WCAG contrast ratio (1 to 21) of two "#rrggbb"
// colours (https://www.w3.org/TR/WCAG22/#dfn-contrast-ratio).
func Contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// luminance is WCAG's relative luminance of "#rrggbb"
// (https://www.w3.org/TR/WCAG22/#dfn-relative-luminance).
func luminance(c string) float64 {
	v, _ := strconv.ParseUint(strings.TrimPrefix(c, "#"), 16, 32)
	ch := func(x uint64) float64 {
		s := float64(x) / 255
		if s <= 0.04045 {
			return s / 12.92
		}
		return math.Pow((s+0.055)/1.055, 2.4)
	}
	return 0.2126*ch(v>>16&0xff) + 0.7152*ch(v>>8&0xff) + 0.0722*ch(v&0xff)
}

// Contact checks the "contact IT" line: one line of plain text, at most
// MaxContact characters, no control characters; spaces are trimmed.
func Contact(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", invalid("contact line: not UTF-8 text")
	}
	if n := utf8.RuneCountInString(s); n > MaxContact {
		return "", invalid("contact line: %d characters, at most %d", n, MaxContact)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", invalid("contact line: one line of text, without control characters")
		}
	}
	return s, nil
}

// PrivacyURL checks the privacy-statement link: "" (none) or an absolute
// https URL with a host and no user information, at most MaxURL bytes.
func PrivacyURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	if len(s) > MaxURL {
		return "", invalid("privacy statement link: %d bytes, at most %d", len(s), MaxURL)
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", invalid("privacy statement link %q: give an https:// address", s)
	}
	return u.String(), nil
}

// Logo types.
const (
	PNG  = "image/png"
	JPEG = "image/jpeg"
)

// Logo checks an uploaded logo and returns its content type (PNG or JPEG).
// The size is checked before anything parses the data; the format by its
// signature and by decoding the image header (dimensions at most
// MaxLogoSide). SVG, GIF, WebP and anything else are refused.
func Logo(data []byte) (string, error) {
	if len(data) == 0 {
		return "", invalid("logo: the file is empty")
	}
	if len(data) > MaxLogoBytes {
		return "", invalid("logo: %d bytes, at most %d (%d KiB)", len(data), MaxLogoBytes, MaxLogoBytes>>10)
	}
	var want string
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		want = "png"
	case bytes.HasPrefix(data, []byte{0xff, 0xd8, 0xff}):
		want = "jpeg"
	case looksLikeSVG(data):
		return "", invalid("logo: SVG is not accepted (it can carry scripts): export the logo as PNG")
	default:
		return "", invalid("logo: give a PNG or JPEG image")
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil || format != want {
		return "", invalid("logo: not a readable %s image", strings.ToUpper(want))
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > MaxLogoSide || cfg.Height > MaxLogoSide {
		return "", invalid("logo: %d×%d pixels, at most %d a side", cfg.Width, cfg.Height, MaxLogoSide)
	}
	if format == "png" {
		return PNG, nil
	}
	return JPEG, nil
}

func looksLikeSVG(data []byte) bool {
	head := strings.ToLower(string(data[:min(len(data), 1024)]))
	return strings.Contains(head, "<svg") || strings.HasPrefix(strings.TrimSpace(head), "<?xml")
}
