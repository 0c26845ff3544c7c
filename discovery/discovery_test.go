package discovery

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseQuery(t *testing.T) {
	for _, tc := range []struct {
		raw, email, family, reason string
	}{
		{raw: "user-identifier=alice%40example.com&model-family=iPhone", email: "alice@example.com", family: "iPhone"},
		{raw: "user-identifier=alice@example.com&model-family=iPad", email: "alice@example.com", family: "iPad"},
		{raw: "model-family=Mac&user-identifier=Alice%40Example.COM", email: "alice@example.com", family: "Mac"},
		// A literal '+' stays a '+', an encoded one too.
		{raw: "user-identifier=alice+work@example.com&model-family=iPhone", email: "alice+work@example.com", family: "iPhone"},
		{raw: "user-identifier=alice%2Bwork%40example.com&model-family=iPhone", email: "alice+work@example.com", family: "iPhone"},
		// Unknown parameters (Apple-internal builds add some) are ignored.
		{raw: "user-identifier=a@example.com&model-family=iPhone&ignoreBusinessEssentialsSubscription=true", email: "a@example.com", family: "iPhone"},
		{raw: "", reason: "missing-identifier"},
		{raw: "model-family=iPhone", reason: "missing-identifier"},
		{raw: "user-identifier=&model-family=iPhone", reason: "missing-identifier"},
		{raw: "user-identifier=alice&model-family=iPhone", reason: "malformed-identifier"},
		{raw: "user-identifier=alice@localhost&model-family=iPhone", reason: "malformed-identifier"},
		{raw: "user-identifier=%40example.com&model-family=iPhone", reason: "malformed-identifier"},
		{raw: "user-identifier=alice%ZZ@example.com&model-family=iPhone", reason: "malformed"},
		{raw: "user-identifier=a@example.com&user-identifier=b@example.com&model-family=iPhone", reason: "malformed"},
		{raw: "user-identifier=a@example.com", reason: "missing-model-family"},
		{raw: "user-identifier=a@example.com&model-family=Watch", reason: "unsupported-model-family"},
		{raw: "user-identifier=a@example.com&model-family=AppleTV", reason: "unsupported-model-family"},
		{raw: "user-identifier=a@example.com&model-family=iphone", reason: "unsupported-model-family"},
		{raw: "user-identifier=a@example.com&model-family=RealityDevice", reason: "unsupported-model-family"},
		{raw: "user-identifier=" + strings.Repeat("a", 3000) + "@example.com&model-family=iPhone", reason: "malformed"},
	} {
		req, err := ParseQuery(tc.raw)
		if tc.reason != "" {
			var rej *Rejection
			if !errors.As(err, &rej) || rej.Reason != tc.reason {
				t.Errorf("ParseQuery(%.60q) = %+v, %v; want rejection %s", tc.raw, req, err, tc.reason)
				continue
			}
			if rej.Message == "" || rej.Body().Code != FailedCode {
				t.Errorf("rejection %s lacks message or code", tc.reason)
			}
			continue
		}
		if err != nil || req.Email != tc.email || req.ModelFamily != tc.family {
			t.Errorf("ParseQuery(%q) = %+v, %v", tc.raw, req, err)
		}
	}
}

func TestValidateResponse(t *testing.T) {
	good := Answer("https://mdm.example.net/enroll/t1")
	if err := ValidateResponse(good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Response{
		{},
		{Servers: []Server{{Version: "mdm-byod"}}},
		{Servers: []Server{{BaseURL: "https://x.example"}}},
		{Servers: []Server{{Version: "mdm", BaseURL: "https://x.example"}}},
		{Servers: []Server{{Version: "mdm-byod", BaseURL: "http://x.example"}}},
		{Servers: []Server{{Version: "mdm-byod", BaseURL: "/relative"}}},
	} {
		if ValidateResponse(bad) == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

func TestSnippets(t *testing.T) {
	pub := "https://mdm.example.net"
	for _, kind := range []string{"nginx", "apache", "caddy"} {
		s, err := Snippet(kind, pub, "", "example.com")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(s, "mdm.example.net") || !strings.Contains(s, "remotemanagement") {
			t.Errorf("%s snippet: %s", kind, s)
		}
	}
	if s, _ := Snippet("nginx", pub, "", "example.com"); !strings.Contains(s, "$is_args$args") {
		t.Error("nginx snippet drops the query string")
	}
	if s, _ := Snippet("caddy", pub+"/pomona/", "", "example.com"); !strings.Contains(s, "https://mdm.example.net/pomona{uri}") {
		t.Errorf("caddy snippet with a path prefix: %s", s)
	}
	js, err := Snippet("json", pub, pub+"/enroll/t1", "example.com")
	if err != nil || !strings.Contains(js, `"BaseURL": "https://mdm.example.net/enroll/t1"`) || !strings.Contains(js, `"mdm-byod"`) {
		t.Fatalf("json snippet: %s %v", js, err)
	}
	if _, err := Snippet("json", pub, "", "example.com"); err == nil {
		t.Error("json snippet without a tenant")
	}
	if _, err := Snippet("iis", pub, "", ""); err == nil {
		t.Error("unknown kind accepted")
	}
}

// FuzzParseQuery: the parser never panics, and whatever it accepts is a
// valid lower-case email in an enrolled family that survives a round trip.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"user-identifier=alice%40example.com&model-family=iPhone",
		"user-identifier=alice+work@example.com&model-family=Mac",
		"user-identifier=%E2%82%AC@example.com&model-family=iPad",
		"&&==&user-identifier=%&model-family",
		"user-identifier=a@b.c&model-family=iPhone&user-identifier=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		req, err := ParseQuery(raw)
		if err != nil {
			var rej *Rejection
			if !errors.As(err, &rej) {
				t.Fatalf("error is not a *Rejection: %v", err)
			}
			return
		}
		if !Enrolled[req.ModelFamily] {
			t.Fatalf("accepted family %q", req.ModelFamily)
		}
		if req.Email != strings.ToLower(req.Email) || !strings.Contains(req.Email, "@"+req.Domain) {
			t.Fatalf("bad email/domain %q %q", req.Email, req.Domain)
		}
		if !utf8.ValidString(req.Domain) {
			t.Fatalf("domain not UTF-8")
		}
		again, err := ParseQuery("user-identifier=" + url.PathEscape(req.UserIdentifier) + "&model-family=" + req.ModelFamily)
		if err != nil || again.Email != req.Email {
			t.Fatalf("round trip of %q: %+v %v", req.UserIdentifier, again, err)
		}
	})
}
