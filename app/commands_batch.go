package app

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
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
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}
