package webhook

import (
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	secret, body := []byte(NewSecret()), []byte(`{"type":"command.result"}`)
	now := time.Unix(1_800_000_000, 0)
	h := Sign(secret, body, now)
	if err := Verify(secret, body, h, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		secret, body []byte
		header       string
		at           time.Time
	}{
		"other secret": {[]byte("x"), body, h, now},
		"other body":   {secret, []byte("{}"), h, now},
		"too old":      {secret, body, h, now.Add(10 * time.Minute)},
		"malformed":    {secret, body, "v1=abc", now},
		"empty":        {secret, body, "", now},
	} {
		if Verify(tc.secret, tc.body, tc.header, tc.at, 5*time.Minute) == nil {
			t.Errorf("%s verified", name)
		}
	}
}
