package devicesim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"sort"
	"sync"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/mdm/payloads"
)

// InstalledProfile is a configuration profile the simulated device holds
// (besides the enrollment profile).
type InstalledProfile struct {
	Identifier  string
	DisplayName string
	UUID        string
	Signed      bool
	// Doc is the installed profile's top-level dictionary (variables
	// already substituted by the server).
	Doc map[string]any
	// Certificates are what the profile's SCEP payloads obtained.
	Certificates []*x509.Certificate
}

// configProfiles is the device's store of installed profiles.
type configProfiles struct {
	mu        sync.Mutex
	installed map[string]*InstalledProfile // by PayloadIdentifier
	refuse    map[string]string            // identifier → reason: answer Error
	keep      map[string]string            // identifier → reason: RemoveProfile answers Error
}

// Installed lists the configuration profiles the device holds, by
// identifier.
func (d *Device) Installed() []InstalledProfile {
	d.cfg.mu.Lock()
	defer d.cfg.mu.Unlock()
	var out []InstalledProfile
	for _, p := range d.cfg.installed {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identifier < out[j].Identifier })
	return out
}

// InstalledProfile returns one installed profile by identifier.
func (d *Device) InstalledProfile(identifier string) (*InstalledProfile, bool) {
	d.cfg.mu.Lock()
	defer d.cfg.mu.Unlock()
	p, ok := d.cfg.installed[identifier]
	if !ok {
		return nil, false
	}
	c := *p
	return &c, true
}

// RefuseInstall makes the device answer every InstallProfile of identifier
// with Error and reason (a full disk, a passcode policy the user declined,
// …) until AllowInstall; tests use it to see failures and retries.
func (d *Device) RefuseInstall(identifier, reason string) {
	d.cfg.mu.Lock()
	defer d.cfg.mu.Unlock()
	if d.cfg.refuse == nil {
		d.cfg.refuse = map[string]string{}
	}
	d.cfg.refuse[identifier] = reason
}

// AllowInstall ends RefuseInstall.
func (d *Device) AllowInstall(identifier string) {
	d.cfg.mu.Lock()
	defer d.cfg.mu.Unlock()
	delete(d.cfg.refuse, identifier)
}

// RefuseRemoval makes the device answer every RemoveProfile of identifier
// with Error and reason, keeping the profile (still in its ProfileList),
// until AllowRemoval: a profile the device will not let go, as one whose
// removal is disallowed or needs a passcode. The error code is the
// simulator's, not one documented by Apple.
func (d *Device) RefuseRemoval(identifier, reason string) {
	d.cfg.mu.Lock()
	defer d.cfg.mu.Unlock()
	if d.cfg.keep == nil {
		d.cfg.keep = map[string]string{}
	}
	d.cfg.keep[identifier] = reason
}

// AllowRemoval ends RefuseRemoval.
func (d *Device) AllowRemoval(identifier string) {
	d.cfg.mu.Lock()
	defer d.cfg.mu.Unlock()
	delete(d.cfg.keep, identifier)
}

// RemoveLocally removes an installed profile as if the user (or another
// agent) had removed it behind the server's back (drift). A user cannot
// remove MDM-installed profiles on a real device, but an MDM can lose them
// when the device is restored.
func (d *Device) RemoveLocally(identifier string) {
	d.cfg.mu.Lock()
	defer d.cfg.mu.Unlock()
	delete(d.cfg.installed, identifier)
}

// Error domains of configuration-profile refusals (as in real devices'
// ErrorChain: the installation error first, its cause after).
const (
	installationErrorDomain = "MCInstallationErrorDomain"
	payloadErrorDomain      = "MCPayloadErrorDomain"
)

func errorChainAnswer(c *ReceivedCommand, chain ...map[string]any) map[string]any {
	var ec []any
	for _, e := range chain {
		ec = append(ec, e)
	}
	return map[string]any{"CommandUUID": c.CommandUUID, "Status": "Error", "RequestType": c.RequestType(), "ErrorChain": ec}
}

func chainEntry(domain string, code int, msg string) map[string]any {
	return map[string]any{"ErrorDomain": domain, "ErrorCode": code, "LocalizedDescription": msg, "USEnglishDescription": msg}
}

// platform is the schema's platform of the device.
func (d *Device) platform() string {
	if d.ModelFamily == "Mac" {
		return payloads.MacOS
	}
	return payloads.IOS
}

