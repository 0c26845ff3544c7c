package app

import (
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/profile"
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
	id := profile.NewUUID()
	payload, err := mdm.Command{CommandUUID: id, Command: cmd}.Encode()
	if err != nil {
		return nil, err
	}
	return &store.CommandRecord{UUID: id, RequestType: rt, Payload: payload, CreatedAt: c.Now().UTC().Truncate(time.Microsecond), CreatedBy: createdBy}, nil
}
