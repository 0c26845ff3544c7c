package profiles

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/micromdm/plist"

	"github.com/pomona-mdm/pomona/mdm/mobileconfig"
	"github.com/pomona-mdm/pomona/reconcile"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/untrusted"
)

// TestDelivererHostileValues: values a directory or an admin may hold —
// XML metacharacters, "]]>", another variable's name (no second
// substitution), NUL and other characters XML cannot carry, U+FFFE,
// right-to-left marks, a line separator, the renderer's own marker
// shape, 10 KB — deliver a well-formed profile that the device side's
// decoders (untrusted.Plist, micromdm/plist) read, whose bytes are the
// ones planning hashed (the planning Renderer's, and mobileconfig.Render's),
// and whose variable is filled once: the value's text, not a reference.
func TestDelivererHostileValues(t *testing.T) {
	multi := strings.Replace(wifi, "<string>Corp</string>", "<string>$USER_NAME at $TENANT</string>", 1)
	values := []string{
		`a&b<c>"d"'e'`, "]]><!-- -->", "$EMAIL", "$USER_NAME$$TENANT", "a\x00b", "\x01\x02\x1f\x7f\x0b\x0c", "\uFFFE\uFFFF",
		"\u202eevil\u200f", "\u2028\u0085", "\r\n\t", "PomonaVar00000000000000000000000000000000x0Z",
		strings.Repeat("<&>", 3500), // 10.5 KB
	}
	for _, tmpl := range []string{wifi, multi} {
		names, _ := reconcile.NewRenderer().Vars([]byte(tmpl))
		for _, v := range values {
			vals := map[string]string{"EMAIL": v, "USER_NAME": v, "TENANT": v}
			planned, hash, err := reconcile.NewRenderer().Render([]byte(tmpl), vals)
			if err != nil {
				t.Fatalf("%q: planning: %v", v, err)
			}
			if want, wantHash, _ := mobileconfig.Render([]byte(tmpl), vals); !bytes.Equal(planned, want) || hash != wantHash {
				t.Fatalf("%q: the planning renderer differs from mobileconfig.Render", v)
			}
			vars, ok := reconcile.EncodeVars(names, vals)
			if !ok {
				t.Fatalf("%q: not encodable", v)
			}
			q := &store.QueuedCommand{CommandRecord: store.CommandRecord{UUID: "CMD-1", RequestType: "InstallProfile", Payload: []byte(tmpl),
				Render: store.RenderProfile}, Vars: vars}
			body, err := (&Deliverer{}).Render(context.Background(), q)
			if err != nil {
				t.Fatalf("%q: %v", v, err)
			}
			_, _, payload := delivered(t, body)
			if !bytes.Equal(payload, planned) || mobileconfig.Hash(payload) != hash {
				t.Fatalf("%q: delivered bytes are not the planned ones", v)
			}
			dec := xml.NewDecoder(bytes.NewReader(payload))
			dec.Strict = true
			for err == nil {
				_, err = dec.Token()
			}
			if err != io.EOF {
				t.Fatalf("%q: not well-formed XML: %v", v, err)
			}
			var doc map[string]any
			if err := untrusted.Plist(payload, &doc, untrusted.PlistLimits{MaxSize: 1 << 20}); err != nil {
				t.Fatalf("%q: untrusted.Plist: %v", v, err)
			}
			var p struct{ PayloadContent []map[string]any }
			if err := plist.Unmarshal(payload, &p); err != nil || len(p.PayloadContent) != 1 {
				t.Fatalf("%q: micromdm/plist: %v", v, err)
			}
			// Filled once: the value's text (XML-invalid characters
			// replaced as the encoder replaces them), never expanded again.
			if strings.Contains(string(payload), "$EMAIL") != strings.Contains(v, "$EMAIL") || strings.Contains(string(payload), "PomonaVar") != strings.Contains(v, "PomonaVar") {
				t.Fatalf("%q: substituted again or a marker left:\n%s", v, payload)
			}
		}
	}
}
