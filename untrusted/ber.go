// Package untrusted is the one place where bytes from outside (devices,
// anyone on the internet, admins' raw input) are decoded: CMS/PKCS#7 and
// SCEP messages, and property lists. Every decoder first checks the input
// against hard limits with a linear-time walk, then hands a normalised,
// bounded input to the well-kept library (smallstep/pkcs7, smallstep/scep,
// micromdm/plist). Callers elsewhere must not call those libraries' parsers
// on request data; a test (layer_test.go) fails the build if they do.
package untrusted

import (
	"errors"
	"fmt"
	"sync"
)

// ErrASN1 wraps every refusal of a BER/DER input.
var ErrASN1 = errors.New("malformed or oversized BER/DER")

// ASN1Limits bounds a BER/DER input (ITU-T X.690). Zero fields take the
// value of DefaultASN1.
type ASN1Limits struct {
	// MaxSize bounds the input in bytes. At most 16 MiB (3 length octets).
	MaxSize int
	// MaxDepth bounds nesting: the outermost element is at depth 1.
	MaxDepth int
	// MaxElements bounds the number of TLV elements in the whole input
	// (end-of-contents markers are not counted).
	MaxElements int
}

// DefaultASN1 fits every CMS message a device sends: the enrollment body of
// an iPhone (4 certificates, BER) is 3.4 KiB, nests 10 deep and has 288
// elements.
var DefaultASN1 = ASN1Limits{MaxSize: 64 << 10, MaxDepth: 32, MaxElements: 4096}

// smallASN1 is the input size up to which walk sizes its node array for
// real rather than worst-case density.
const smallASN1 = 16 << 10

// maxLengthOctets bounds long-form lengths to 3 octets (< 16 MiB).
const maxLengthOctets = 3

func (l ASN1Limits) withDefaults() ASN1Limits {
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultASN1.MaxSize
	}
	if l.MaxSize > 1<<24-1 {
		l.MaxSize = 1<<24 - 1
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultASN1.MaxDepth
	}
	if l.MaxElements <= 0 {
		l.MaxElements = DefaultASN1.MaxElements
	}
	return l
}

// node is one parsed TLV element (24 bytes). Children are linked by
// index. Offsets fit int32: inputs are below 16 MiB.
type node struct {
	tag         byte // the single identifier octet
	constructed bool
	start, end  int32 // primitive contents: in[start:end]
	first, next int32 // first child, next sibling; -1 for none
	derLen      int32 // length of the DER contents, filled by size
}

type walker struct {
	in     []byte
	lim    ASN1Limits
	nodes  []node
	pooled *[]node // where nodes came from (nodePool), to put them back
}

func (w *walker) fail(off int, format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrASN1, off, fmt.Sprintf(format, args...))
}

// element parses the element at pos, which must end at or before end (its
// parent's end), and returns its index and the offset after it.
func (w *walker) element(pos, end, depth int) (int, int, error) {
	if depth > w.lim.MaxDepth {
		return 0, 0, w.fail(pos, "nested deeper than %d levels", w.lim.MaxDepth)
	}
	if len(w.nodes) >= w.lim.MaxElements {
		return 0, 0, w.fail(pos, "more than %d elements", w.lim.MaxElements)
	}
	if end-pos < 2 {
		return 0, 0, w.fail(pos, "truncated element")
	}
	id := w.in[pos]
	switch {
	case id&0x1f == 0x1f:
		// CMS, SCEP and X.509 use no tag numbers above 30.
		return 0, 0, w.fail(pos, "high tag number form is not accepted")
	case id == 0x00:
		return 0, 0, w.fail(pos, "end-of-contents outside an indefinite-length element")
	}
	constructed := id&0x20 != 0
	l := w.in[pos+1]
	hdr := pos + 2
	length, indefinite := 0, false
	switch {
	case l < 0x80:
		length = int(l)
	case l == 0x80:
		if !constructed {
			return 0, 0, w.fail(pos, "indefinite length on a primitive element")
		}
		indefinite = true
	case l == 0xff:
		return 0, 0, w.fail(pos, "reserved length octet 0xff")
	default:
		n := int(l & 0x7f)
		if n > maxLengthOctets {
			return 0, 0, w.fail(pos, "length of %d octets (at most %d)", n, maxLengthOctets)
		}
		if end-hdr < n {
			return 0, 0, w.fail(pos, "truncated length")
		}
		if w.in[hdr] == 0 {
			return 0, 0, w.fail(pos, "length with a leading zero octet")
		}
		for i := 0; i < n; i++ {
			length = length<<8 | int(w.in[hdr+i])
		}
		hdr += n
	}
	idx := len(w.nodes)
	w.nodes = append(w.nodes, node{tag: id, constructed: constructed, first: -1, next: -1})
	if !indefinite {
		if length > end-hdr {
			return 0, 0, w.fail(pos, "length %d runs past its parent (%d bytes left)", length, end-hdr)
		}
		cend := hdr + length
		if !constructed {
			w.nodes[idx].start, w.nodes[idx].end = int32(hdr), int32(cend)
			return idx, cend, nil
		}
		p, prev := hdr, -1
		for p < cend {
			c, next, err := w.element(p, cend, depth+1)
			if err != nil {
				return 0, 0, err
			}
			w.link(idx, prev, c)
			prev, p = c, next
		}
		return idx, cend, nil
	}
	// Indefinite: children up to an end-of-contents (00 00), all inside
	// the parent. An empty one must be written 30 00, not 30 80 00 00.
	p, prev := hdr, -1
	for {
		if end-p >= 2 && w.in[p] == 0 && w.in[p+1] == 0 {
			if prev == -1 {
				return 0, 0, w.fail(pos, "empty indefinite-length element")
			}
			return idx, p + 2, nil
		}
		if p >= end {
			return 0, 0, w.fail(pos, "indefinite-length element without end-of-contents")
		}
		c, next, err := w.element(p, end, depth+1)
		if err != nil {
			return 0, 0, err
		}
		w.link(idx, prev, c)
		prev, p = c, next
	}
}

