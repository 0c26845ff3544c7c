package app

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/store"
)

// Record validates a command dictionary Pomona built itself (the profile
// reconciler's InstallProfile, RemoveProfile, ProfileList) against
// Apple's rules for user enrollments on the enrollment's platform, as
// Enqueue does, and returns it as a command record with a new CommandUUID
// — not stored: the caller writes it with the rest of its batch in one
// transaction (store.ProfileStore.ApplyReconcile) and pushes afterwards.
// The same record may be queued for many channels of that platform (one
// row in commands, one queue row per channel, as EnqueueBulk). Errors:
// Unprocessable command_refused (a *catalog.Refusal inside).
func (c *Commands) Record(platform string, cmd map[string]any, createdBy string) (*store.CommandRecord, error) {
	p := catalog.IOS
	if platform == catalog.MacOS {
		p = catalog.MacOS
	}
	if err := c.Catalog.Check(p, cmd); err != nil {
		return nil, refused(err)
	}
	rt, _ := cmd["RequestType"].(string)
	now := c.Now().UTC().Truncate(time.Microsecond)
	id := timeOrderedUUID(now)
	payload, err := mdm.Command{CommandUUID: id, Command: cmd}.Encode()
	if err != nil {
		return nil, err
	}
	return &store.CommandRecord{UUID: id, RequestType: rt, Payload: payload, CreatedAt: now, CreatedBy: createdBy}, nil
}

// Recorder is Record for a command Pomona sends again and again (the
// ProfileList that verifies every acknowledged install): cmd is checked
// against Apple's rules and encoded once, and each call of the returned
// function makes a record of it with a new CommandUUID and the clock's
// time — the bytes Record would make (the UUID spliced into the one
// encoding: it is the only per-record part, and a UUID string needs no
// escaping). Record cost a catalogue check and a plist encoding per
// record: ~67 allocations and tens of µs per acknowledged install
// (docs/benchmarks.md, "Session 12 — wave4"). Errors: Record's. Safe for
// concurrent use.
func (c *Commands) Recorder(platform string, cmd map[string]any, createdBy string) (func() (*store.CommandRecord, error), error) {
	first, err := c.Record(platform, cmd, createdBy)
	if err != nil {
		return nil, err
	}
	id := []byte(first.UUID)
	i := bytes.Index(first.Payload, id)
	if i < 0 || bytes.Contains(first.Payload[i+len(id):], id) {
		// Not once in the encoding (never seen): encode every record.
		return func() (*store.CommandRecord, error) { return c.Record(platform, cmd, createdBy) }, nil
	}
	head, tail := first.Payload[:i:i], first.Payload[i+len(id):]
	return func() (*store.CommandRecord, error) {
		now := c.Now().UTC().Truncate(time.Microsecond)
		uuid := timeOrderedUUID(now)
		payload := make([]byte, 0, len(head)+len(uuid)+len(tail))
		payload = append(append(append(payload, head...), uuid...), tail...)
		return &store.CommandRecord{UUID: uuid, RequestType: first.RequestType, Payload: payload, CreatedAt: now, CreatedBy: createdBy}, nil
	}, nil
}

// timeOrderedUUID is a version 7 UUID (RFC 9562 §5.7: 48 bits of Unix
// milliseconds, then 74 random bits), upper-case like profile.NewUUID.
// The reconciler writes one command per device, 1,000 per transaction:
// with random (version 4) UUIDs each went to a random page of the
// commands' and profile_items' command_uuid indexes, with these they all
// go to the indexes' last pages. The random part keeps them unguessable
// as before; Apple treats a CommandUUID as an opaque string.
func timeOrderedUUID(now time.Time) string {
	var b [16]byte
	if _, err := rand.Read(b[6:]); err != nil {
		panic(err)
	}
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(now.UnixMilli()))
	copy(b[:6], ms[2:])
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	// Written out by hand, upper-case, 8-4-4-4-12: one allocation (the
	// string), where Sprintf and ToUpper made seven — per command of a
	// reconciler batch and per verifying ProfileList.
	const digits = "0123456789ABCDEF"
	var out [36]byte
	o := 0
	for i, x := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[o] = '-'
			o++
		}
		out[o], out[o+1] = digits[x>>4], digits[x&0x0f]
		o += 2
	}
	return string(out[:])
}
