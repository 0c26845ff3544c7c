// Package catalog is Apple's MDM command schema as data, generated from
// apple/device-management: which commands exist, their keys and types,
// and what a user enrollment allows on each platform. Pomona refuses,
// before queueing, any command or key that Apple forbids for a user
// enrollment on the device's platform, and converts typed JSON into the
// command dictionary Apple expects.
//
// Apple: "Commands and queries", https://developer.apple.com/documentation/devicemanagement/commands-and-queries
// (each command page's "Allowed in user enrollment" row is the schema's
// userenrollment key), from https://github.com/apple/device-management
// (mdm/commands).
package catalog

import (
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
)

//go:embed catalog.json
var catalogJSON []byte

// Platforms Pomona enrolls and manages, named as Apple's schema names them
// (supportedOS keys): the one set of platform names in Pomona, stored in
// Enrollment.Platform. iPadOS follows iOS.
const (
	IOS   = "iOS"   // iPhone and iPad (iPadOS)
	MacOS = "macOS" // Mac
)

// Platform is one OS's rule for a command or key.
type Platform struct {
	Introduced     string `json:"introduced,omitempty"`
	Removed        string `json:"removed,omitempty"`
	UserEnrollment string `json:"user_enrollment,omitempty"` // allowed, forbidden, ignored, required, or "" (unspecified)
	DeviceChannel  *bool  `json:"device_channel,omitempty"`
	UserChannel    *bool  `json:"user_channel,omitempty"`
}

// Key is one key of a command (or of a nested dictionary or array item).
type Key struct {
	Name      string              `json:"name"`
	Type      string              `json:"type"` // string, integer, real, boolean, data, date, array, dictionary, any
	Required  bool                `json:"required,omitempty"`
	Range     []any               `json:"range,omitempty"`
	Platforms map[string]Platform `json:"platforms,omitempty"`
	Sub       []Key               `json:"sub,omitempty"`
}

// CommandSchema is what Apple's schema says of one MDM command: its keys and,
// per platform, when it came and what a user enrollment allows. Named
// apart from mdm.Command (a command to send) and store.CommandRecord.
type CommandSchema struct {
	RequestType string              `json:"request_type"`
	Title       string              `json:"title"`
	Source      string              `json:"source"`
	Platforms   map[string]Platform `json:"platforms"`
	Keys        []Key               `json:"keys"`
}

// Catalog holds every command.
type Catalog struct {
	Source struct {
		Repository string `json:"repository"`
		Commit     string `json:"commit"`
	} `json:"source"`
	Commands []CommandSchema `json:"commands"`
	byType   map[string]*CommandSchema
}

// std is loaded on first use rather than at init, so that the generator
// (./gen, which declares its output with this package's types) still runs
// when catalog.json is broken or missing.
var std = sync.OnceValue(func() *Catalog { return mustLoad(catalogJSON) })

// Default is the catalogue generated from Apple's schema.
func Default() *Catalog { return std() }

func mustLoad(b []byte) *Catalog {
	var c Catalog
	if err := json.Unmarshal(b, &c); err != nil {
		panic("catalog: " + err.Error())
	}
	c.byType = map[string]*CommandSchema{}
	for i := range c.Commands {
		c.byType[c.Commands[i].RequestType] = &c.Commands[i]
	}
	return &c
}

// Command looks a request type up.
func (c *Catalog) Command(requestType string) (*CommandSchema, bool) {
	cmd, ok := c.byType[requestType]
	return cmd, ok
}

// Refusal is why Pomona will not queue a command.
type Refusal struct {
	RequestType string
	Key         string // empty for the command itself
	Reason      string
}

func (r *Refusal) Error() string {
	if r.Key != "" {
		return r.RequestType + ": " + r.Key + ": " + r.Reason
	}
	return r.RequestType + ": " + r.Reason
}

func refuse(rt, key, format string, args ...any) *Refusal {
	return &Refusal{RequestType: rt, Key: key, Reason: fmt.Sprintf(format, args...)}
}

func supported(p Platform, ok bool) bool {
	return ok && p.Introduced != "" && p.Introduced != "n/a"
}

// Allowed says whether a user enrollment on platform may receive the command.
func (c *Catalog) Allowed(requestType, platform string) error {
	cmd, ok := c.byType[requestType]
	if !ok {
		return refuse(requestType, "", "unknown command")
	}
	p, ok := cmd.Platforms[platform]
	switch {
	case !supported(p, ok):
		return refuse(requestType, "", "not supported on %s", platform)
	case p.UserEnrollment == "forbidden":
		return refuse(requestType, "", "Apple forbids this command for user enrollments on %s", platform)
	case p.UserEnrollment != "allowed":
		return refuse(requestType, "", "Apple's schema does not allow this command for user enrollments on %s", platform)
	}
	return nil
}

