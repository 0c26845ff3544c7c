package server_test

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/internal/testenv"
)

// TestOpenAPIProfileStateFields: the ProfileState schema names the JSON
// fields apitypes.ProfileState has (user_email, not email; no device_id),
// and Device lists its profiles as ProfileState.
func TestOpenAPIProfileStateFields(t *testing.T) {
	e := testenv.Start(t)
	a := do(t, e, "GET", "/api/v1/openapi.json", nil, "")
	mustStatus(t, a, 200)
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(a.body, &doc); err != nil {
		t.Fatal(err)
	}
	var documented, fields []string
	for k := range doc.Components.Schemas["ProfileState"].Properties {
		documented = append(documented, k)
	}
	ty := reflect.TypeOf(apitypes.ProfileState{})
	for i := 0; i < ty.NumField(); i++ {
		name, _, _ := strings.Cut(ty.Field(i).Tag.Get("json"), ",")
		fields = append(fields, name)
	}
	sort.Strings(documented)
	sort.Strings(fields)
	if strings.Join(documented, " ") != strings.Join(fields, " ") {
		t.Errorf("ProfileState: openapi.json %v, apitypes %v", documented, fields)
	}
	if p := string(doc.Components.Schemas["Device"].Properties["profiles"]); !strings.Contains(p, "#/components/schemas/ProfileState") {
		t.Errorf("Device.profiles: %q, want an array of ProfileState", p)
	}
}
