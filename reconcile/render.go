package reconcile

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pomona-mdm/pomona/mdm/mobileconfig"
)

// Renderer renders stored profiles for many devices with the output of
// mobileconfig.Render, byte for byte, at a fraction of its cost: each
// distinct stored plist is parsed and marshalled once, with a unique
// marker in place of every variable, and a device's rendering is that
// output with the markers replaced by the device's values, escaped as the
// plist encoder escapes character data (encoding/xml). A device that
// lacks a value, or whose value is not valid UTF-8, goes through
// mobileconfig.Render itself (its error, or its exact handling).
//
// A Renderer is for one reconciler batch: it keeps every distinct plist
// it saw (a batch has a handful), so drop it with the batch. Not safe for
// concurrent use.
type Renderer struct {
	ts map[string]*template
}

// NewRenderer returns an empty Renderer.
func NewRenderer() *Renderer { return &Renderer{ts: map[string]*template{}} }

// template is a stored plist rendered once with markers.
type template struct {
	err   error      // the plist does not render at all (every device fails alike)
	slow  bool       // cannot be templated: mobileconfig.Render per device (names still set)
	key   string     // hex SHA-256 of the stored plist
	parts []tmplPart // literal bytes and variables, in order
	names []string   // the variables used
	plain bool       // no variable: out is every device's rendering
	out   []byte
	hash  string
}

type tmplPart struct {
	lit []byte
	v   int // index in names, or -1
}

// markerRE finds the markers of a template's output.
var markerRE = regexp.MustCompile(`PomonaVar[0-9a-f]{32}x([0-9]+)Z`)

func compile(stored []byte) *template {
	sum := sha256.Sum256(stored)
	key := hex.EncodeToString(sum[:])
	// The variables it uses: Render with no values names them all.
	out, hash, err := mobileconfig.Render(stored, nil)
	if err == nil {
		return &template{plain: true, out: out, hash: hash, key: key}
	}
	var me *mobileconfig.MissingValueError
	if !errors.As(err, &me) {
		return &template{err: err, key: key}
	}
	sort.Strings(me.Names)
	slow := &template{slow: true, names: me.Names, key: key}
	var nonce [16]byte
	rand.Read(nonce[:])
	tag := "PomonaVar" + hex.EncodeToString(nonce[:]) + "x"
	values := make(map[string]string, len(me.Names))
	for i, n := range me.Names {
		values[n] = tag + strconv.Itoa(i) + "Z"
	}
	marked, _, err := mobileconfig.Render(stored, values)
	if err != nil || bytes.Count(marked, []byte(tag)) != len(markerRE.FindAllIndex(marked, -1)) {
		return slow // cannot template it: Render per device
	}
	t := &template{names: me.Names, key: key}
	last := 0
	for _, m := range markerRE.FindAllSubmatchIndex(marked, -1) {
		if !bytes.HasPrefix(marked[m[0]:], []byte(tag)) {
			return slow
		}
		i, _ := strconv.Atoi(string(marked[m[2]:m[3]]))
		t.parts = append(t.parts, tmplPart{lit: marked[last:m[0]], v: -1}, tmplPart{v: i})
		last = m[1]
	}
	t.parts = append(t.parts, tmplPart{lit: marked[last:], v: -1})
	return t
}

// Render is mobileconfig.Render(stored, values), from the template.
func (r *Renderer) Render(stored []byte, values map[string]string) ([]byte, string, error) {
	if r == nil {
		return mobileconfig.Render(stored, values)
	}
	return r.template(stored).render(stored, values)
}

// template returns stored's compiled template (compiled once per Renderer).
func (r *Renderer) template(stored []byte) *template {
	t, ok := r.ts[string(stored)]
	if !ok {
		t = compile(stored)
		r.ts[string(stored)] = t
	}
	return t
}

// Vars returns the names of the per-user variables stored uses, sorted
// (none: nil — a plain profile, or one that does not render at all), and
// the hex SHA-256 of stored (the key of a shared template command).
func (r *Renderer) Vars(stored []byte) (names []string, key string) {
	t := r.template(stored)
	if t.err != nil || t.plain {
		return nil, t.key
	}
	return t.names, t.key
}

