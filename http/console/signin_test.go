package console

import "testing"

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/console/devices?status=all": "/console/devices?status=all",
		"/console/users/us_1":         "/console/users/us_1",
		"":                            "/console/",
		"https://evil.example/":       "/console/",
		"//evil.example/console/":     "/console/",
		"/console/..//evil.example":   "/console/",
		"/console//evil.example":      "/console/",
		"/console/\\evil.example":     "/console/",
		"/api/v1/tenants":             "/console/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
