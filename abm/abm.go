// Package abm connects Pomona to Apple Business Manager (and Apple School
// Manager) for what account-driven user enrollment needs from it:
//
//   - server tokens: Pomona makes a key pair per ABM "MDM server", the
//     admin uploads its public-key certificate to ABM and imports the
//     server token ABM gives back (an S/MIME .p7m encrypted to that key,
//     holding OAuth 1.0a credentials for Apple's device-assignment web
//     service);
//   - Managed Apple Account access: the com.apple.maid token a device asks
//     for with the GetToken check-in (a JWT signed with the server token's
//     key, iss = the MDM server's server_uuid);
//   - fallback discovery: the account-driven-enrollment profile endpoint
//     that registers the discovery URL Apple sends a device to when the
//     company domain does not answer (iOS 18.2, macOS 15.2 and later).
//
// The client is split like Apple's protocol: Transport (an
// http.RoundTripper) owns the OAuth session (GET /session with the signed
// Authorization header, the X-ADM-Auth-Session header, a new session when
// Apple answers 401) and retries; Client has one small method per endpoint
// and turns Apple's error codes into plain words. Service holds the use
// cases over the store. Apple: "Device Assignment",
// https://developer.apple.com/documentation/devicemanagement/device-assignment,
// and "Get Token", https://developer.apple.com/documentation/devicemanagement/get-token.
package abm

// DefaultURL is Apple's device-assignment service (serve --abm-url points
// elsewhere, e.g. at the local stand-in abm/abmstub).
const DefaultURL = "https://mdmenrollment.apple.com"

// Header names and the protocol version Pomona speaks (Apple:
// "Authenticating with a Device Enrollment Program (DEP) server").
const (
	HeaderSession         = "X-ADM-Auth-Session"
	HeaderProtocolVersion = "X-Server-Protocol-Version"
	ProtocolVersion       = "7"
	// ContentType is what Apple's service sends and expects.
	ContentType = "application/json;charset=UTF8"
)

// Endpoint paths.
const (
	PathSession          = "/session"
	PathAccount          = "/account"
	PathDiscoveryProfile = "/account-driven-enrollment/profile"
)