// render is mobileconfig.Render(stored, values) from t, compiled from stored.
func (t *template) render(stored []byte, values map[string]string) ([]byte, string, error) {
	switch {
	case t.slow:
		return mobileconfig.Render(stored, values)
	case t.err != nil:
		return nil, "", t.err
	case t.plain:
		return t.out, t.hash, nil
	}
	esc := make([][]byte, len(t.names))
	for i, n := range t.names {
		v := values[n]
		if v == "" || !utf8.ValidString(v) {
			return mobileconfig.Render(stored, values)
		}
		var b bytes.Buffer
		e := xml.NewEncoder(&b)
		if err := e.EncodeToken(xml.CharData(v)); err != nil {
			return mobileconfig.Render(stored, values)
		}
		e.Flush()
		esc[i] = b.Bytes()
	}
	n := 0
	for _, p := range t.parts {
		if p.v < 0 {
			n += len(p.lit)
		} else {
			n += len(esc[p.v])
		}
	}
	out := make([]byte, 0, n)
	for _, p := range t.parts {
		if p.v < 0 {
			out = append(out, p.lit...)
		} else {
			out = append(out, esc[p.v]...)
		}
	}
	return out, mobileconfig.Hash(out), nil
}

// Plan is Plan with r's rendering (identical results).
func (r *Renderer) Plan(dev Device, profiles []Profile, items []Item, now time.Time) ([]Action, time.Time) {
	return plan(r.Render, dev, profiles, items, now)
}

// EncodeVars is the queue row's Vars of a template command: the device's
// values of exactly the variables names (those the template uses, as
// Vars gives them), as a JSON object (names sorted; e.g.
// {"EMAIL":"alice@example.com"}, some 30 bytes). A name without a value
// is left out (delivery then fails as planning would have). ok is false
// when a value is not valid UTF-8: JSON would carry U+FFFD in its place,
// and the delivered bytes would not be the ones hashed at planning (the
// caller renders such a device's profile at planning instead).
func EncodeVars(names []string, values map[string]string) (vars string, ok bool) {
	m := make(map[string]string, len(names))
	for _, n := range names {
		if v, ok := values[n]; ok {
			if !utf8.ValidString(v) {
				return "", false
			}
			m[n] = v
		}
	}
	b, err := json.Marshal(m)
	return string(b), err == nil
}

// DecodeVars reads EncodeVars' output. Errors: not a JSON object of
// strings.
func DecodeVars(s string) (map[string]string, error) {
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("template variables: %w", err)
	}
	return m, nil
}

// DefaultCacheSize bounds a TemplateCache: distinct templated profile
// versions being delivered at once (a few KB each compiled).
const DefaultCacheSize = 256

// TemplateCache is Renderer for delivery: safe for concurrent use,
// process-wide, keyed by the template's SHA-256, bounded (when full it
// starts over: a template is compiled again on its next use, which
// costs one mobileconfig.Render of it).
type TemplateCache struct {
	Max int // 0: DefaultCacheSize

	mu sync.Mutex
	ts map[[32]byte]*template
}

// Render is mobileconfig.Render(stored, values): the bytes the planning
// Renderer gave for the same stored plist and values, byte for byte.
func (c *TemplateCache) Render(stored []byte, values map[string]string) ([]byte, string, error) {
	key := sha256.Sum256(stored)
	c.mu.Lock()
	t, ok := c.ts[key]
	c.mu.Unlock()
	if !ok {
		t = compile(stored) // outside the lock: a few hundred µs
		c.mu.Lock()
		max := c.Max
		if max <= 0 {
			max = DefaultCacheSize
		}
		if c.ts == nil || len(c.ts) >= max {
			c.ts = make(map[[32]byte]*template)
		}
		c.ts[key] = t
		c.mu.Unlock()
	}
	return t.render(stored, values)
}
