package reconcile

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/mdm/mobileconfig"

	"github.com/pomona-mdm/pomona/internal/benchprofile"
)

// The Renderer's output is mobileconfig.Render's, byte for byte, error
// for error, for values with every character the encoder escapes.
func TestRendererIsRender(t *testing.T) {
	multi := strings.Replace(benchprofile.WiFi, "<string>Bench</string>", "<string>$USER_NAME at $TENANT costs $$5 &amp; more</string>", 1)
	plists := map[string]string{
		"one variable":   benchprofile.WiFi,
		"several":        multi,
		"no variable":    strings.Replace(benchprofile.WiFi, "$EMAIL", "fixed@example.com", 1),
		"does not parse": "<plist><dict><key>x</key>",
	}
	values := []map[string]string{
		{"EMAIL": "alice@example.com", "USER_NAME": "Alice", "TENANT": "Example"},
		{"EMAIL": `a&b<c>"d"'e'` + "\t\r\n" + `]]>`, "USER_NAME": "Zoë 日本", "TENANT": "$EMAIL"},
		{"EMAIL": "x\x00y\uFFFE", "USER_NAME": "$$", "TENANT": "T"},
		{"EMAIL": "bad \xff\xfe utf-8", "USER_NAME": "U", "TENANT": "T"},
		{"EMAIL": "", "USER_NAME": "U", "TENANT": "T"},
		{"USER_NAME": "U"},
		nil,
	}
	for name, pl := range plists {
		r := NewRenderer()
		for i, v := range values {
			for round := 0; round < 2; round++ { // compiled, then from the cache
				wb, wh, werr := mobileconfig.Render([]byte(pl), v)
				gb, gh, gerr := r.Render([]byte(pl), v)
				if string(gb) != string(wb) || gh != wh || fmt.Sprint(gerr) != fmt.Sprint(werr) {
					t.Fatalf("%s, values %d:\n got %q %s %v\nwant %q %s %v", name, i, gb, gh, gerr, wb, wh, werr)
				}
			}
		}
	}
}

// The Renderer's plans are Plan's.
func TestRendererPlan(t *testing.T) {
	p := []Profile{{ProfileID: "pr_1", Identifier: "com.example.bench.wifi", Version: 1, Plist: []byte(benchprofile.WiFi), Included: true}}
	r := NewRenderer()
	now := time.Now()
	for _, v := range []map[string]string{{"EMAIL": "a@example.com"}, {}, {"EMAIL": "<b>"}} {
		dev := Device{Platform: "iOS", Values: v}
		want, _ := Plan(dev, p, nil, now)
		got, _ := r.Plan(dev, p, nil, now)
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Fatalf("%v: got %+v, want %+v", v, got, want)
		}
	}
}

// BenchmarkRendererNewDevice is BenchmarkPlanNewDevice with a batch's
// Renderer.
func BenchmarkRendererNewDevice(b *testing.B) {
	p := []Profile{{ProfileID: "pr_1", Identifier: "com.example.bench.wifi", Version: 1, Plist: []byte(benchprofile.WiFi), Included: true}}
	now := time.Now()
	r := NewRenderer()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		acts, _ := r.Plan(Device{Platform: "iOS", OSVersion: "18.2", Values: map[string]string{"EMAIL": fmt.Sprint("u", i, "@example.com")}}, p, nil, now)
		if len(acts) != 1 || acts[0].Kind != Install {
			b.Fatal(acts)
		}
	}
}
