package mdm

import (
	"crypto/sha256"
	"encoding/hex"
)

// hardwareIDs never enter the inventory, even if a device sent them: a
// user enrollment must not reveal them.
var hardwareIDs = map[string]bool{"UDID": true, "SerialNumber": true, "IMEI": true, "MEID": true, "ICCID": true,
	"BluetoothMAC": true, "WiFiMAC": true, "EthernetMAC": true, "ProvisioningUDID": true, "PhoneNumber": true, "EthernetMACs": true}

// DeviceFields are the DeviceInformation answers that refresh the device
// record (https://developer.apple.com/documentation/devicemanagement/deviceinformationresponse).
type DeviceFields struct {
	OSVersion, BuildVersion, DeviceName, Model, ModelName string
}

// Inventory extracts what an acknowledged result reveals for the device
// record: the section name, its data, and (for DeviceInformation) fields
// of the device itself. ok is false for commands that add nothing. data
// is built from DecodeValue, so json.Marshal always accepts it (NaN and
// ±Inf as strings, integers of any size as numbers).
func Inventory(requestType string, raw []byte) (section string, data any, fields *DeviceFields, ok bool) {
	doc, err := DecodeDict(raw)
	if err != nil {
		return "", nil, nil, false
	}
	return InventoryOf(requestType, doc)
}

// InventoryRequestTypes are the request types whose acknowledged results
// InventoryOf adds to the inventory (each with its own section), so that a
// store can read the inventory with the result's status for these only
// (store/sqlstore recordResult); TestInventoryRequestTypes keeps the list
// and InventoryOf's switch equal.
var InventoryRequestTypes = []string{"DeviceInformation", "SecurityInfo", "ProfileList", "ManagedApplicationList", "CertificateList"}

// InventoryOf is Inventory for a result already decoded by DecodeResult
// (Result.Doc), so the MDM path decodes each result once.
func InventoryOf(requestType string, doc map[string]any) (section string, data any, fields *DeviceFields, ok bool) {
	switch requestType {
	case "DeviceInformation":
		q, _ := doc["QueryResponses"].(map[string]any)
		clean := map[string]any{}
		for k, v := range q {
			if !hardwareIDs[k] {
				clean[k] = v
			}
		}
		str := func(k string) string { s, _ := q[k].(string); return s }
		return "device_information", clean, &DeviceFields{OSVersion: str("OSVersion"), BuildVersion: str("BuildVersion"),
			DeviceName: str("DeviceName"), Model: str("Model"), ModelName: str("ModelName")}, true
	case "SecurityInfo":
		return "security_info", doc["SecurityInfo"], nil, true
	case "ProfileList":
		return "profiles", doc["ProfileList"], nil, true
	case "ManagedApplicationList":
		return "managed_apps", doc["ManagedApplicationList"], nil, true
	case "CertificateList":
		var out []any
		list, _ := doc["CertificateList"].([]any)
		for _, c := range list {
			m, _ := c.(map[string]any)
			e := map[string]any{"common_name": m["CommonName"], "is_identity": m["IsIdentity"]}
			if b, ok := m["Data"].([]byte); ok {
				sum := sha256.Sum256(b)
				e["sha256"] = hex.EncodeToString(sum[:])
			}
			out = append(out, e)
		}
		return "certificates", out, nil, true
	}
	return "", nil, nil, false
}
