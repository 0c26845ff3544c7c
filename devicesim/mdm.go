package devicesim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"
)

// ReauthError is a 401 from the MDM server: the person must sign in again
// at LoginURL, then the device repeats the request.
type ReauthError struct{ LoginURL string }

func (e *ReauthError) Error() string {
	return "the server asks the person to sign in again at " + e.LoginURL
}

// MDMState is what the device keeps about its MDM enrollment.
type MDMState struct {
	EnrollmentID     string
	EnrollmentUserID string // set for a Mac's user channel
	PushToken        []byte
	PushMagic        string
	UserPushToken    []byte
	UserPushMagic    string
}

func (d *Device) userAgent() string { return "MDM/1.0" }

// sendMDM signs and sends msg. repeated marks a message the device sends
// again and again unchanged (an Idle poll): its signature may be reused
// (ReuseSignatures).
func (d *Device) sendMDM(ctx context.Context, url, contentType string, msg map[string]any, withToken, repeated bool) (int, []byte, error) {
	body, err := plist.MarshalIndent(msg, "\t")
	if err != nil {
		return 0, nil, err
	}
	sig, err := d.signature(body, repeated)
	if err != nil {
		return 0, nil, err
	}
	hdr := map[string]string{"Content-Type": contentType, "Mdm-Signature": sig, "User-Agent": d.userAgent()}
	if withToken && d.AccessToken != "" {
		hdr["Authorization"] = "Bearer " + d.AccessToken
	}
	resp, b, err := d.do(ctx, http.MethodPut, url, body, hdr)
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		p, err := ParseChallenge(resp.Header.Get("WWW-Authenticate"))
		if err != nil || p["method"] != "apple-as-web" || p["url"] == "" {
			return resp.StatusCode, b, fmt.Errorf("401 without a usable apple-as-web challenge: %q", resp.Header.Get("WWW-Authenticate"))
		}
		d.LoginURL = p["url"]
		return resp.StatusCode, b, &ReauthError{LoginURL: p["url"]}
	}
	return resp.StatusCode, b, nil
}

// SignMessage returns the detached CMS signature of body with the device's
// identity key, DER (the Mdm-Signature header is its base64): RSA 2048
// PKCS #1 v1.5 over SHA-256 with a signingTime attribute, as a device signs
// every request (https://developer.apple.com/documentation/devicemanagement/mdmsignature).
// It costs ~1.2–1.5 ms of CPU, the load generator's largest cost.
func (d *Device) SignMessage(body []byte) ([]byte, error) {
	if d.IdentityCert == nil {
		return nil, errors.New("no identity certificate yet (SCEP)")
	}
	sd, err := pkcs7.NewSignedData(body)
	if err != nil {
		return nil, err
	}
	if err := sd.AddSigner(d.IdentityCert, d.IdentityKey, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, err
	}
	sd.Detach()
	return sd.Finish()
}

// signature is the Mdm-Signature header value for body. With
// ReuseSignatures, a repeated body (an Idle poll: {EnrollmentID, Status})
// byte-identical to the last one signed by the same identity within
// signatureReuse gets that signature again: still a real, valid signature
// by the device's key over exactly those bytes, which the server verifies
// in full as before; only the load generator saves the RSA operation.
func (d *Device) signature(body []byte, repeated bool) (string, error) {
	now := time.Now()
	d.sigMu.Lock()
	if d.ReuseSignatures && repeated && d.lastSig.cert == d.IdentityCert && bytes.Equal(d.lastSig.body, body) && now.Sub(d.lastSig.at) < signatureReuse {
		h := d.lastSig.header
		d.sigMu.Unlock()
		return h, nil
	}
	d.sigMu.Unlock()
	sig, err := d.SignMessage(body)
	if err != nil {
		return "", err
	}
	h := base64.StdEncoding.EncodeToString(sig)
	d.sigMu.Lock()
	d.signed++
	if d.ReuseSignatures && repeated {
		d.lastSig.cert, d.lastSig.body, d.lastSig.header, d.lastSig.at = d.IdentityCert, body, h, now
	}
	d.sigMu.Unlock()
	return h, nil
}

// signatureReuse bounds how old a reused signature is: its signingTime
// stays close to the request's time.
const signatureReuse = time.Minute

// usesToken: an iPhone/iPad sends the bearer on every request, a Mac only
// on its user channel.
func (d *Device) usesToken(userChannel bool) bool { return d.ModelFamily != "Mac" || userChannel }

func (d *Device) checkin(ctx context.Context, msg map[string]any, userChannel bool) error {
	status, body, err := d.sendMDM(ctx, d.Profile.CheckInURL, "application/x-apple-aspen-mdm-checkin", msg, d.usesToken(userChannel), false)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("check-in %s answered %d: %s", msg["MessageType"], status, strings.TrimSpace(string(body)))
	}
	return nil
}

func randomUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Authenticate sends the first check-in; the device gets its EnrollmentID.
func (d *Device) Authenticate(ctx context.Context) error {
	if d.MDM.EnrollmentID == "" {
		d.MDM.EnrollmentID = randomUUID()
	}
	msg := map[string]any{"MessageType": "Authenticate", "Topic": d.Profile.Topic, "EnrollmentID": d.MDM.EnrollmentID,
		"OSVersion": d.OSVersion, "BuildVersion": d.Build, "ProductName": d.Product}
	if d.ModelFamily == "Mac" {
		msg["Model"], msg["ModelName"], msg["DeviceName"] = d.Product, "MacBook Pro", "Simulated Mac"
	}
	return d.checkin(ctx, msg, false)
}

