// Package payloads is Apple's configuration-profile schema as data,
// generated from apple/device-management (mdm/profiles): for every payload
// type and each platform Pomona manages (iOS/iPadOS, macOS), whether a user
// enrollment accepts it, and the keys — at any depth — a user enrollment
// forbids. Check walks a decoded profile and returns every violation with
// the payload, the key and the reason, the way a device would refuse the
// profile (Apple, "Profile-Specific Payload Keys" and "User Enrollment"
// in the Device Management documentation).
package payloads

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

//go:embed payloads.json
var payloadsJSON []byte

// Platforms Pomona manages (iPadOS follows iOS).
const (
	IOS   = "iOS"
	MacOS = "macOS"
)

// User-enrollment modes in Apple's schema.
const (
	Allowed   = "allowed"
	Forbidden = "forbidden"
	Ignored   = "ignored"
	Required  = "required"
)

// Platform is one OS's rule for a payload type.
type Platform struct {
	Introduced     string `json:"introduced,omitempty"` // "n/a": not on this OS
	Removed        string `json:"removed,omitempty"`
	UserEnrollment string `json:"user_enrollment,omitempty"` // "" : no user-enrollment entry
}

// Key is a payload key with a user-enrollment rule of its own (or with
// descendants that have one).
type Key struct {
	Name           string            `json:"name"`
	Type           string            `json:"type"`                      // dictionary, array, string, …
	UserEnrollment map[string]string `json:"user_enrollment,omitempty"` // platform → mode
	Sub            []Key             `json:"sub,omitempty"`             // dictionary keys, or the item of an array
}

// Payload is one payload type.
type Payload struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Source    string              `json:"source"`
	Platforms map[string]Platform `json:"platforms"`
	Keys      []Key               `json:"keys,omitempty"`
}

// Rules holds every payload type.
type Rules struct {
	Source struct {
		Repository string `json:"repository"`
		Commit     string `json:"commit"`
	} `json:"source"`
	Payloads []Payload `json:"payloads"`
	byType   map[string]*Payload
}

var std = mustLoad(payloadsJSON)

// Default is the rule set generated from Apple's schema.
func Default() *Rules { return std }

func mustLoad(b []byte) *Rules {
	var r Rules
	if err := json.Unmarshal(b, &r); err != nil {
		panic("payloads: " + err.Error())
	}
	r.byType = map[string]*Payload{}
	for i := range r.Payloads {
		r.byType[r.Payloads[i].Type] = &r.Payloads[i]
	}
	return &r
}

// Payload looks a payload type up.
func (r *Rules) Payload(payloadType string) (*Payload, bool) {
	p, ok := r.byType[payloadType]
	return p, ok
}

// Violation is one thing a user enrollment on Platform refuses.
type Violation struct {
	Platform          string `json:"platform"`
	PayloadType       string `json:"payload_type"`       // "TopLevel" for the profile's own keys
	PayloadIdentifier string `json:"payload_identifier"` // the payload's PayloadIdentifier
	Key               string `json:"key,omitempty"`      // path of the key ("EAPClientConfiguration.TLSTrustedServerNames"); "" for the payload itself
	Reason            string `json:"reason"`
}

func (v Violation) String() string {
	s := v.Platform + ": " + v.PayloadType
	if v.PayloadIdentifier != "" {
		s += " (" + v.PayloadIdentifier + ")"
	}
	if v.Key != "" {
		s += ": " + v.Key
	}
	return s + ": " + v.Reason
}

func supported(p Platform, ok bool) bool {
	return ok && p.Introduced != "" && p.Introduced != "n/a"
}

