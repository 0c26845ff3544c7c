package directory

import (
	"slices"
	"strings"
	"testing"
)

func TestReadUserCSV(t *testing.T) {
	for _, c := range []struct {
		name, in  string
		header    bool // header accepted
		rows      int
		badLines  []int
		firstMail string
	}{
		{"plain", "email,name\nalice@example.com,Alice\nbob@example.com,Bob\n", true, 2, nil, "alice@example.com"},
		{"BOM and spaces", "\ufeffEmail , Name\n alice@example.com , Alice \n", true, 1, nil, "alice@example.com"},
		{"blank lines skipped", "email\n\nalice@example.com\n\n", true, 1, nil, "alice@example.com"},
		{"bad rows kept apart", "email,enabled\nalice@example.com,yes-ish\n,true\nbob@example.com,false,extra\ncarol@example.com,true\n", true, 4, []int{2, 3, 4}, "alice@example.com"},
		{"error column ignored (pomona user import --errors)", "email,name,error\nalice@example.com,Alice,password: too short\n", true, 1, nil, "alice@example.com"},
		{"error column twice", "email,error,Error\n", false, 0, nil, ""},
		{"unknown column", "email,shoe_size\n", false, 0, nil, ""},
		{"no email column", "name\nAlice\n", false, 0, nil, ""},
		{"duplicate column", "email,email\n", false, 0, nil, ""},
		{"empty", "", false, 0, nil, ""},
		{"broken quote stops", "email,name\n\"alice@example.com,Alice\nbob@example.com,Bob\n", true, 1, []int{3}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, rows, err := ReadUserCSV(strings.NewReader(c.in), "")
			if (err == nil) != c.header {
				t.Fatalf("header error %v", err)
			}
			if len(rows) != c.rows {
				t.Fatalf("%d rows: %+v", len(rows), rows)
			}
			var bad []int
			for _, r := range rows {
				if r.Err != nil {
					bad = append(bad, r.Line)
				}
			}
			if !slices.Equal(bad, c.badLines) {
				t.Fatalf("bad lines %v, want %v", bad, c.badLines)
			}
			if c.firstMail != "" && rows[0].Input.Email != c.firstMail {
				t.Fatalf("first email %q", rows[0].Input.Email)
			}
		})
	}
}

// FuzzReadUserCSV: any upload gives rows or a header error, never a panic,
// and every row either has an error or an email.
func FuzzReadUserCSV(f *testing.F) {
	f.Add("email,name\nalice@example.com,Alice\n")
	f.Add("email,enabled\n\"x,\"y\n")
	f.Add("\ufeffemail\n\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		_, rows, err := ReadUserCSV(strings.NewReader(in), "tenant")
		if err != nil {
			return
		}
		for _, r := range rows {
			if r.Err == nil && r.Input.Email == "" {
				t.Fatalf("row %d accepted without an email", r.Line)
			}
		}
	})
}
