package payloads

// The rules are generated from Apple's schema, which sits beside the
// repository in the project's shared/ref (apple/device-management @
// b6202ca, "Release_iOS-18-1_macOS-15-1", MIT). TestPayloadsAreFresh
// regenerates them and fails when payloads.json is out of date.
//go:generate go run ./gen -src ../../../shared/ref/apple-device-management/mdm/profiles -commit b6202ca2fbd31286a52eb160b67a4db7b4fe1f1f -out payloads.json