// Check returns what a user enrollment on platform (IOS or MacOS) refuses
// in profile, a decoded configuration profile (the top-level dictionary
// with its PayloadContent array): payload types the platform does not
// have, payload types a user enrollment forbids or that have no
// user-enrollment entry in Apple's schema (a device refuses them too),
// and keys forbidden at any depth — PayloadRemovalDisallowed among them.
// Violations come in the profile's order; none means the profile passes.
func (r *Rules) Check(profile map[string]any, platform string) []Violation {
	var out []Violation
	top := r.byType["TopLevel"]
	id, _ := profile["PayloadIdentifier"].(string)
	out = r.keys(out, platform, "TopLevel", id, "", profile, top.Keys, Allowed)
	content, _ := profile["PayloadContent"].([]any)
	common := r.byType["CommonPayloadKeys"]
	for i, item := range content {
		pl, ok := item.(map[string]any)
		if !ok {
			out = append(out, Violation{Platform: platform, PayloadType: "?", Key: fmt.Sprintf("PayloadContent[%d]", i), Reason: "a payload must be a dictionary"})
			continue
		}
		t, _ := pl["PayloadType"].(string)
		pid, _ := pl["PayloadIdentifier"].(string)
		p, ok := r.byType[t]
		if !ok || t == "TopLevel" || t == "CommonPayloadKeys" {
			out = append(out, Violation{Platform: platform, PayloadType: t, PayloadIdentifier: pid, Reason: "not a payload type in Apple's schema"})
			continue
		}
		rule, ok := p.Platforms[platform]
		switch {
		case !supported(rule, ok):
			out = append(out, Violation{Platform: platform, PayloadType: t, PayloadIdentifier: pid, Reason: fmt.Sprintf("%s (%s) is not available on %s", p.Title, t, platform)})
			continue
		case rule.UserEnrollment == Forbidden:
			out = append(out, Violation{Platform: platform, PayloadType: t, PayloadIdentifier: pid, Reason: fmt.Sprintf("%s (%s) is forbidden for a user enrollment on %s", p.Title, t, platform)})
			continue
		case rule.UserEnrollment == "":
			out = append(out, Violation{Platform: platform, PayloadType: t, PayloadIdentifier: pid, Reason: fmt.Sprintf("%s (%s) has no user-enrollment entry in Apple's schema for %s: a user enrollment does not install it", p.Title, t, platform)})
			continue
		}
		out = r.keys(out, platform, t, pid, "", pl, common.Keys, rule.UserEnrollment)
		out = r.keys(out, platform, t, pid, "", pl, p.Keys, rule.UserEnrollment)
	}
	return out
}

// keys checks the keys of one dictionary against ks.
func (r *Rules) keys(out []Violation, platform, t, pid, prefix string, dict map[string]any, ks []Key, inherited string) []Violation {
	for _, k := range ks {
		v, ok := dict[k.Name]
		if !ok {
			continue
		}
		path := prefix + k.Name
		mode := inherited
		if m, ok := k.UserEnrollment[platform]; ok {
			mode = m
		}
		if mode == Forbidden {
			out = append(out, Violation{Platform: platform, PayloadType: t, PayloadIdentifier: pid, Key: path,
				Reason: fmt.Sprintf("%s is forbidden for a user enrollment on %s", k.Name, platform)})
			continue
		}
		if len(k.Sub) == 0 {
			continue
		}
		switch x := v.(type) {
		case map[string]any:
			out = r.keys(out, platform, t, pid, path+".", x, k.Sub, mode)
		case []any:
			// An array's schema has one entry: its item.
			item := k.Sub[0]
			for i, e := range x {
				p := fmt.Sprintf("%s[%d]", path, i)
				if item.UserEnrollment[platform] == Forbidden {
					out = append(out, Violation{Platform: platform, PayloadType: t, PayloadIdentifier: pid, Key: p,
						Reason: fmt.Sprintf("%s is forbidden for a user enrollment on %s", item.Name, platform)})
					continue
				}
				if d, ok := e.(map[string]any); ok {
					out = r.keys(out, platform, t, pid, p+".", d, item.Sub, mode)
				}
			}
		}
	}
	return out
}

// Summary joins violations for a message.
func Summary(vs []Violation) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.String()
	}
	sort.Strings(s)
	return strings.Join(s, "; ")
}