func (w *walker) link(parent, prev, child int) {
	if prev == -1 {
		w.nodes[parent].first = int32(child)
	} else {
		w.nodes[prev].next = int32(child)
	}
}

// walk checks the whole input: exactly one element, no trailing bytes.
func walk(in []byte, lim ASN1Limits) (*walker, error) {
	lim = lim.withDefaults()
	if len(in) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrASN1)
	}
	if len(in) > lim.MaxSize {
		return nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrASN1, len(in), lim.MaxSize)
	}
	// Every element takes at least 2 bytes, so there are at most len(in)/2
	// nodes (12 bytes of nodes per input byte), allocated at once for large
	// inputs (no regrowth on dense hostile input). Small inputs — every
	// Mdm-Signature (at most 12 KiB) — get room for one node per 8 bytes,
	// grown by append for denser input: real CMS has one element per ~14
	// bytes (a device's signature: 96 in 1,378 bytes), and the worst-case
	// array was the largest allocation of an idle poll (13.8 KB).
	n := len(in) / 2
	if len(in) <= smallASN1 {
		n = len(in)/8 + 1
	}
	w := &walker{in: in, lim: lim}
	if n = min(lim.MaxElements, n); n <= maxPooledNodes {
		// A small input's nodes come from nodePool: an Mdm-Signature
		// on every MDM request, whose 4 KB of nodes were a quarter of an
		// idle poll's garbage.
		if p, ok := nodePool.Get().(*[]node); ok {
			w.nodes, w.pooled = (*p)[:0], p
		}
	}
	if w.nodes == nil {
		w.nodes = make([]node, 0, n)
	}
	_, end, err := w.element(0, len(in), 1)
	if err == nil && end != len(in) {
		err = w.fail(end, "%d trailing bytes after the element", len(in)-end)
	}
	if err != nil {
		w.release()
		return nil, err
	}
	return w, nil
}

// maxPooledNodes bounds the node arrays nodePool keeps (24 KiB each).
const maxPooledNodes = 1024

// nodePool holds node arrays of walks that are done (*[]node).
var nodePool sync.Pool

// release hands w's nodes to nodePool when they are small enough; w is
// not used afterwards.
func (w *walker) release() {
	if c := cap(w.nodes); c > 0 && c <= maxPooledNodes {
		p := w.pooled
		if p == nil {
			p = new([]node)
		}
		*p = w.nodes[:0]
		nodePool.Put(p)
	}
	w.nodes, w.pooled = nil, nil
}

// CheckBER checks that in is one BER (or DER) element within lim, every
// child inside its parent, indefinite lengths only on constructed elements
// and terminated, no trailing bytes. It runs in time linear in len(in).
// Errors wrap ErrASN1.
func CheckBER(in []byte, lim ASN1Limits) error {
	w, err := walk(in, lim)
	if err != nil {
		return err
	}
	w.release()
	return nil
}

// ToDER checks in like CheckBER and returns it with every length in the
// definite, minimal form of DER (X.690 §10.1). Contents, tags and the order
// of elements are kept (constructed strings stay constructed, SET elements
// are not re-sorted) so that signatures over encoded parts still verify,
// exactly as smallstep/pkcs7's own converter does. Time and memory are
// linear in len(in); the recursion is at most MaxDepth deep.
func ToDER(in []byte, lim ASN1Limits) ([]byte, error) {
	w, err := walk(in, lim)
	if err != nil {
		return nil, err
	}
	defer w.release()
	total := w.size(0)
	out := make([]byte, 0, total)
	out = w.encode(0, out)
	if len(out) != total {
		return nil, fmt.Errorf("%w: internal size mismatch", ErrASN1)
	}
	return out, nil
}

// size returns the DER length of element i (header and contents).
func (w *walker) size(i int) int {
	n := &w.nodes[i]
	l := 0
	if !n.constructed {
		l = int(n.end - n.start)
	} else {
		for c := n.first; c != -1; c = w.nodes[c].next {
			l += w.size(int(c))
		}
	}
	n.derLen = int32(l)
	return 1 + lengthOctets(l) + l
}

func (w *walker) encode(i int, out []byte) []byte {
	n := &w.nodes[i]
	out = append(out, n.tag)
	out = appendLength(out, int(n.derLen))
	if !n.constructed {
		return append(out, w.in[n.start:n.end]...)
	}
	for c := n.first; c != -1; c = w.nodes[c].next {
		out = w.encode(int(c), out)
	}
	return out
}

func lengthOctets(l int) int {
	switch {
	case l < 0x80:
		return 1
	case l <= 0xff:
		return 2
	case l <= 0xffff:
		return 3
	case l <= 0xffffff:
		return 4
	}
	return 5
}

func appendLength(out []byte, l int) []byte {
	switch lengthOctets(l) {
	case 1:
		return append(out, byte(l))
	case 2:
		return append(out, 0x81, byte(l))
	case 3:
		return append(out, 0x82, byte(l>>8), byte(l))
	case 4:
		return append(out, 0x83, byte(l>>16), byte(l>>8), byte(l))
	}
	return append(out, 0x84, byte(l>>24), byte(l>>16), byte(l>>8), byte(l))
}