// AllowedCommands lists the request types a user enrollment on platform
// may receive.
func (c *Catalog) AllowedCommands(platform string) []string {
	var out []string
	for _, cmd := range c.Commands {
		if c.Allowed(cmd.RequestType, platform) == nil {
			out = append(out, cmd.RequestType)
		}
	}
	return out
}

// keyRule reports whether key k may appear for a user enrollment on platform.
func keyRule(rt, path string, k *Key, platform string) error {
	p, ok := k.Platforms[platform]
	if !ok {
		return nil // no per-OS entry: follows the command
	}
	if p.Introduced == "n/a" {
		return refuse(rt, path, "not supported on %s", platform)
	}
	if p.UserEnrollment == "forbidden" {
		return refuse(rt, path, "Apple forbids this for user enrollments on %s", platform)
	}
	return nil
}

// Check validates a command dictionary (Apple's key names, RequestType
// included) for a user enrollment on platform.
func (c *Catalog) Check(platform string, cmd map[string]any) error {
	rt, _ := cmd["RequestType"].(string)
	if rt == "" {
		return refuse("", "RequestType", "missing")
	}
	if err := c.Allowed(rt, platform); err != nil {
		return err
	}
	def := c.byType[rt]
	rest := map[string]any{}
	for k, v := range cmd {
		if k != "RequestType" {
			rest[k] = v
		}
	}
	return checkDict(rt, "", rest, def.Keys, platform)
}

