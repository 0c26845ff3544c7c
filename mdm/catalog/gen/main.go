// Command gen turns Apple's MDM command schema (apple/device-management,
// mdm/commands/*.yaml) into catalog.json: every command with its keys and,
// per platform Pomona manages (iOS, macOS), when it was introduced and what
// a user enrollment allows. Run through `go generate ./mdm/catalog`.
package main

import (
	"flag"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pomona-mdm/pomona/internal/schemagen"
	"github.com/pomona-mdm/pomona/mdm/catalog"
)

type yKey struct {
	Key         string                 `yaml:"key"`
	Type        string                 `yaml:"type"`
	Presence    string                 `yaml:"presence"`
	RangeList   []any                  `yaml:"rangelist"`
	SupportedOS map[string]yOS         `yaml:"supportedOS"`
	SubKeys     []yKey                 `yaml:"subkeys"`
	Rest        map[string]interface{} `yaml:",inline"`
}

type yOS struct {
	Introduced     string `yaml:"introduced"`
	Removed        string `yaml:"removed"`
	DeviceChannel  *bool  `yaml:"devicechannel"`
	UserChannel    *bool  `yaml:"userchannel"`
	UserEnrollment struct {
		Mode string `yaml:"mode"`
	} `yaml:"userenrollment"`
}

type yFile struct {
	Title   string `yaml:"title"`
	Payload struct {
		RequestType string         `yaml:"requesttype"`
		SupportedOS map[string]yOS `yaml:"supportedOS"`
	} `yaml:"payload"`
	PayloadKeys []yKey `yaml:"payloadkeys"`
}

var oses = []string{catalog.IOS, catalog.MacOS}

func plat(m map[string]yOS) map[string]catalog.Platform {
	out := map[string]catalog.Platform{}
	for _, o := range oses {
		s, ok := m[o]
		if !ok {
			continue
		}
		out[o] = catalog.Platform{Introduced: s.Introduced, Removed: s.Removed, UserEnrollment: s.UserEnrollment.Mode, DeviceChannel: s.DeviceChannel, UserChannel: s.UserChannel}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func keys(ks []yKey) []catalog.Key {
	var out []catalog.Key
	for _, k := range ks {
		out = append(out, catalog.Key{Name: k.Key, Type: strings.Trim(k.Type, "<>"), Required: k.Presence == "required",
			Range: k.RangeList, Platforms: plat(k.SupportedOS), Sub: keys(k.SubKeys)})
	}
	return out
}

func main() {
	src := flag.String("src", "", "directory of Apple's mdm/commands/*.yaml")
	out := flag.String("out", "catalog.json", "output file")
	commit := flag.String("commit", "", "source commit, recorded in the output")
	flag.Parse()
	files := schemagen.YAMLFiles(*src)
	var cmds []catalog.CommandSchema
	for _, f := range files {
		var y yFile
		schemagen.Decode(f, &y)
		if y.Payload.RequestType == "" {
			continue
		}
		cmds = append(cmds, catalog.CommandSchema{RequestType: y.Payload.RequestType, Title: y.Title, Source: "mdm/commands/" + filepath.Base(f),
			Platforms: plat(y.Payload.SupportedOS), Keys: keys(y.PayloadKeys)})
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].RequestType < cmds[j].RequestType })
	schemagen.Write(*out, *commit, "commands", cmds)
}
