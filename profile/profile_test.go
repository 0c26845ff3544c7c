package profile

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"
	"gopkg.in/yaml.v3"

	"github.com/pomona-mdm/pomona/pki"
)

// schema is the part of Apple's profile YAML the test needs.
type schema struct {
	Payload struct {
		PayloadType string `yaml:"payloadtype"`
	} `yaml:"payload"`
	PayloadKeys []schemaKey `yaml:"payloadkeys"`
}

type schemaKey struct {
	Key         string                 `yaml:"key"`
	Presence    string                 `yaml:"presence"`
	SupportedOS map[string]osSupport   `yaml:"supportedOS"`
	SubKeys     []schemaKey            `yaml:"subkeys"`
	Extra       map[string]interface{} `yaml:",inline"`
}

type osSupport struct {
	UserEnrollment struct {
		Mode string `yaml:"mode"`
	} `yaml:"userenrollment"`
}

func loadSchema(t *testing.T, name string) schema {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "apple-device-management", name))
	if err != nil {
		t.Fatal(err)
	}
	var s schema
	if err := yaml.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return s
}

var schemaFiles = map[string]string{
	"Configuration":           "TopLevel.yaml",
	"com.apple.mdm":           "com.apple.mdm.yaml",
	"com.apple.security.scep": "com.apple.security.scep.yaml",
	"com.apple.security.root": "com.apple.security.root.yaml",
}

// legacyUE lists keys the schema marks "required" for user enrollment that
// belong to the removed profile-driven flow. Account-driven enrollment
// replaces ManagedAppleID with AssignedManagedAppleID (Apple's account-driven
// docs; the key was removed in iOS 18 / macOS 15).
var legacyUE = map[string]bool{"ManagedAppleID": true}

// checkKeys compares a decoded payload dictionary with its schema keys for
// platform os: required keys present, keys forbidden or ignored in user
// enrollment absent, no key the schema does not know.
func checkKeys(t *testing.T, where string, dict map[string]any, keys []schemaKey, common []schemaKey, os string) {
	t.Helper()
	known := map[string]schemaKey{}
	for _, k := range append(append([]schemaKey{}, common...), keys...) {
		known[k.Key] = k
	}
	for _, k := range keys {
		_, present := dict[k.Key]
		mode := k.SupportedOS[os].UserEnrollment.Mode
		switch {
		case legacyUE[k.Key]:
			if present {
				t.Errorf("%s: %s is the legacy profile-driven user enrollment key and must be absent", where, k.Key)
			}
		case mode == "forbidden" || mode == "ignored":
			if present {
				t.Errorf("%s: %s is %s in user enrollment on %s but present", where, k.Key, mode, os)
			}
		case k.Presence == "required" || mode == "required":
			if !present {
				t.Errorf("%s: required key %s missing", where, k.Key)
			}
		}
	}
	for name, v := range dict {
		k, ok := known[name]
		if !ok {
			t.Errorf("%s: key %s is not in Apple's schema", where, name)
			continue
		}
		if sub, ok := v.(map[string]any); ok && len(k.SubKeys) > 0 {
			checkKeys(t, where+"."+name, sub, k.SubKeys, nil, os)
		}
	}
}

func testParams(platform string, ca *x509.Certificate) Params {
	return Params{Identifier: "net.example.mdm.enroll.tn_1", Organization: "Example Corp",
		Topic: "com.apple.mgmt.External.00000000-aaaa-bbbb-cccc-000000000000", ServerURL: "https://mdm.example.net/mdm",
		CheckInURL: "https://mdm.example.net/mdm/checkin", SCEPURL: "https://mdm.example.net/scep", SCEPChallenge: "one-time",
		ManagedAppleID: "alice@example.com", Platform: platform, TrustedCA: ca}
}

