package reconcile

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"regexp"
	"strconv"
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
	// The variables it uses: Render with no values names them all.
	out, hash, err := mobileconfig.Render(stored, nil)
	if err == nil {
		return &template{plain: true, out: out, hash: hash}
	}
	var me *mobileconfig.MissingValueError
	if !errors.As(err, &me) {
		return &template{err: err}
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	tag := "PomonaVar" + hex.EncodeToString(nonce[:]) + "x"
	values := make(map[string]string, len(me.Names))
	for i, n := range me.Names {
		values[n] = tag + strconv.Itoa(i) + "Z"
	}
	marked, _, err := mobileconfig.Render(stored, values)
	if err != nil || bytes.Count(marked, []byte(tag)) != len(markerRE.FindAllIndex(marked, -1)) {
		return nil // cannot template it: Render per device
	}
	t := &template{names: me.Names}
	last := 0
	for _, m := range markerRE.FindAllSubmatchIndex(marked, -1) {
		if !bytes.HasPrefix(marked[m[0]:], []byte(tag)) {
			return nil
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
	t, ok := r.ts[string(stored)]
	if !ok {
		t = compile(stored)
		r.ts[string(stored)] = t
	}
	switch {
	case t == nil:
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