func checkDict(rt, path string, d map[string]any, keys []Key, platform string) error {
	byName := map[string]*Key{}
	for i := range keys {
		byName[keys[i].Name] = &keys[i]
	}
	for _, k := range keys {
		if _, ok := d[k.Name]; !ok && k.Required {
			return refuse(rt, join(path, k.Name), "required")
		}
	}
	names := make([]string, 0, len(d))
	for n := range d {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		k, ok := byName[n]
		if !ok {
			return refuse(rt, join(path, n), "unknown key")
		}
		if err := checkValue(rt, join(path, n), d[n], k, platform); err != nil {
			return err
		}
	}
	return nil
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func checkValue(rt, path string, v any, k *Key, platform string) error {
	if err := keyRule(rt, path, k, platform); err != nil {
		return err
	}
	switch k.Type {
	case "string":
		s, ok := v.(string)
		if !ok {
			return refuse(rt, path, "must be a string")
		}
		if len(k.Sub) > 0 { // an enumerated value, each with its own rules
			for i := range k.Sub {
				if k.Sub[i].Name == s {
					return keyRule(rt, path+"="+s, &k.Sub[i], platform)
				}
			}
			return refuse(rt, path, "unknown value %q", s)
		}
		if len(k.Range) > 0 && !inRange(s, k.Range) {
			return refuse(rt, path, "must be one of %v", k.Range)
		}
	case "integer":
		n, ok := asInt(v)
		if !ok {
			return refuse(rt, path, "must be an integer")
		}
		if len(k.Range) > 0 && !inRange(n, k.Range) {
			return refuse(rt, path, "must be one of %v", k.Range)
		}
	case "real":
		if _, ok := asFloat(v); !ok {
			return refuse(rt, path, "must be a number")
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return refuse(rt, path, "must be true or false")
		}
	case "data":
		if _, ok := v.([]byte); !ok {
			return refuse(rt, path, "must be data")
		}
	case "date":
		if _, ok := v.(time.Time); !ok {
			return refuse(rt, path, "must be a date")
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return refuse(rt, path, "must be an array")
		}
		for i, item := range arr {
			ik, err := itemKey(rt, path, item, k)
			if err != nil {
				return err
			}
			if err := checkValue(rt, fmt.Sprintf("%s[%d]", path, i), item, ik, platform); err != nil {
				return err
			}
		}
	case "dictionary":
		d, ok := v.(map[string]any)
		if !ok {
			return refuse(rt, path, "must be a dictionary")
		}
		if len(k.Sub) == 0 || (len(k.Sub) == 1 && k.Sub[0].Name == "ANY") {
			return nil // free-form (app configuration and the like)
		}
		return checkDict(rt, path, d, k.Sub, platform)
	}
	return nil
}

// itemKey picks the schema of an array element: the single item key, or,
// for arrays of alternatives (Settings), the one whose Item value matches.
func itemKey(rt, path string, item any, k *Key) (*Key, error) {
	if len(k.Sub) == 1 {
		return &k.Sub[0], nil
	}
	if len(k.Sub) == 0 {
		return &Key{Name: "item", Type: "any"}, nil
	}
	d, ok := item.(map[string]any)
	if !ok {
		return nil, refuse(rt, path, "items must be dictionaries")
	}
	want, _ := d["Item"].(string)
	for i := range k.Sub {
		for _, s := range k.Sub[i].Sub {
			if s.Name == "Item" && inRange(want, s.Range) {
				return &k.Sub[i], nil
			}
		}
	}
	return nil, refuse(rt, path, "unknown Item %q", want)
}

func inRange(v any, r []any) bool {
	for _, x := range r {
		switch xv := x.(type) {
		case float64:
			if n, ok := asInt(v); ok && float64(n) == xv {
				return true
			}
		default:
			if fmt.Sprint(x) == fmt.Sprint(v) {
				return true
			}
		}
	}
	return false
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		if n > math.MaxInt64 {
			return 0, false
		}
		return int64(n), true
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int64(n), true
		}
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

func asFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// Snake turns Apple's key names into the JSON names the API accepts
// (ManagedOnly → managed_only, iTunesStoreID → itunes_store_id).
func Snake(name string) string {
	name = strings.ReplaceAll(name, "iTunes", "Itunes")
	var b strings.Builder
	rs := []rune(name)
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 {
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// FromJSON converts a typed JSON command ({"request_type": "DeviceInformation",
// "queries": ["OSVersion"]}; Apple's key names are accepted too) into the
// command dictionary Apple expects, then checks it for platform.
func (c *Catalog) FromJSON(platform string, in map[string]any) (map[string]any, error) {
	rt := ""
	for _, k := range []string{"request_type", "RequestType"} {
		if s, ok := in[k].(string); ok {
			rt = s
		}
	}
	if rt == "" {
		return nil, refuse("", "request_type", "missing")
	}
	if err := c.Allowed(rt, platform); err != nil {
		return nil, err
	}
	out := map[string]any{"RequestType": rt}
	rest := map[string]any{}
	for k, v := range in {
		if k != "request_type" && k != "RequestType" {
			rest[k] = v
		}
	}
	d, err := convertDict(rt, "", rest, c.byType[rt].Keys)
	if err != nil {
		return nil, err
	}
	for k, v := range d {
		out[k] = v
	}
	return out, c.Check(platform, out)
}

func convertDict(rt, path string, in map[string]any, keys []Key) (map[string]any, error) {
	out := map[string]any{}
	for name, v := range in {
		var k *Key
		for i := range keys {
			if keys[i].Name == name || Snake(keys[i].Name) == name {
				k = &keys[i]
				break
			}
		}
		if k == nil {
			return nil, refuse(rt, join(path, name), "unknown key")
		}
		cv, err := convert(rt, join(path, k.Name), v, k)
		if err != nil {
			return nil, err
		}
		out[k.Name] = cv
	}
	return out, nil
}

func convert(rt, path string, v any, k *Key) (any, error) {
	switch k.Type {
	case "integer":
		n, ok := asInt(v)
		if !ok {
			return nil, refuse(rt, path, "must be an integer")
		}
		return n, nil
	case "real":
		f, ok := asFloat(v)
		if !ok {
			return nil, refuse(rt, path, "must be a number")
		}
		return f, nil
	case "data":
		s, ok := v.(string)
		if !ok {
			return nil, refuse(rt, path, "must be base64 text")
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, refuse(rt, path, "must be base64 text")
		}
		return b, nil
	case "date":
		s, ok := v.(string)
		if !ok {
			return nil, refuse(rt, path, "must be an RFC 3339 date")
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return nil, refuse(rt, path, "must be an RFC 3339 date")
		}
		return t.UTC(), nil
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return nil, refuse(rt, path, "must be an array")
		}
		out := make([]any, len(arr))
		for i, item := range arr {
			// Alternatives are matched on the converted element's Item.
			if d, ok := item.(map[string]any); ok && len(k.Sub) > 1 {
				if it, ok := d["item"]; ok {
					d["Item"] = it
					delete(d, "item")
				}
			}
			ik, err := itemKey(rt, path, item, k)
			if err != nil {
				return nil, err
			}
			cv, err := convert(rt, fmt.Sprintf("%s[%d]", path, i), item, ik)
			if err != nil {
				return nil, err
			}
			out[i] = cv
		}
		return out, nil
	case "dictionary":
		d, ok := v.(map[string]any)
		if !ok {
			return nil, refuse(rt, path, "must be an object")
		}
		if len(k.Sub) == 0 || (len(k.Sub) == 1 && k.Sub[0].Name == "ANY") {
			return d, nil
		}
		return convertDict(rt, path, d, k.Sub)
	}
	return v, nil
}

// KeyAllowed reports whether key k (of a command allowed on platform) may
// be sent to a user enrollment on platform.
func KeyAllowed(k *Key, platform string) bool { return keyRule("", "", k, platform) == nil }
