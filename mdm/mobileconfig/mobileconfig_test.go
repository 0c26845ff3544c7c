package mobileconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"
)

// WiFi is a small profile with a variable, as an admin would upload it.
const WiFi = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadIdentifier</key><string>com.example.wifi</string>
<key>PayloadUUID</key><string>6A0B0C5E-1111-4222-8333-444455556666</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadDisplayName</key><string>Corp Wi-Fi</string>
<key>PayloadContent</key><array><dict>
	<key>PayloadType</key><string>com.apple.wifi.managed</string>
	<key>PayloadIdentifier</key><string>com.example.wifi.payload</string>
	<key>PayloadUUID</key><string>7A0B0C5E-1111-4222-8333-444455556666</string>
	<key>PayloadVersion</key><integer>1</integer>
	<key>SSID_STR</key><string>Corp</string>
	<key>EncryptionType</key><string>WPA2</string>
	<key>EAPClientConfiguration</key><dict>
		<key>UserName</key><string>$EMAIL</string>
		<key>OuterIdentity</key><string>anon-$$-$TENANT</string>
		<key>AcceptEAPTypes</key><array><integer>25</integer></array>
	</dict>
</dict></array>
</dict></plist>`

func selfSigned(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signer"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k
}

func TestRead(t *testing.T) {
	p, err := Read([]byte(WiFi))
	if err != nil {
		t.Fatal(err)
	}
	if p.Identifier != "com.example.wifi" || p.DisplayName != "Corp Wi-Fi" || p.Signed || strings.Join(p.Variables, ",") != "EMAIL,TENANT" ||
		strings.Join(p.PayloadTypes, ",") != "com.apple.wifi.managed" {
		t.Fatalf("%+v", p)
	}

	// Signed: the same profile in a CMS SignedData.
	cert, key := selfSigned(t)
	sd, _ := pkcs7.NewSignedData([]byte(WiFi))
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSigner(cert, key, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	signed, _ := sd.Finish()
	sp, err := Read(signed)
	if err != nil || !sp.Signed || sp.Identifier != "com.example.wifi" || string(sp.Plist) != WiFi {
		t.Fatalf("signed: %+v %v", sp, err)
	}
	// A signed profile whose content was altered does not verify.
	bad := append([]byte(nil), signed...)
	i := strings.Index(string(bad), "Corp Wi-Fi")
	bad[i] = 'X'
	if _, err := Read(bad); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("tampered: %v", err)
	}

	bin, _ := plist.Marshal(map[string]any{"PayloadType": "Configuration"})
	for _, tc := range []struct{ name, in, err string }{
		{"empty", "", "empty"},
		{"binary", "bplist00" + string(bin), "binary property lists are not accepted"},
		{"json", `{"PayloadType":"Configuration"}`, "not an XML property list"},
		{"not a dict", `<plist><array/></plist>`, "unacceptable"},
		{"not configuration", `<plist><dict><key>PayloadType</key><string>com.apple.wifi.managed</string></dict></plist>`, "not Configuration"},
		{"no identifier", strings.Replace(WiFi, "<key>PayloadIdentifier</key><string>com.example.wifi</string>", "", 1), "PayloadIdentifier is missing"},
		{"no content", `<plist><dict><key>PayloadType</key><string>Configuration</string><key>PayloadIdentifier</key><string>a</string><key>PayloadUUID</key><string>u</string></dict></plist>`, "non-empty array"},
		{"unknown variable", strings.Replace(WiFi, "$EMAIL", "$PHONE", 1), "unknown variable $PHONE"},
		{"payload without uuid", strings.Replace(WiFi, "<key>PayloadUUID</key><string>7A0B0C5E-1111-4222-8333-444455556666</string>", "", 1), "has no PayloadUUID"},
		{"hostile depth", `<plist>` + strings.Repeat("<array>", 40) + strings.Repeat("</array>", 40) + `</plist>`, "deeper than"},
		{"garbage CMS", "\x30\x82\xff\xff\x01", "not a readable signed profile"},
		// break8: an identifier with a C1 CSI or ESC reached the
		// administrator's terminal (pomona profile show, list, upload).
		{"identifier with CSI U+009B", strings.Replace(WiFi, "<string>com.example.wifi</string>", "<string>com.example.wifi&#x9b;8m</string>", 1), "reverse-DNS name"},
		{"identifier with DEL", strings.Replace(WiFi, "<string>com.example.wifi</string>", "<string>com.example.wifi&#x7f;</string>", 1), "reverse-DNS name"},
		{"identifier with NEL", strings.Replace(WiFi, "<string>com.example.wifi</string>", "<string>com.example.wifi&#x85;x</string>", 1), "reverse-DNS name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read([]byte(tc.in))
			if err == nil || !errors.Is(err, ErrProfile) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

func TestRender(t *testing.T) {
	p, _ := Read([]byte(WiFi))
	vals := map[string]string{VarEmail: "alice@example.com", VarTenant: "Example <Corp>"}
	out, h, err := Render(p.Plist, vals)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := plist.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	eap := doc["PayloadContent"].([]any)[0].(map[string]any)["EAPClientConfiguration"].(map[string]any)
	if eap["UserName"] != "alice@example.com" || eap["OuterIdentity"] != "anon-$-Example <Corp>" {
		t.Fatalf("%v", eap)
	}
	if h != Hash(out) || len(h) != 64 {
		t.Fatal("hash")
	}
	// Same values, same hash; another user, another hash.
	if _, h2, _ := Render(p.Plist, vals); h2 != h {
		t.Fatal("hash not stable")
	}
	if _, h3, _ := Render(p.Plist, map[string]string{VarEmail: "bob@example.com", VarTenant: "Example <Corp>"}); h3 == h {
		t.Fatal("hash ignores the values")
	}
	// A variable without a value.
	_, _, err = Render(p.Plist, map[string]string{VarEmail: "alice@example.com"})
	var me *MissingValueError
	if !errors.As(err, &me) || strings.Join(me.Names, ",") != "TENANT" {
		t.Fatalf("%v", err)
	}
}

// FuzzRead: no input crashes the reader or escapes its limits.
func FuzzRead(f *testing.F) {
	f.Add([]byte(WiFi))
	f.Add([]byte("bplist00"))
	f.Add([]byte("\x30\x80\x30\x80\x00\x00\x00\x00"))
	f.Add([]byte(`<plist><dict><key>PayloadType</key><string>Configuration</string></dict></plist>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := Read(in)
		if err == nil {
			if p.Identifier == "" || p.Doc == nil {
				t.Fatal("accepted without an identifier")
			}
			Render(p.Plist, map[string]string{VarEmail: "a", VarManagedAppleID: "b", VarUserName: "c", VarUserID: "d", VarEnrollmentID: "e", VarTenant: "f"})
		}
	})
}