// installConfig installs a configuration profile (no MDM payload) the way
// a user-enrolled device does: a profile a user enrollment may not receive
// (a payload or key Apple's schema forbids on this platform) is refused
// with an error chain naming it; a profile with the identifier of an
// installed one replaces it.
func (d *Device) installConfig(ctx context.Context, c *ReceivedCommand, raw []byte) map[string]any {
	content, signed := raw, false
	if p7, err := pkcs7.Parse(raw); err == nil && len(p7.Content) > 0 {
		if err := p7.Verify(); err != nil {
			return errorChainAnswer(c, chainEntry(installationErrorDomain, 4001, "Profile Installation Failed"),
				chainEntry(profileErrorDomain, 1012, "The profile signature is not valid: "+err.Error()))
		}
		content, signed = p7.Content, true
	}
	if bytes.HasPrefix(content, []byte("bplist")) {
		// Devices read binary profiles; the server under test must not
		// send them (Pomona stores and sends XML).
		return errorChainAnswer(c, chainEntry(profileErrorDomain, 1000, "The simulator expects XML profiles."))
	}
	var doc map[string]any
	if err := plist.Unmarshal(content, &doc); err != nil {
		return errorChainAnswer(c, chainEntry(profileErrorDomain, 1000, "The profile is not a property list: "+err.Error()))
	}
	id, _ := doc["PayloadIdentifier"].(string)
	name, _ := doc["PayloadDisplayName"].(string)
	uuid, _ := doc["PayloadUUID"].(string)
	if vs := payloads.Default().Check(doc, d.platform()); len(vs) > 0 {
		v := vs[0]
		what := v.PayloadType
		if v.Key != "" {
			what += " key " + v.Key
		}
		return errorChainAnswer(c, chainEntry(installationErrorDomain, 4001, fmt.Sprintf("Profile Installation Failed: The profile “%s” could not be installed.", name)),
			chainEntry(payloadErrorDomain, 2014, fmt.Sprintf("%s is not allowed in a User Enrollment: %s", what, v.Reason)))
	}
	d.cfg.mu.Lock()
	reason, refused := d.cfg.refuse[id]
	d.cfg.mu.Unlock()
	if refused {
		return errorChainAnswer(c, chainEntry(installationErrorDomain, 4001, fmt.Sprintf("Profile Installation Failed: The profile “%s” could not be installed.", name)),
			chainEntry(profileErrorDomain, 1009, reason))
	}
	// SCEP payloads get their certificates before the profile counts as
	// installed; a refusal fails the whole installation, as on a device.
	var certs []*x509.Certificate
	content2, _ := doc["PayloadContent"].([]any)
	for _, item := range content2 {
		pl, _ := item.(map[string]any)
		if pl["PayloadType"] != "com.apple.security.scep" {
			continue
		}
		sc, _ := pl["PayloadContent"].(map[string]any)
		url, _ := sc["URL"].(string)
		challenge, _ := sc["Challenge"].(string)
		info := &ProfileInfo{SCEPURL: url}
		if subj, ok := sc["Subject"].([]any); ok {
			info.SCEPSubject = subjectOf(subj)
		}
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return errorChainAnswer(c, chainEntry(scepErrorDomain, 22013, err.Error()))
		}
		cert, err := d.scepRequest(ctx, "profile SCEP", info, key, challenge)
		if err != nil {
			return errorChainAnswer(c, chainEntry(installationErrorDomain, 4001, fmt.Sprintf("Profile Installation Failed: The profile “%s” could not be installed.", name)),
				chainEntry(scepErrorDomain, 22013, "The SCEP server returned an invalid response: "+err.Error()))
		}
		certs = append(certs, cert)
	}
	d.cfg.mu.Lock()
	defer d.cfg.mu.Unlock()
	if d.cfg.installed == nil {
		d.cfg.installed = map[string]*InstalledProfile{}
	}
	d.cfg.installed[id] = &InstalledProfile{Identifier: id, DisplayName: name, UUID: uuid, Signed: signed, Doc: doc, Certificates: certs}
	return map[string]any{"CommandUUID": c.CommandUUID, "Status": "Acknowledged", "RequestType": c.RequestType()}
}

// subjectOf reads a SCEP payload's Subject (an array of RDNs, each an
// array of [OID or short name, value] pairs).
func subjectOf(v []any) [][][]string {
	var out [][][]string
	for _, rdn := range v {
		var r [][]string
		atvs, _ := rdn.([]any)
		for _, atv := range atvs {
			pair, _ := atv.([]any)
			if len(pair) == 2 {
				a, _ := pair[0].(string)
				b, _ := pair[1].(string)
				r = append(r, []string{a, b})
			}
		}
		out = append(out, r)
	}
	return out
}

// removeProfile answers RemoveProfile: an installed configuration profile
// goes; an unknown identifier is an error, as on a device.
func (d *Device) removeProfile(c *ReceivedCommand) map[string]any {
	id, _ := c.Command["Identifier"].(string)
	if d.Profile != nil && id == d.Profile.Identifier {
		return d.Answer(c) // the enrollment profile: the device unenrolls
	}
	d.cfg.mu.Lock()
	defer d.cfg.mu.Unlock()
	p, ok := d.cfg.installed[id]
	if !ok {
		return errorChainAnswer(c, chainEntry(profileErrorDomain, 1002, fmt.Sprintf("The profile “%s” is not installed.", id)))
	}
	if reason, keep := d.cfg.keep[id]; keep {
		return errorChainAnswer(c, chainEntry(profileErrorDomain, 1011, fmt.Sprintf("The profile “%s” cannot be removed.", p.DisplayName)),
			chainEntry(profileErrorDomain, 1011, reason))
	}
	delete(d.cfg.installed, id)
	return map[string]any{"CommandUUID": c.CommandUUID, "Status": "Acknowledged", "RequestType": c.RequestType()}
}

// profileList lists the enrollment profile and the installed ones.
func (d *Device) profileList() []any {
	var out []any
	if d.Profile != nil {
		out = append(out, map[string]any{"PayloadIdentifier": d.Profile.Identifier, "PayloadDisplayName": "Work management", "IsManaged": true})
	}
	for _, p := range d.Installed() {
		out = append(out, map[string]any{"PayloadIdentifier": p.Identifier, "PayloadDisplayName": p.DisplayName, "PayloadUUID": p.UUID,
			"IsManaged": true, "HasRemovalPasscode": false, "IsEncrypted": false, "PayloadVersion": 1})
	}
	return out
}
