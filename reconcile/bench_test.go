package reconcile

import (
	"fmt"
	"testing"
	"time"
)

const benchWifi = `<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadIdentifier</key><string>com.example.bench.wifi</string>
<key>PayloadUUID</key><string>6A0B0C5E-1111-4222-8333-444455556666</string>
<key>PayloadContent</key><array><dict>
	<key>PayloadType</key><string>com.apple.wifi.managed</string>
	<key>PayloadIdentifier</key><string>com.example.bench.wifi.payload</string>
	<key>PayloadUUID</key><string>7A0B0C5E-1111-4222-8333-444455556666</string>
	<key>SSID_STR</key><string>Bench</string>
	<key>EncryptionType</key><string>WPA2</string>
	<key>EAPClientConfiguration</key><dict><key>UserName</key><string>$EMAIL</string><key>AcceptEAPTypes</key><array><integer>25</integer></array></dict>
</dict></array></dict></plist>`

// BenchmarkPlanNewDevice is the reconciler's in-memory cost per device
// for one profile with a per-user variable that the device lacks: render
// (parse, substitute, marshal, hash) and plan.
func BenchmarkPlanNewDevice(b *testing.B) {
	p := []Profile{{ProfileID: "pr_1", Identifier: "com.example.bench.wifi", Version: 1, Plist: []byte(benchWifi), Included: true}}
	now := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		acts, _ := Plan(Device{Platform: "iOS", OSVersion: "18.2", Values: map[string]string{"EMAIL": fmt.Sprint("u", i, "@example.com")}}, p, nil, now)
		if len(acts) != 1 || acts[0].Kind != Install {
			b.Fatal(acts)
		}
	}
}
