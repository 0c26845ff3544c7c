// Package schemagen holds what the generators under mdm/ (mdm/catalog/gen,
// mdm/payloads/gen) share when they turn Apple's device-management schema
// (github.com/apple/device-management, MIT: one YAML file a command or
// payload) into the JSON files Pomona embeds: listing the YAML files,
// decoding one, and writing the document. They are commands run by hand
// (go generate), so every failure prints to stderr and exits 1.
package schemagen

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"gopkg.in/yaml.v3"
)

// YAMLFiles returns the *.yaml files in dir, sorted by name; it exits when
// there are none (a wrong -src).
func YAMLFiles(dir string) []string {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		fmt.Fprintf(os.Stderr, "gen: no YAML files in %q\n", dir)
		os.Exit(1)
	}
	sort.Strings(files)
	return files
}

// Decode reads the YAML file f into v; it exits on a read or parse error.
func Decode(f string, v any) {
	b, err := os.ReadFile(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		fmt.Fprintf(os.Stderr, "gen: %s: %v\n", f, err)
		os.Exit(1)
	}
}

// Write writes to out the JSON document {"source": {the Apple repository,
// commit, license}, name: v}, indented one space a level and ending in a
// newline; it exits on error.
func Write(out, commit, name string, v any) {
	doc := map[string]any{
		"source": map[string]string{"repository": "apple/device-management", "commit": commit, "license": "MIT"},
		name:     v,
	}
	b, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
