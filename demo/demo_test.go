package demo

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDataDir(t *testing.T) {
	for in, want := range map[string]string{"./pomona-data": "pomona-data-demo", "/var/lib/p/": "/var/lib/p-demo", "x-demo": "x-demo"} {
		if got := DataDir(in); got != want {
			t.Errorf("DataDir(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckDataDirKeepsDemoAndRealApart(t *testing.T) {
	empty := t.TempDir()
	if err := CheckDataDir(empty, false); err != nil {
		t.Fatalf("normal start in an empty directory: %v", err)
	}
	demoDir := t.TempDir()
	if err := CheckDataDir(demoDir, true); err != nil {
		t.Fatalf("demo start in an empty directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(demoDir, marker)); err != nil {
		t.Fatal("the demo did not mark its directory")
	}
	if err := CheckDataDir(demoDir, true); err != nil {
		t.Fatalf("demo start again: %v", err)
	}
	if err := CheckDataDir(demoDir, false); err == nil {
		t.Error("a normal start accepted the demo's directory")
	}
	real := t.TempDir()
	if err := os.WriteFile(filepath.Join(real, "secret.key"), []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckDataDir(real, true); err == nil {
		t.Error("the demo accepted a deployment's directory")
	}
}
