package mdm

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/untrusted/untrustedtest"
)

func read(t testing.TB, name string) []byte {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRealADUECaptures(t *testing.T) {
	a, err := DecodeCheckin(read(t, "adue-ios18.2.1-Authenticate.plist"))
	if err != nil {
		t.Fatal(err)
	}
	if a.MessageType != Authenticate || a.EnrollmentID != "FB833D84-50C0-41DD-99DE-F748E44FFEF5" || a.EnrollmentUserID != "" || a.Kind() != DeviceChannel {
		t.Fatalf("%+v", a)
	}
	tu, err := DecodeCheckin(read(t, "adue-ios18.2.1-TokenUpdate.plist"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tu.Token) != 32 || tu.PushMagic != "7B8A04B0-E9B8-4BB3-8A85-4FD5FA1F70E9" || tu.Topic != "com.apple.mgmt.External.XXXXX" {
		t.Fatalf("%+v", tu)
	}
	idle, err := DecodeResult(read(t, "adue-ios18.2.1-Idle.plist"))
	if err != nil || idle.Status != Idle || idle.EnrollmentID == "" {
		t.Fatalf("%+v %v", idle, err)
	}
}

// Device-enrollment captures carry a UDID: Pomona (user enrollment only)
// refuses them with a clear reason, without crashing.
func TestDeviceEnrollmentCapturesRefused(t *testing.T) {
	for _, f := range []string{"nanomdm-Authenticate.1.plist", "nanomdm-Authenticate.2.plist", "nanomdm-TokenUpdate.1.plist", "nanomdm-TokenUpdate.2.plist"} {
		_, err := DecodeCheckin(read(t, f))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "UDID") {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := DecodeResult(read(t, "nanomdm-DeviceInformation.1.plist")); err == nil || !strings.Contains(err.Error(), "UDID") {
		t.Errorf("DeviceInformation: %v", err)
	}
}

func TestHostileBodies(t *testing.T) {
	deep := `<?xml version="1.0"?><plist version="1.0"><dict><key>EnrollmentID</key><string>E</string><key>Status</key><string>Idle</string><key>X</key>` +
		strings.Repeat("<array>", 100) + strings.Repeat("</array>", 100) + `</dict></plist>`
	for name, b := range map[string]string{
		"empty":         "",
		"json":          `{"Status":"Idle"}`,
		"binary":        "bplist00\xd1\x01\x02",
		"deep":          deep,
		"truncated":     `<?xml version="1.0"?><plist version="1.0"><dict><key>Status</key>`,
		"no status":     `<plist version="1.0"><dict><key>EnrollmentID</key><string>E</string></dict></plist>`,
		"bad status":    `<plist version="1.0"><dict><key>EnrollmentID</key><string>E</string><key>Status</key><string>Maybe</string></dict></plist>`,
		"ack no uuid":   `<plist version="1.0"><dict><key>EnrollmentID</key><string>E</string><key>Status</key><string>Acknowledged</string></dict></plist>`,
		"no enrollment": `<plist version="1.0"><dict><key>Status</key><string>Idle</string></dict></plist>`,
		"wrong type":    `<plist version="1.0"><dict><key>EnrollmentID</key><array/><key>Status</key><string>Idle</string></dict></plist>`,
		"entity":        `<?xml version="1.0"?><!DOCTYPE plist [<!ENTITY a "aaaa">]><plist version="1.0"><dict><key>Status</key><string>&a;</string></dict></plist>`,
		"huge":          strings.Repeat(" ", MaxResult+1),
	} {
		if _, err := DecodeResult([]byte(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := DecodeCheckin([]byte(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("checkin %s: %v", name, err)
		}
	}
}

func TestUserChannel(t *testing.T) {
	b := []byte(`<plist version="1.0"><dict><key>MessageType</key><string>TokenUpdate</string><key>Topic</key><string>t</string>
<key>EnrollmentID</key><string>E1</string><key>EnrollmentUserID</key><string>U1</string><key>UserShortName</key><string>alice</string>
<key>Token</key><data>AAAA</data><key>PushMagic</key><string>m</string></dict></plist>`)
	c, err := DecodeCheckin(b)
	if err != nil || c.EnrollmentID != "E1" || c.EnrollmentUserID != "U1" || c.Kind() != UserChannel || c.UserShortName != "alice" {
		t.Fatalf("%+v %v", c, err)
	}
}

// Identifiers are device-chosen: separators, control and other
// non-printable characters and over-long values are refused on both
// channels (finding 4 of issue 11 forged "<EnrollmentID>/<UserID>").
func TestIdentifiersRefused(t *testing.T) {
	// Characters go in raw (an XML decoder refuses some on its own; the
	// others must be refused by the identifier check).
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	body := func(eid, uid string) []byte {
		var b strings.Builder
		b.WriteString(`<plist version="1.0"><dict><key>MessageType</key><string>Authenticate</string><key>Status</key><string>Idle</string><key>EnrollmentID</key><string>`)
		esc.WriteString(&b, eid)
		b.WriteString(`</string>`)
		if uid != "" {
			b.WriteString(`<key>EnrollmentUserID</key><string>`)
			esc.WriteString(&b, uid)
			b.WriteString(`</string>`)
		}
		b.WriteString(`</dict></plist>`)
		return []byte(b.String())
	}
	for _, tc := range []struct {
		name, eid, uid string
		ok             bool
	}{
		{"uuid", "FB833D84-50C0-41DD-99DE-F748E44FFEF5", "", true},
		{"user channel", "E1", "6A1E8E9F-1B0C-4B8E-9C2A-2A1D3C4B5E6F", true},
		{"max length", strings.Repeat("A", MaxIDLen), strings.Repeat("B", MaxIDLen), true},
		{"slash in EnrollmentID", "VICTIM/USER", "", false},
		{"slash in EnrollmentUserID", "E1", "U/1", false},
		{"tab", "E\t1", "", false},
		{"control", "E\x01", "", false},
		{"DEL", "E\x7f", "", false},
		{"newline in user id", "E1", "U\n1", false},
		{"zero-width space", "E\u200b1", "", false},
		{"line separator", "E\u20281", "", false},
		{"too long", strings.Repeat("A", MaxIDLen+1), "", false},
		{"user id too long", "E1", strings.Repeat("B", MaxIDLen+1), false},
	} {
		eid, uid := tc.eid, tc.uid
		_, errR := DecodeResult(body(eid, uid))
		_, errC := DecodeCheckin(body(eid, uid))
		for _, err := range []error{errR, errC} {
			if tc.ok && err != nil {
				t.Errorf("%s: refused: %v", tc.name, err)
			}
			if !tc.ok && !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: accepted (%v)", tc.name, err)
			}
		}
	}
}

func TestEncodeCommand(t *testing.T) {
	b, err := Command{CommandUUID: "u1", Command: map[string]any{"RequestType": "DeviceInformation", "Queries": []any{"OSVersion"}}}.Encode()
	if err != nil || !strings.Contains(string(b), "<key>CommandUUID</key>") || !strings.Contains(string(b), "OSVersion") {
		t.Fatalf("%s %v", b, err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, n := range []string{"adue-ios18.2.1-Authenticate.plist", "adue-ios18.2.1-TokenUpdate.plist", "adue-ios18.2.1-Idle.plist", "nanomdm-DeviceInformation.1.plist"} {
		f.Add(read(f, n))
	}
	f.Add([]byte("bplist00"))
	for _, n := range untrustedtest.BinaryPlists {
		f.Add(untrustedtest.Read(f, n))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		untrustedtest.Bounded(t, time.Second, 64<<20, func() { DecodeCheckin(b); DecodeResult(b) })
		if c, err := DecodeCheckin(b); err == nil {
			if c.EnrollmentID == "" || c.UDID != "" || c.MessageType == "" {
				t.Fatalf("accepted check-in %+v", c)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("unexpected error %v", err)
		}
		if r, err := DecodeResult(b); err == nil {
			if r.EnrollmentID == "" || r.Status == "" {
				t.Fatalf("accepted result %+v", r)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}

func TestInventoryDropsHardwareIDs(t *testing.T) {
	section, data, f, ok := Inventory("DeviceInformation", read(t, "nanomdm-DeviceInformation.1.plist"))
	if !ok || section != "device_information" || f == nil {
		t.Fatal("no inventory from DeviceInformation")
	}
	m := data.(map[string]any)
	if _, has := m["UDID"]; has {
		t.Fatal("UDID kept in the inventory")
	}
	if m["HostName"] != "fruit.example.com" {
		t.Fatalf("%v", m)
	}
	if _, _, _, ok := Inventory("RestartDevice", read(t, "adue-ios18.2.1-Idle.plist")); ok {
		t.Fatal("inventory from a command that reveals nothing")
	}
}