// TokenUpdate registers the push token of the device channel, or of the
// Mac's user channel.
func (d *Device) TokenUpdate(ctx context.Context, userChannel bool) error {
	tok := make([]byte, 32)
	rand.Read(tok)
	msg := map[string]any{"MessageType": "TokenUpdate", "Topic": d.Profile.Topic, "EnrollmentID": d.MDM.EnrollmentID,
		"Token": tok, "PushMagic": randomUUID(), "AwaitingConfiguration": false}
	if userChannel {
		if d.MDM.EnrollmentUserID == "" {
			d.MDM.EnrollmentUserID = randomUUID()
		}
		msg["EnrollmentUserID"], msg["UserShortName"], msg["UserLongName"] = d.MDM.EnrollmentUserID, "alice", "Alice"
		d.MDM.UserPushToken, d.MDM.UserPushMagic = tok, msg["PushMagic"].(string)
	} else {
		d.MDM.PushToken, d.MDM.PushMagic = tok, msg["PushMagic"].(string)
	}
	return d.checkin(ctx, msg, userChannel)
}

// CheckOut tells the server the device leaves (with whatever token it has).
func (d *Device) CheckOut(ctx context.Context) error {
	return d.checkin(ctx, map[string]any{"MessageType": "CheckOut", "Topic": d.Profile.Topic, "EnrollmentID": d.MDM.EnrollmentID}, false)
}

// ReceivedCommand is a command from the server.
type ReceivedCommand struct {
	CommandUUID string
	Command     map[string]any
}

// RequestType of the command.
func (c *ReceivedCommand) RequestType() string { s, _ := c.Command["RequestType"].(string); return s }

// Poll sends status (nil: Idle) on the command channel and returns the next
// command, or nil when the queue is empty.
func (d *Device) Poll(ctx context.Context, status map[string]any, userChannel bool) (*ReceivedCommand, error) {
	idle := status == nil
	status = d.pollMessage(status, userChannel)
	code, body, err := d.sendMDM(ctx, d.Profile.ServerURL, "application/x-apple-aspen-mdm", status, d.usesToken(userChannel), idle)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("command poll answered %d: %s", code, strings.TrimSpace(string(body)))
	}
	if len(body) == 0 {
		return nil, nil
	}
	var c ReceivedCommand
	if err := plist.Unmarshal(body, &c); err != nil || c.CommandUUID == "" || c.RequestType() == "" {
		return nil, fmt.Errorf("unreadable command: %v %s", err, body)
	}
	return &c, nil
}

// pollMessage is the message Poll sends: status (nil: Idle) with the
// channel's identifiers.
func (d *Device) pollMessage(status map[string]any, userChannel bool) map[string]any {
	if status == nil {
		status = map[string]any{"Status": "Idle"}
	} else {
		// The caller's map is not ours to change: the same answer may be
		// sent again, or from several goroutines at once (a replay).
		status = maps.Clone(status)
	}
	status["EnrollmentID"] = d.MDM.EnrollmentID
	if userChannel {
		status["EnrollmentUserID"] = d.MDM.EnrollmentUserID
	}
	return status
}

// SignIdle signs, now, the Idle poll the device will send next on the
// channel, so that with ReuseSignatures that Poll (within signatureReuse,
// one minute) carries this signature instead of making one: the Idle's
// bytes do not depend on anything the server sends, so the load generator
// (pomona bench --wave) can pay its RSA operation before a measured
// window. What goes on the wire is unchanged: the same bytes, a real
// signature over them by the device's identity key, its signingTime at
// most a minute old. Without ReuseSignatures it does nothing.
func (d *Device) SignIdle(userChannel bool) error {
	if !d.ReuseSignatures {
		return nil
	}
	body, err := plist.MarshalIndent(d.pollMessage(nil, userChannel), "\t")
	if err != nil {
		return err
	}
	_, err = d.signature(body, true)
	return err
}

// Answer builds a realistic user-enrollment answer to a command: for
// DeviceInformation the queried keys it knows
// (https://developer.apple.com/documentation/devicemanagement/deviceinformationcommand),
// for ProfileList the installed profiles
// (https://developer.apple.com/documentation/devicemanagement/profile-list-command).
func (d *Device) Answer(c *ReceivedCommand) map[string]any {
	out := map[string]any{"CommandUUID": c.CommandUUID, "Status": "Acknowledged", "RequestType": c.RequestType()}
	switch c.RequestType() {
	case "DeviceInformation":
		known := map[string]any{"OSVersion": d.OSVersion, "BuildVersion": d.Build, "ProductName": d.Product, "ModelName": map[string]string{"iPhone": "iPhone", "iPad": "iPad", "Mac": "MacBook Pro"}[d.ModelFamily],
			"Model": d.Product, "DeviceName": "Simulated " + d.ModelFamily, "IsSupervised": false, "IsMultiUser": false, "EASDeviceIdentifier": "SIM" + d.MDM.EnrollmentID[:8]}
		resp := map[string]any{}
		qs, _ := c.Command["Queries"].([]any)
		for _, q := range qs {
			if v, ok := known[fmt.Sprint(q)]; ok {
				resp[fmt.Sprint(q)] = v
			}
		}
		out["QueryResponses"] = resp
	case "SecurityInfo":
		out["SecurityInfo"] = map[string]any{"PasscodePresent": true, "HardwareEncryptionCaps": 3, "PasscodeCompliant": true}
	case "ProfileList":
		out["ProfileList"] = d.profileList()
	case "ManagedApplicationList":
		out["ManagedApplicationList"] = map[string]any{}
	case "CertificateList":
		out["CertificateList"] = []any{map[string]any{"CommonName": d.IdentityCert.Subject.CommonName, "IsIdentity": true, "Data": d.IdentityCert.Raw}}
	}
	return out
}
