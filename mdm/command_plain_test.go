package mdm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/micromdm/plist"
)

// encodeCases are commands of every shape the catalogue builds and a few
// it does not (which Encode leaves to micromdm/plist).
var encodeCases = []struct {
	name  string
	cmd   map[string]any
	plain bool
}{
	{"device information", map[string]any{"RequestType": "DeviceInformation", "Queries": []any{"OSVersion", "ModelName"}}, true},
	{"string queries", map[string]any{"RequestType": "DeviceInformation", "Queries": []string{"OSVersion"}}, true},
	{"install profile", map[string]any{"RequestType": "InstallProfile", "Payload": []byte("<?xml version=\"1.0\"?>\n<plist>…</plist>")}, true},
	{"bools and integers", map[string]any{"RequestType": "Settings", "Settings": []any{map[string]any{"Item": "Bluetooth", "Enabled": true, "N": 3, "M": int64(-9), "O": int32(7)}, map[string]any{"Off": false}}}, true},
	{"empty containers", map[string]any{"RequestType": "X", "A": []any{}, "S": []string{}, "D": map[string]any{}, "E": ""}, true},
	{"nested arrays", map[string]any{"RequestType": "X", "A": []any{[]any{"a", []any{}}, map[string]any{"k": []any{1, 2}}}}, true},
	{"nil slices", map[string]any{"RequestType": "X", "A": []any(nil), "S": []string(nil), "B": []byte(nil)}, true},
	{"bool in an array", map[string]any{"RequestType": "X", "A": []any{true, "x"}}, false},
	{"escaped text", map[string]any{"RequestType": "X", "S": `a&b <c> "d" 'e'`}, false},
	{"newline", map[string]any{"RequestType": "X", "S": "a\nb"}, false},
	{"tab", map[string]any{"RequestType": "X", "S": "a\tb"}, false},
	{"non-ASCII", map[string]any{"RequestType": "X", "S": "Zoë"}, false},
	{"escaped key", map[string]any{"RequestType": "X", "a&b": "c"}, false},
	{"float", map[string]any{"RequestType": "X", "F": 1.5}, false},
	{"uint", map[string]any{"RequestType": "X", "U": uint64(1 << 63)}, false},
	{"nil map", nil, false},
	{"many keys", func() map[string]any {
		m := map[string]any{}
		for i := range 40 {
			m[fmt.Sprintf("K%02d", 39-i)] = i
		}
		return m
	}(), true},
}

// Encode writes exactly what micromdm/plist writes, directly for the
// catalogue's values and through micromdm/plist otherwise.
func TestEncodePlainIsMarshalIndent(t *testing.T) {
	for _, c := range encodeCases {
		t.Run(c.name, func(t *testing.T) {
			cmd := Command{CommandUUID: "6E1F2C3A-0B7D-4C1E-9E55-1A2B3C4D5E6F", Command: c.cmd}
			_, plain := cmd.encodePlain()
			if plain != c.plain {
				t.Fatalf("written directly: %v, want %v", plain, c.plain)
			}
			sameAsMarshalIndent(t, cmd)
		})
	}
	sameAsMarshalIndent(t, Command{CommandUUID: "a<b", Command: map[string]any{"RequestType": "X"}})
}

func sameAsMarshalIndent(t *testing.T, cmd Command) {
	t.Helper()
	got, err := cmd.Encode()
	want, werr := plist.MarshalIndent(cmd, "\t")
	if (err == nil) != (werr == nil) || !bytes.Equal(got, want) {
		t.Fatalf("Encode = %v\n%s\nmicromdm/plist = %v\n%s", err, got, werr, want)
	}
}

// Random commands of the catalogue's values (and a few others): Encode
// and micromdm/plist agree byte for byte.
func TestEncodePlainRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 5))
	texts := []string{"", "x", "OSVersion", "a b", "1.0", "a&b", "é", "a\nb", "/path/to", "x=y;z"}
	var value func(depth int, inArray bool) any
	value = func(depth int, inArray bool) any {
		n := 9
		if depth > 4 {
			n = 6 // leaves only
		}
		switch r.IntN(n) {
		case 0, 1:
			return texts[r.IntN(len(texts))]
		case 2:
			if inArray && r.IntN(4) != 0 {
				return "b"
			}
			return r.IntN(2) == 0
		case 3:
			return r.Int64() - r.Int64()
		case 4:
			return []byte(texts[r.IntN(len(texts))])
		case 5:
			return r.IntN(100)
		case 6:
			a := []any{}
			for range r.IntN(4) {
				a = append(a, value(depth+1, true))
			}
			return a
		case 7:
			return []string{"a", "b"}[:r.IntN(3)]
		default:
			m := map[string]any{}
			for range r.IntN(5) {
				m[texts[r.IntN(len(texts))]+"k"] = value(depth+1, false)
			}
			return m
		}
	}
	plain := 0
	for range 3000 {
		m := map[string]any{"RequestType": "X"}
		for range r.IntN(5) {
			m[texts[r.IntN(len(texts))]] = value(1, false)
		}
		cmd := Command{CommandUUID: "6E1F2C3A", Command: m}
		if _, ok := cmd.encodePlain(); ok {
			plain++
		}
		sameAsMarshalIndent(t, cmd)
	}
	if plain < 300 {
		t.Fatalf("only %d of 3000 written directly", plain)
	}
}

// A DeviceInformation command costs its buffer and the sorted keys: 55
// allocations through micromdm/plist.
func TestEncodeAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	c := Command{CommandUUID: "6E1F2C3A-0B7D-4C1E-9E55-1A2B3C4D5E6F", Command: map[string]any{"RequestType": "DeviceInformation", "Queries": []any{"OSVersion", "ModelName"}}}
	if n := testing.AllocsPerRun(100, func() { _, _ = c.Encode() }); n > 2 {
		t.Fatalf("%v allocations per DeviceInformation command, want at most 2", n)
	}
}
