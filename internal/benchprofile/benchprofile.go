// Package benchprofile holds the configuration profile the benchmarks
// deliver (pomona bench's profile phases and the reconciler's Go
// benchmarks), so that both measure the same bytes.
package benchprofile

// WiFi is a Wi-Fi profile (com.apple.wifi.managed, WPA2 Enterprise,
// EAP-TLS) whose EAP user name is the per-user variable $EMAIL: every
// device gets its own rendering (docs/profiles.md, "Per-user variables").
// PayloadIdentifier com.example.bench.wifi.
const WiFi = `<?xml version="1.0" encoding="UTF-8"?>
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
