// Command gen turns Apple's configuration-profile schema
// (apple/device-management, mdm/profiles/*.yaml) into payloads.json: for
// every payload type, per platform Pomona manages (iOS, macOS), when it was
// introduced and what a user enrollment allows, and the keys (at any depth)
// whose user-enrollment rule differs from their payload's. Run through
// `go generate ./mdm/payloads`.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/pomona-mdm/pomona/internal/schemagen"
	"gopkg.in/yaml.v3"
)

type yOS struct {
	Introduced     string `yaml:"introduced"`
	Removed        string `yaml:"removed"`
	UserEnrollment struct {
		Mode string `yaml:"mode"`
	} `yaml:"userenrollment"`
}

type yKey struct {
	Key         string
	Type        string
	SupportedOS map[string]yOS
	SubKeys     []yKey
}

type yFile struct {
	Title   string `yaml:"title"`
	Payload struct {
		PayloadType string         `yaml:"payloadtype"`
		SupportedOS map[string]yOS `yaml:"supportedOS"`
	} `yaml:"payload"`
	// PayloadKeys is read node by node: some schemas are recursive
	// (an anchor whose value contains its own alias, e.g. subApps in
	// com.apple.applicationaccess.new), which a plain decode refuses.
	PayloadKeys yaml.Node `yaml:"payloadkeys"`
}

// nodeKeys reads a sequence of key definitions, following aliases but
// not into a sequence it is already inside (a recursive schema repeats
// the same rules, so one level of them is all there is to learn).
func nodeKeys(n *yaml.Node, inside map[*yaml.Node]bool) ([]yKey, error) {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.SequenceNode || inside[n] {
		return nil, nil
	}
	inside[n] = true
	defer delete(inside, n)
	var out []yKey
	for _, item := range n.Content {
		if item.Kind != yaml.MappingNode {
			continue
		}
		var k yKey
		for i := 0; i+1 < len(item.Content); i += 2 {
			name, v := item.Content[i].Value, item.Content[i+1]
			var err error
			switch name {
			case "key":
				k.Key = v.Value
			case "type":
				k.Type = v.Value
			case "supportedOS":
				err = v.Decode(&k.SupportedOS)
			case "subkeys":
				k.SubKeys, err = nodeKeys(v, inside)
			}
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", k.Key, err)
			}
		}
		out = append(out, k)
	}
	return out, nil
}

// Output types (mirrored in payloads.go).
type platform struct {
	Introduced     string `json:"introduced,omitempty"`
	Removed        string `json:"removed,omitempty"`
	UserEnrollment string `json:"user_enrollment,omitempty"`
}

type key struct {
	Name           string            `json:"name"`
	Type           string            `json:"type"`
	UserEnrollment map[string]string `json:"user_enrollment,omitempty"` // platform → mode
	Sub            []key             `json:"sub,omitempty"`
}

type payload struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Source    string              `json:"source"`
	Platforms map[string]platform `json:"platforms"`
	Keys      []key               `json:"keys,omitempty"`
}

var oses = []string{"iOS", "macOS"}

func plat(m map[string]yOS) map[string]platform {
	out := map[string]platform{}
	for _, o := range oses {
		if s, ok := m[o]; ok {
			out[o] = platform{Introduced: s.Introduced, Removed: s.Removed, UserEnrollment: s.UserEnrollment.Mode}
		}
	}
	return out
}

// keys keeps the keys that carry a user-enrollment rule of their own, or
// have descendants that do: the rest follow their payload.
func keys(ks []yKey) []key {
	var out []key
	for _, k := range ks {
		ue := map[string]string{}
		for _, o := range oses {
			if m := k.SupportedOS[o].UserEnrollment.Mode; m != "" {
				ue[o] = m
			}
		}
		sub := keys(k.SubKeys)
		if len(ue) == 0 && len(sub) == 0 {
			continue
		}
		if len(ue) == 0 {
			ue = nil
		}
		t := k.Type
		if len(t) > 2 && t[0] == '<' {
			t = t[1 : len(t)-1]
		}
		out = append(out, key{Name: k.Key, Type: t, UserEnrollment: ue, Sub: sub})
	}
	return out
}

func main() {
	src := flag.String("src", "", "directory of Apple's mdm/profiles/*.yaml")
	out := flag.String("out", "payloads.json", "output file")
	commit := flag.String("commit", "", "source commit, recorded in the output")
	flag.Parse()
	files := schemagen.YAMLFiles(*src)
	byType := map[string]*payload{}
	var order []string
	for _, f := range files {
		var y yFile
		schemagen.Decode(f, &y)
		t := y.Payload.PayloadType
		if t == "" {
			continue
		}
		yk, err := nodeKeys(&y.PayloadKeys, map[*yaml.Node]bool{})
		if err != nil {
			fmt.Fprintf(os.Stderr, "gen: %s: %v\n", f, err)
			os.Exit(1)
		}
		p := &payload{Type: t, Title: y.Title, Source: "mdm/profiles/" + filepath.Base(f), Platforms: plat(y.Payload.SupportedOS), Keys: keys(yk)}
		if old, ok := byType[t]; ok {
			// Several files describe one payload type (e.g. an older and a
			// newer restrictions schema): a key forbidden in either is
			// forbidden; the platform rule of the first file stands.
			old.Keys = append(old.Keys, p.Keys...)
			old.Source += ", " + p.Source
			continue
		}
		byType[t] = p
		order = append(order, t)
	}
	sort.Strings(order)
	var all []payload
	for _, t := range order {
		all = append(all, *byType[t])
	}
	schemagen.Write(*out, *commit, "payloads", all)
}
