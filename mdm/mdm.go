// Package mdm is the protocol logic of Apple's MDM check-in and command
// channels for user enrollments: decoding check-in messages and command
// results (safely: XML only, bounded size and nesting), resolving which
// enrollment channel a message speaks for, and encoding commands. It does
// no I/O.
//
// Apple: "Check-in", https://developer.apple.com/documentation/devicemanagement/check-in
// (Authenticate, TokenUpdate, CheckOut, UserAuthenticate, GetToken,
// DeclarativeManagement), and "Sending MDM commands to a device",
// https://developer.apple.com/documentation/devicemanagement/sending-mdm-commands-to-a-device
// (the command/report channel: Status, CommandUUID, ErrorChain).
package mdm

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"unicode"
	"unicode/utf8"

	"github.com/micromdm/plist"

	"github.com/pomona-mdm/pomona/untrusted"
)

// Size limits of request bodies.
const (
	MaxCheckin = 256 << 10
	MaxResult  = 8 << 20 // app and certificate lists can be large
	// MaxDepth bounds plist nesting; real messages stay under 10.
	MaxDepth = 32
)

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("malformed MDM message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Plist limits of device messages (package untrusted enforces them before
// micromdm/plist sees the bytes).
var (
	checkinPlist = untrusted.PlistLimits{MaxSize: MaxCheckin, MaxDepth: MaxDepth, MaxElements: 20000}
	// ResultPlist bounds a command result: an InstalledApplicationList of
	// a few hundred apps has about 10,000 elements.
	ResultPlist = untrusted.PlistLimits{MaxSize: MaxResult, MaxDepth: MaxDepth, MaxElements: 400000}
)

// Channel kinds.
const (
	DeviceChannel = "device"
	UserChannel   = "user"
)

// Identity is who a message speaks for. User enrollments identify by
// EnrollmentID (device channel) plus EnrollmentUserID on a Mac's user
// channel; hardware identifiers are refused. Both are device-chosen: they
// only ever select among the channels of the enrollment the identity
// certificate proves, never name a channel by themselves.
type Identity struct {
	EnrollmentID     string `plist:"EnrollmentID"`
	EnrollmentUserID string `plist:"EnrollmentUserID"`
	UDID             string `plist:"UDID"`
	UserID           string `plist:"UserID"`
}

// Kind is DeviceChannel or UserChannel.
func (i Identity) Kind() string {
	if i.EnrollmentUserID != "" {
		return UserChannel
	}
	return DeviceChannel
}

// MaxIDLen bounds EnrollmentID and EnrollmentUserID (Apple's are UUID-like,
// under 64 bytes).
const MaxIDLen = 128

func (i Identity) validate() error {
	if i.UDID != "" {
		return malformed("UDID present: this is not a user enrollment (Pomona manages account-driven user enrollments only)")
	}
	if i.EnrollmentID == "" {
		return malformed("EnrollmentID missing")
	}
	if err := checkID("EnrollmentID", i.EnrollmentID); err != nil {
		return err
	}
	return checkID("EnrollmentUserID", i.EnrollmentUserID)
}

// checkID refuses identifiers no device sends: over MaxIDLen bytes, not
// UTF-8, or with a '/' (once a separator of channel ids), a control or
// any other non-printable character.
func checkID(name, v string) error {
	if len(v) > MaxIDLen {
		return malformed("%s longer than %d bytes", name, MaxIDLen)
	}
	if !utf8.ValidString(v) {
		return malformed("%s is not UTF-8", name)
	}
	for _, r := range v {
		if r == '/' || !unicode.IsPrint(r) {
			return malformed("%s contains %q: separators and non-printable characters are refused", name, r)
		}
	}
	return nil
}

// Check-in message types.
const (
	Authenticate          = "Authenticate"
	TokenUpdate           = "TokenUpdate"
	CheckOut              = "CheckOut"
	UserAuthenticate      = "UserAuthenticate"
	DeclarativeManagement = "DeclarativeManagement"
	GetToken              = "GetToken"
	GetBootstrapToken     = "GetBootstrapToken"
	SetBootstrapToken     = "SetBootstrapToken"
)

// Checkin is a decoded check-in message (the keys user enrollment uses):
// AuthenticateRequest, TokenUpdateRequest, CheckOutRequest,
// UserAuthenticateRequest, GetTokenRequest, DeclarativeManagementRequest
// and the bootstrap-token requests, told apart by MessageType
// (https://developer.apple.com/documentation/devicemanagement/check-in).
type Checkin struct {
	Identity
	MessageType string `plist:"MessageType"`
	Topic       string `plist:"Topic"`
	// Authenticate
	OSVersion    string `plist:"OSVersion"`
	BuildVersion string `plist:"BuildVersion"`
	ProductName  string `plist:"ProductName"`
	DeviceName   string `plist:"DeviceName"`
	Model        string `plist:"Model"`
	ModelName    string `plist:"ModelName"`
	SerialNumber string `plist:"SerialNumber"`
	// TokenUpdate
	Token                 []byte `plist:"Token"`
	PushMagic             string `plist:"PushMagic"`
	UnlockToken           []byte `plist:"UnlockToken"`
	AwaitingConfiguration bool   `plist:"AwaitingConfiguration"`
	UserShortName         string `plist:"UserShortName"`
	UserLongName          string `plist:"UserLongName"`
	NotOnConsole          bool   `plist:"NotOnConsole"`
	// DeclarativeManagement / GetToken
	Endpoint         string `plist:"Endpoint"`
	Data             []byte `plist:"Data"`
	TokenServiceType string `plist:"TokenServiceType"`
}

// DecodeCheckin decodes and validates a check-in body: an XML plist of at
// most MaxCheckin bytes and MaxDepth levels. Errors wrap ErrMalformed.
func DecodeCheckin(b []byte) (*Checkin, error) {
	if len(b) > MaxCheckin {
		return nil, malformed("check-in larger than %d bytes", MaxCheckin)
	}
	var c Checkin
	if err := untrusted.Plist(b, &c, checkinPlist); err != nil {
		return nil, malformed("%v", err)
	}
	if c.MessageType == "" {
		return nil, malformed("MessageType missing")
	}
	if err := c.Identity.validate(); err != nil {
		return nil, err
	}
	if c.SerialNumber != "" {
		return nil, malformed("SerialNumber present: user enrollments never send it")
	}
	if c.MessageType == TokenUpdate && (len(c.Token) == 0 || c.PushMagic == "") {
		return nil, malformed("TokenUpdate without Token or PushMagic")
	}
	return &c, nil
}

// Command result statuses.
const (
	Idle               = "Idle"
	Acknowledged       = "Acknowledged"
	Error              = "Error"
	CommandFormatError = "CommandFormatError"
	NotNow             = "NotNow"
)

// ErrorChainItem is one entry of a result's ErrorChain (Apple's
// ErrorChainItem, https://developer.apple.com/documentation/devicemanagement/sending-mdm-commands-to-a-device).
type ErrorChainItem struct {
	ErrorCode            int    `plist:"ErrorCode" json:"code"`
	ErrorDomain          string `plist:"ErrorDomain" json:"domain"`
	LocalizedDescription string `plist:"LocalizedDescription" json:"description"`
	USEnglishDescription string `plist:"USEnglishDescription" json:"us_english_description,omitempty"`
}

// Result is a decoded command response (or Idle poll): the body a device
// PUTs on the command channel with Status Acknowledged, Error,
// CommandFormatError, NotNow or Idle
// (https://developer.apple.com/documentation/devicemanagement/sending-mdm-commands-to-a-device).
type Result struct {
	Identity
	Status      string           `plist:"Status"`
	CommandUUID string           `plist:"CommandUUID"`
	RequestType string           `plist:"RequestType"`
	ErrorChain  []ErrorChainItem `plist:"ErrorChain"`
	// Raw is the whole body, kept as the command's result.
	Raw []byte `plist:"-"`
	// Doc is the whole body decoded by DecodeValue: JSON-safe, for the
	// inventory, the API and the console.
	Doc map[string]any `plist:"-"`
}

// DecodeResult decodes and validates a command-channel body: an XML plist
// of at most MaxResult bytes within ResultPlist. Errors wrap ErrMalformed.
func DecodeResult(b []byte) (*Result, error) {
	if len(b) > MaxResult {
		return nil, malformed("result larger than %d bytes", MaxResult)
	}
	// DecodeValue, not a typed decode: a result may hold values a typed
	// decoder refuses (integers beyond 64 bits, NaN), and it must still be
	// recorded, or the command would stay "sent" for ever.
	doc, err := DecodeDict(b)
	if err != nil {
		return nil, err
	}
	r, err := resultOf(doc)
	if err != nil {
		return nil, err
	}
	if err := r.Identity.validate(); err != nil {
		return nil, err
	}
	switch r.Status {
	case Idle:
	case Acknowledged, Error, CommandFormatError, NotNow:
		if r.CommandUUID == "" {
			return nil, malformed("status %s without CommandUUID", r.Status)
		}
	case "":
		return nil, malformed("Status missing")
	default:
		return nil, malformed("unknown Status %q", r.Status)
	}
	r.Raw, r.Doc = b, doc
	return r, nil
}

// resultOf reads a result's fields from its decoded document.
func resultOf(doc map[string]any) (*Result, error) {
	r := &Result{}
	for _, f := range []struct {
		key string
		to  *string
	}{
		{"EnrollmentID", &r.EnrollmentID}, {"EnrollmentUserID", &r.EnrollmentUserID}, {"UDID", &r.UDID}, {"UserID", &r.UserID},
		{"Status", &r.Status}, {"CommandUUID", &r.CommandUUID}, {"RequestType", &r.RequestType},
	} {
		s, err := fieldString(doc, f.key)
		if err != nil {
			return nil, err
		}
		*f.to = s
	}
	// ErrorChain is informational: entries of other shapes are skipped
	// rather than losing the result.
	items, _ := doc["ErrorChain"].([]any)
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		var e ErrorChainItem
		if n, ok := m["ErrorCode"].(json.Number); ok {
			if c, err := n.Int64(); err == nil && c >= math.MinInt32 && c <= math.MaxInt32 {
				e.ErrorCode = int(c)
			}
		}
		e.ErrorDomain, _ = m["ErrorDomain"].(string)
		e.LocalizedDescription, _ = m["LocalizedDescription"].(string)
		e.USEnglishDescription, _ = m["USEnglishDescription"].(string)
		r.ErrorChain = append(r.ErrorChain, e)
	}
	return r, nil
}

// Command is what the server sends on the command channel: a plist
// dictionary with CommandUUID and Command (whose RequestType names the
// command, e.g. InstallProfile, https://developer.apple.com/documentation/devicemanagement/installprofilecommand).
type Command struct {
	CommandUUID string         `plist:"CommandUUID"`
	Command     map[string]any `plist:"Command"`
}

// Encode renders a command for the device: plist.MarshalIndent(c, "\t"),
// written directly (encodePlain) when the command is made of the values
// the catalogue builds.
func (c Command) Encode() ([]byte, error) {
	if b, ok := c.encodePlain(); ok {
		return b, nil
	}
	return plist.MarshalIndent(c, "\t")
}
