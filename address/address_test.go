package address

import "testing"

func TestDomain(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Example.COM", "example.com"},
		{" corp.example.net. ", "corp.example.net"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"a-b.c9.example", "a-b.c9.example"},
		{"localhost", ""},
		{"", ""},
		{"-bad.example", ""},
		{"bad-.example", ""},
		{"a..example", ""},
		{"bücher.example", ""},
		{"exa mple.com", ""},
		{"10.0.0.1", ""},
		{"example.com/evil", ""},
	} {
		got, err := Domain(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("Domain(%q) = %q, want error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Domain(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestEmail(t *testing.T) {
	for _, tc := range []struct{ in, email, domain string }{
		{"Alice@Example.com", "alice@example.com", "example.com"},
		{"alice+work@example.com", "alice+work@example.com", "example.com"},
		{"first.last@corp.example.net", "first.last@corp.example.net", "corp.example.net"},
		{"a@b@example.com", "", ""},
		{"@example.com", "", ""},
		{"alice@", "", ""},
		{"alice", "", ""},
		{"al ice@example.com", "", ""},
		{"alice@localhost", "", ""},
		{"<alice>@example.com", "", ""},
	} {
		e, d, err := Email(tc.in)
		if tc.email == "" {
			if err == nil {
				t.Errorf("Email(%q) accepted as %q", tc.in, e)
			}
			continue
		}
		if err != nil || e != tc.email || d != tc.domain {
			t.Errorf("Email(%q) = %q %q %v", tc.in, e, d, err)
		}
	}
}
