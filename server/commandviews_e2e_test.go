package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
)

// The device's command list carries a result only up to
// app.HistoryResultMax (its size always): a larger one is read, decoded
// and sent only by the single command's view, and resend finds a command
// without reading the history's results.
func TestCommandListBoundsResults(t *testing.T) {
	w := newWorld(t, true)
	e := w.e
	k := e.APIKey
	ctx := t.Context()
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	st := e.Server.Store
	enr, err := st.EnrollmentByAppleID(ctx, d.MDM.EnrollmentID)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := st.Channel(ctx, enr.ID, "device", "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	result := func(uuid string, n int) []byte {
		return []byte(`<plist version="1.0"><dict><key>Status</key><string>Acknowledged</string><key>CommandUUID</key><string>` + uuid +
			`</string><key>EnrollmentID</key><string>x</string><key>Note</key><string>` + strings.Repeat("a", n) + `</string></dict></plist>`)
	}
	sizes := map[string]int{}
	for uuid, n := range map[string]int{"SMALL-1": 10, "LARGE-1": app.HistoryResultMax} {
		if err := st.Enqueue(ctx, &store.CommandRecord{UUID: uuid, RequestType: "DeviceInformation", Payload: mdmCommand(t, uuid), CreatedAt: now}, []string{ch.ID}); err != nil {
			t.Fatal(err)
		}
		r := result(uuid, n)
		sizes[uuid] = len(r)
		if _, err := st.RecordResult(ctx, enr.ID, ch.ID, uuid, mdm.Acknowledged, r, now, nil); err != nil {
			t.Fatal(err)
		}
	}
	list := map[string]map[string]any{}
	for _, c := range do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", nil, k).json(t)["commands"].([]any) {
		c := c.(map[string]any)
		list[c["command_uuid"].(string)] = c
	}
	if r, _ := list["SMALL-1"]["result"].(map[string]any); r["Note"] != "aaaaaaaaaa" || list["SMALL-1"]["result_size"] != float64(sizes["SMALL-1"]) {
		t.Fatalf("small result in the list: %v", list["SMALL-1"])
	}
	if _, ok := list["LARGE-1"]["result"]; ok || list["LARGE-1"]["result_size"] != float64(sizes["LARGE-1"]) {
		t.Fatalf("large result in the list: result present %v, size %v (want absent, %d)", ok, list["LARGE-1"]["result_size"], sizes["LARGE-1"])
	}
	one := do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands/LARGE-1", nil, k)
	mustStatus(t, one, 200)
	if r, _ := one.json(t)["result"].(map[string]any); len(r["Note"].(string)) != app.HistoryResultMax {
		t.Fatalf("the single command's result: %.200s", one.body)
	}
	mustStatus(t, do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands/NOPE", nil, k), 404)
	// Resend reads the one command.
	if rt, id, err := e.Server.App.Devices.Resend(ctx, d.MDM.EnrollmentID, "LARGE-1", "test"); err != nil || rt != "DeviceInformation" || id == "" {
		t.Fatalf("resend: %q %q %v", rt, id, err)
	}
}

func mdmCommand(t *testing.T, uuid string) []byte {
	b, err := mdm.Command{CommandUUID: uuid, Command: map[string]any{"RequestType": "DeviceInformation", "Queries": []any{"OSVersion"}}}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
