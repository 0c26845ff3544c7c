package devicesim

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Process answers a command the way the device would, carrying out the
// ones the simulator implements: InstallProfile of the enrollment profile
// (how a server renews the MDM identity), configuration profiles (kept,
// listed by ProfileList, refused when a user enrollment forbids them) and
// RemoveProfile of them. Every other command gets Answer.
func (d *Device) Process(ctx context.Context, c *ReceivedCommand) map[string]any {
	switch c.RequestType() {
	case "InstallProfile":
		return d.InstallProfile(ctx, c)
	case "RemoveProfile":
		return d.removeProfile(c)
	}
	return d.Answer(c)
}

// Error domains and codes a device answers a refused InstallProfile with.
const (
	// ErrImmutableKeyChanged: a re-sent enrollment profile changes a key
	// that must stay the same (MCMDMErrorDomain 12012).
	ErrImmutableKeyChanged = 12012
	mdmErrorDomain         = "MCMDMErrorDomain"
	scepErrorDomain        = "MCSCEPErrorDomain"
	profileErrorDomain     = "MCProfileErrorDomain"
)

func errorAnswer(c *ReceivedCommand, domain string, code int, msg string) map[string]any {
	return map[string]any{"CommandUUID": c.CommandUUID, "Status": "Error", "RequestType": c.RequestType(),
		"ErrorChain": []any{map[string]any{"ErrorDomain": domain, "ErrorCode": code, "LocalizedDescription": msg, "USEnglishDescription": msg}}}
}

// InstallProfile installs the command's Payload
// (https://developer.apple.com/documentation/devicemanagement/installprofilecommand). A profile with the
// enrollment profile's PayloadIdentifier replaces it, as on a real device:
// the immutable keys of its MDM payload (Topic, ServerURL, CheckInURL,
// AssignedManagedAppleID compared case-insensitively, EnrollmentMode,
// the per-user-connections capability) must be unchanged or the device
// answers MCMDMErrorDomain 12012; then the device runs SCEP with the new
// profile's challenge and a new key, switches to the new identity, and
// answers Acknowledged signed with it. A configuration profile (no MDM
// payload) is installed by installConfig.
func (d *Device) InstallProfile(ctx context.Context, c *ReceivedCommand) map[string]any {
	raw, _ := c.Command["Payload"].([]byte)
	if len(raw) == 0 {
		return errorAnswer(c, profileErrorDomain, 1000, "The profile has no payload.")
	}
	info, err := parseProfile(raw)
	if err != nil && d.Profile != nil && strings.Contains(err.Error(), "AssignedManagedAppleID") {
		// The Fleet pitfall: a re-sent profile without the Managed Apple ID.
		return errorAnswer(c, mdmErrorDomain, ErrImmutableKeyChanged, "The new MDM payload does not match the old payload: AssignedManagedAppleID changed.")
	}
	if d.Profile == nil || err != nil && !strings.Contains(err.Error(), "no com.apple.mdm payload") {
		if err == nil {
			err = fmt.Errorf("no enrollment profile installed")
		}
		return errorAnswer(c, profileErrorDomain, 1000, err.Error())
	}
	if err != nil {
		// A configuration profile (no MDM payload): install it.
		return d.installConfig(ctx, c, raw)
	}
	if info.Identifier != d.Profile.Identifier {
		return map[string]any{"CommandUUID": c.CommandUUID, "Status": "Acknowledged", "RequestType": c.RequestType()}
	}
	if changed := immutableChanges(d.Profile, info); len(changed) > 0 {
		return errorAnswer(c, mdmErrorDomain, ErrImmutableKeyChanged,
			"The new MDM payload does not match the old payload: "+strings.Join(changed, ", ")+" changed.")
	}
	key, cert, err := d.newIdentity(ctx, "renewal SCEP", info)
	if err != nil {
		return errorAnswer(c, scepErrorDomain, 22013, err.Error())
	}
	d.IdentityKey, d.IdentityCert, d.Profile = key, cert, info
	return map[string]any{"CommandUUID": c.CommandUUID, "Status": "Acknowledged", "RequestType": c.RequestType()}
}

// immutableChanges lists the MDM-payload keys a re-sent profile must not
// change but does.
func immutableChanges(old, new *ProfileInfo) []string {
	var out []string
	if old.Topic != new.Topic {
		out = append(out, "Topic")
	}
	if old.ServerURL != new.ServerURL {
		out = append(out, "ServerURL")
	}
	if old.CheckInURL != new.CheckInURL {
		out = append(out, "CheckInURL")
	}
	if !strings.EqualFold(old.ManagedAppleID, new.ManagedAppleID) {
		out = append(out, "AssignedManagedAppleID")
	}
	if old.EnrollmentMode != new.EnrollmentMode {
		out = append(out, "EnrollmentMode")
	}
	const perUser = "com.apple.mdm.per-user-connections"
	if slices.Contains(old.Capabilities, perUser) != slices.Contains(new.Capabilities, perUser) {
		out = append(out, "ServerCapabilities ("+perUser+")")
	}
	return out
}
