package catalog

// The catalogue is generated from Apple's schema, which sits beside the
// repository in the project's shared/ref (apple/device-management @ b6202ca,
// "Release_iOS-18-1_macOS-15-1", MIT). TestCatalogIsFresh regenerates it and
// fails when catalog.json is out of date.
//go:generate go run ./gen -src ../../../shared/ref/apple-device-management/mdm/commands -commit b6202ca2fbd31286a52eb160b67a4db7b4fe1f1f -out catalog.json
