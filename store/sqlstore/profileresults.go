package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// Devices' answers to Pomona's profile commands (store.ProfileResultStore):
// one transaction per answer.

// putItemSQL inserts or replaces a profile item; arguments: itemArgs.
const putItemSQL = `INSERT INTO profile_items (enrollment_id, profile_id, identifier, state, version, hash, command_uuid, acknowledged, attempts, error, next_retry, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (enrollment_id, profile_id) DO UPDATE SET identifier = excluded.identifier, state = excluded.state, version = excluded.version,
		hash = excluded.hash, command_uuid = excluded.command_uuid, acknowledged = excluded.acknowledged, attempts = excluded.attempts,
		error = excluded.error, next_retry = excluded.next_retry, updated_at = excluded.updated_at`

func itemArgs(it *store.ProfileItem) []any {
	return []any{it.DeviceID, it.ProfileID, it.Identifier, it.State, it.Version, it.Hash, it.CommandUUID, boolInt(it.Acknowledged), it.Attempts, it.Error,
		toMicros(it.NextRetry), toMicros(it.UpdatedAt)}
}

// profileListWaiting reads whether a ProfileList waits in a channel's
// queue (not yet answered). Argument: channel id. The channel's queue is
// a short index range (queue_next).
const profileListWaiting = `SELECT 1 FROM queue q JOIN commands c ON c.uuid = q.command_uuid
	WHERE q.channel_id = ? AND q.status IN ('queued', 'sent', 'NotNow') AND c.request_type = 'ProfileList' LIMIT 1`

func (s *Store) AcknowledgeProfileItem(ctx context.Context, enrollmentID, commandUUID, channelID string, verify *store.CommandRecord,
	now time.Time) (*store.ProfileItem, bool, error) {
	if commandUUID == "" {
		return nil, false, fmt.Errorf("profile item %w", store.ErrNotFound)
	}
	var it *store.ProfileItem
	var queued bool
	err := s.tx(ctx, func(tx *Tx) error {
		it, queued = nil, false
		var err error
		it, err = scanItem(tx.QueryRowContext(ctx, `SELECT `+itemColumns+` FROM profile_items i WHERE i.enrollment_id = ? AND i.command_uuid = ?`,
			enrollmentID, commandUUID))
		if err != nil {
			return err
		}
		if it.Acknowledged && it.Error == "" {
			return nil // a repeated answer: nothing changes
		}
		first := !it.Acknowledged
		it.Acknowledged, it.Error, it.UpdatedAt = true, "", now
		if _, err := tx.ExecContext(ctx, `UPDATE profile_items SET acknowledged = 1, error = '', updated_at = ? WHERE enrollment_id = ? AND profile_id = ?`,
			toMicros(now), it.DeviceID, it.ProfileID); err != nil {
			return err
		}
		if err := revokeSuperseded(ctx, tx, it.DeviceID, it.ProfileID, commandUUID, now); err != nil {
			return err
		}
		if verify == nil || !first {
			return nil
		}
		var one int
		switch err := tx.QueryRowContext(ctx, profileListWaiting, channelID).Scan(&one); {
		case err == nil:
			return nil // that ProfileList comes after this install: it verifies it
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if err := s.enqueue(ctx, tx, verify, []string{channelID}); err != nil {
			return err
		}
		queued = true
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return it, queued, nil
}

func (s *Store) VerifyProfileItems(ctx context.Context, enrollmentID string, verify func([]store.ProfileItem) ([]store.ProfileItem, []string)) ([]store.ProfileItem, error) {
	var put []store.ProfileItem
	err := s.tx(ctx, func(tx *Tx) error {
		items, err := collect(ctx, tx, func(sc scanner) (*store.ProfileItem, error) { return scanItem(sc) },
			`SELECT `+itemColumns+` FROM profile_items i WHERE i.enrollment_id = ? ORDER BY i.identifier`, enrollmentID)
		if err != nil || len(items) == 0 {
			put = nil
			return err
		}
		var del []string
		put, del = verify(items)
		for i := range put {
			if put[i].DeviceID != enrollmentID {
				return fmt.Errorf("profile item of %s given for %s", put[i].DeviceID, enrollmentID)
			}
			if _, err := tx.ExecContext(ctx, putItemSQL, itemArgs(&put[i])...); err != nil {
				return s.constraint(err)
			}
		}
		for _, p := range del {
			if err := forgetItem(ctx, tx, enrollmentID, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return put, nil
}