func TestProfileMatchesAppleSchema(t *testing.T) {
	ca, _ := pki.NewCA("Pomona CA", pki.ECDSAP256, time.Now())
	common := loadSchema(t, "CommonPayloadKeys.yaml").PayloadKeys
	for _, platform := range []string{"iOS", "macOS"} {
		for _, withCA := range []bool{false, true} {
			p := testParams(platform, nil)
			if withCA {
				p.TrustedCA = ca.Cert
			}
			raw, err := Build(p)
			if err != nil {
				t.Fatal(err)
			}
			var top map[string]any
			if err := plist.Unmarshal(raw, &top); err != nil {
				t.Fatal(err)
			}
			checkKeys(t, platform+" top level", top, loadSchema(t, "TopLevel.yaml").PayloadKeys, nil, platform)
			content, _ := top["PayloadContent"].([]any)
			types := map[string]map[string]any{}
			for _, c := range content {
				d := c.(map[string]any)
				pt := d["PayloadType"].(string)
				types[pt] = d
				f, ok := schemaFiles[pt]
				if !ok {
					t.Fatalf("unexpected payload %s", pt)
				}
				checkKeys(t, platform+" "+pt, d, loadSchema(t, f).PayloadKeys, common, platform)
			}
			mdm, scep := types["com.apple.mdm"], types["com.apple.security.scep"]
			if mdm == nil || scep == nil {
				t.Fatalf("payloads %v", types)
			}
			// Account-driven rules the device enforces.
			if mdm["EnrollmentMode"] != "BYOD" || mdm["AssignedManagedAppleID"] != "alice@example.com" {
				t.Errorf("%s: EnrollmentMode/AssignedManagedAppleID wrong: %v", platform, mdm)
			}
			for _, banned := range []string{"AccessRights", "ManagedAppleID"} {
				if _, ok := mdm[banned]; ok {
					t.Errorf("%s: %s present", platform, banned)
				}
			}
			if mdm["IdentityCertificateUUID"] != scep["PayloadUUID"] || mdm["SignMessage"] != true || mdm["CheckOutWhenRemoved"] != true {
				t.Errorf("%s: MDM payload wiring wrong: %v", platform, mdm)
			}
			caps, _ := mdm["ServerCapabilities"].([]any)
			if len(caps) != 1 || caps[0] != CapPerUserConnections {
				t.Errorf("%s: capabilities %v", platform, caps)
			}
			if sc := scep["PayloadContent"].(map[string]any); sc["Challenge"] != "one-time" || sc["URL"] != "https://mdm.example.net/scep" {
				t.Errorf("SCEP content %v", sc)
			}
			if _, has := top["PayloadScope"]; has {
				t.Error("PayloadScope set (reported to suppress Mac user-channel check-ins)")
			}
			if (types["com.apple.security.root"] != nil) != withCA {
				t.Errorf("root payload present=%v, want %v", types["com.apple.security.root"] != nil, withCA)
			}
		}
	}
}

func TestBuildRefusesIncompleteParams(t *testing.T) {
	for _, mod := range []func(*Params){
		func(p *Params) { p.Topic = "" },
		func(p *Params) { p.ManagedAppleID = "" },
		func(p *Params) { p.SCEPChallenge = "" },
		func(p *Params) { p.ServerURL = "http://mdm.example.net" },
		func(p *Params) { p.Platform = "tvOS" },
	} {
		p := testParams("iOS", nil)
		mod(&p)
		if _, err := Build(p); err == nil {
			t.Errorf("accepted %+v", p)
		}
	}
}

func TestSign(t *testing.T) {
	now := time.Now()
	ca, _ := pki.NewCA("Pomona CA", pki.ECDSAP256, now)
	cert, key, err := ca.IssueProfileSigner(now)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := Build(testParams("iOS", nil))
	signed, err := Sign(raw, cert, key, []*x509.Certificate{ca.Cert})
	if err != nil {
		t.Fatal(err)
	}
	p7, err := pkcs7.Parse(signed)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if err := p7.VerifyWithChain(pool); err != nil {
		t.Fatalf("signature does not verify to the CA: %v", err)
	}
	if string(p7.Content) != string(raw) || !strings.Contains(string(p7.Content), "BYOD") {
		t.Fatal("signed content differs")
	}
}
