package branding

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"
)

func TestAccent(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
		msg      string
	}{
		{"", "", true, ""},
		{"#0057B8", "#0057b8", true, ""},
		{" #036 ", "#003366", true, ""},
		{"#6cb4ff", "", false, "2.19:1"}, // the light blue of the dark-mode bug
		{"#ffffff", "", false, "1.00:1"},
		{"#767676", "#767676", true, ""}, // 4.54:1, just enough
		{"#777777", "", false, "4.48:1"},
		{"0057b8", "", false, "#rrggbb"},
		{"#12345g", "", false, "#rrggbb"},
		{"#1234", "", false, "#rrggbb"},
		{"red", "", false, "#rrggbb"},
		{"#0057b8;background:url(x)", "", false, "#rrggbb"},
	} {
		got, err := Accent(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Accent(%q) = %q, %v", tc.in, got, err)
			continue
		}
		if err != nil && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.msg)) {
			t.Errorf("Accent(%q): %v, want a reason with %q", tc.in, err, tc.msg)
		}
	}
}

func TestContrast(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want float64
	}{
		{"#000000", "#ffffff", 21},
		{"#ffffff", "#000000", 21},
		{"#ffffff", "#ffffff", 1},
		{"#6cb4ff", "#ffffff", 2.19}, // what axe-core reported (2.18 with its rounding)
	} {
		if got := Contrast(tc.a, tc.b); got < tc.want-0.01 || got > tc.want+0.01 {
			t.Errorf("Contrast(%s, %s) = %.3f, want %.2f", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestContactAndPrivacyURL(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"", true},
		{"Questions? IT help desk, extension 4357 or it@example.com", true},
		{strings.Repeat("é", MaxContact), true},
		{strings.Repeat("a", MaxContact+1), false},
		{"line one\nline two", false},
		{"tab\there", false},
		{"\xff\xfe", false},
	} {
		if _, err := Contact(tc.in); (err == nil) != tc.ok {
			t.Errorf("Contact(%q): %v", tc.in, err)
		}
	}
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"", true},
		{"https://example.com/privacy#mdm", true},
		{"http://example.com/privacy", false},
		{"javascript:alert(1)", false},
		{"https:///nohost", false},
		{"https://user:pw@example.com/", false},
		{"//example.com/privacy", false},
		{"/privacy", false},
		{"https://example.com/" + strings.Repeat("a", MaxURL), false},
	} {
		if _, err := PrivacyURL(tc.in); (err == nil) != tc.ok {
			t.Errorf("PrivacyURL(%q): %v", tc.in, err)
		}
	}
}

func TestLogo(t *testing.T) {
	img := func(w, h int) image.Image {
		m := image.NewRGBA(image.Rect(0, 0, w, h))
		m.Set(0, 0, color.RGBA{0, 0x57, 0xb8, 0xff})
		return m
	}
	var pngSmall, pngHuge, jpg bytes.Buffer
	png.Encode(&pngSmall, img(120, 40))
	png.Encode(&pngHuge, img(MaxLogoSide+1, 1))
	jpeg.Encode(&jpg, img(64, 64), nil)
	for _, tc := range []struct {
		name string
		data []byte
		want string
		msg  string
	}{
		{"png", pngSmall.Bytes(), PNG, ""},
		{"jpeg", jpg.Bytes(), JPEG, ""},
		{"empty", nil, "", "empty"},
		{"too many pixels", pngHuge.Bytes(), "", "pixels"},
		{"too big", append(pngSmall.Bytes(), make([]byte, MaxLogoBytes)...), "", "at most"},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), "", "SVG"},
		{"svg with xml declaration", []byte(`<?xml version="1.0"?><svg/>`), "", "SVG"},
		{"gif", []byte("GIF89a\x01\x00\x01\x00"), "", "PNG or JPEG"},
		{"html", []byte("<html><script>alert(1)</script>"), "", "PNG or JPEG"},
		{"png signature, broken header", []byte("\x89PNG\r\n\x1a\nnot really"), "", "readable PNG"},
		{"jpeg signature, broken", []byte{0xff, 0xd8, 0xff, 0x00}, "", "readable JPEG"},
	} {
		got, err := Logo(tc.data)
		if got != tc.want || (tc.msg == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.msg)) {
			t.Errorf("%s: %q, %v (want %q, reason with %q)", tc.name, got, err, tc.want, tc.msg)
		}
	}
}
