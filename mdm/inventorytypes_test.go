package mdm_test

import (
	"slices"
	"testing"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/mdm/catalog"
)

// TestInventoryRequestTypes: InventoryOf adds a section for exactly the
// request types InventoryRequestTypes lists, among every command the
// catalogue knows on either platform.
func TestInventoryRequestTypes(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range []string{"iOS", "macOS"} {
		for _, rt := range catalog.Default().AllowedCommands(p) {
			seen[rt] = true
		}
	}
	for _, rt := range mdm.InventoryRequestTypes {
		seen[rt] = true
	}
	for rt := range seen {
		_, _, _, ok := mdm.InventoryOf(rt, map[string]any{})
		if listed := slices.Contains(mdm.InventoryRequestTypes, rt); ok != listed {
			t.Errorf("%s: InventoryOf ok %v, listed in InventoryRequestTypes %v", rt, ok, listed)
		}
	}
}
