package console

import (
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// Device answers are attacker-controlled: every key and value is escaped.
func TestRenderValueEscapes(t *testing.T) {
	evil := "<script>alert(1)</script>"
	out := renderValue(map[string]any{
		"DeviceName": evil, evil: []any{evil, map[string]any{"x": evil}}, "Data": []byte{1, 2, 3},
		"When": time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "Flag": true, "CommandUUID": "hidden", "Status": "Acknowledged",
	}, 0)
	if strings.Contains(out, "<script>") || strings.Count(out, "&lt;script&gt;") != 4 {
		t.Fatalf("not escaped: %s", out)
	}
	for _, want := range []string{"3 bytes of data", "2026-01-02 03:04:05 UTC", "<dd>yes</dd>"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in %s", want, out)
		}
	}
	if strings.Contains(out, "hidden") || strings.Contains(out, "Acknowledged") {
		t.Error("protocol bookkeeping shown")
	}
	inv := renderInventory(map[string]any{evil: map[string]any{"data": map[string]any{"k": evil}, "updated_at": evil}})
	if strings.Contains(inv, "<script>") {
		t.Fatalf("inventory not escaped: %s", inv)
	}
	// Deep nesting is cut, not followed.
	var deep any = "leaf"
	for i := 0; i < 50; i++ {
		deep = map[string]any{"k": deep}
	}
	if out := renderValue(deep, 0); !strings.Contains(out, "…") {
		t.Fatal("deep nesting rendered fully")
	}
}

func TestBarChart(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	svg := string(barChart([]store.DayCount{{Day: now.Truncate(24 * time.Hour), Count: 3}, {Day: now.AddDate(0, 0, -2).Truncate(24 * time.Hour), Count: 1},
		{Day: now.AddDate(0, 0, -40), Count: 9}}, 30, now))
	if strings.Count(svg, "<rect") != 30 || !strings.Contains(svg, "4 in total") || !strings.Contains(svg, "Nov 24: 3") || strings.Contains(svg, ": 9<") {
		t.Fatal(svg)
	}
}
