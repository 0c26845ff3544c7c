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
		var err error
		it, queued, err = s.acknowledgeItem(ctx, tx, enrollmentID, commandUUID, channelID, verify, now)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return it, queued, nil
}

// acknowledgeItem is AcknowledgeProfileItem's work inside transaction tx
// (its own, or a result's: RecordResultNext with a store.ProfileAck).
func (s *Store) acknowledgeItem(ctx context.Context, tx *Tx, enrollmentID, commandUUID, channelID string, verify *store.CommandRecord,
	now time.Time) (*store.ProfileItem, bool, error) {
	it, err := scanItem(tx.QueryRowContext(ctx, itemForCommandSQL+s.d.ForUpdate,
		enrollmentID, commandUUID))
	if err != nil {
		return nil, false, err
	}
	if it.Acknowledged && it.Error == "" {
		return it, false, nil // a repeated answer: nothing changes
	}
	first := !it.Acknowledged
	it.Acknowledged, it.Error, it.UpdatedAt = true, "", now
	if _, err := tx.ExecContext(ctx, `UPDATE profile_items SET acknowledged = 1, error = '', updated_at = ? WHERE enrollment_id = ? AND profile_id = ?`,
		toMicros(now), it.DeviceID, it.ProfileID); err != nil {
		return nil, false, err
	}
	if err := revokeSuperseded(ctx, tx, it.DeviceID, it.ProfileID, commandUUID, now); err != nil {
		return nil, false, err
	}
	if verify == nil || !first {
		return it, false, nil
	}
	var one int
	switch err := tx.QueryRowContext(ctx, profileListWaiting, channelID).Scan(&one); {
	case err == nil:
		return it, false, nil // that ProfileList comes after this install: it verifies it
	case !errors.Is(err, sql.ErrNoRows):
		return nil, false, err
	}
	if err := s.enqueue(ctx, tx, verify, []string{channelID}); err != nil {
		return nil, false, err
	}
	return it, true, nil
}

// ackInResult applies an Acknowledged answer to one of Pomona's profile
// commands (request type rt as queued: InstallProfile, or ProfileList
// when ack.List is set) inside the result's transaction tx, behind a
// savepoint: when it fails, its writes are rolled back and the result's
// stay (the caller then applies it on its own, as before). It sets
// ack's Done, Queued and Put for this attempt; an error only when the
// savepoint itself fails (the transaction may then be unusable: it fails
// as a whole, nothing is answered, and the device sends its result
// again).
func (s *Store) ackInResult(ctx context.Context, tx *Tx, ref, channelID, uuid, rt string, ack *store.ProfileAck, now time.Time) error {
	ack.Done, ack.Queued, ack.Put = false, false, nil
	if rt != "InstallProfile" && (rt != "ProfileList" || ack.List == nil) {
		return nil
	}
	if _, err := tx.Tx.ExecContext(ctx, "SAVEPOINT profile_ack"); err != nil {
		return err
	}
	var err error
	if rt == "ProfileList" {
		ack.Put, err = s.verifyItems(ctx, tx, ref, ack.List)
	} else {
		var verify *store.CommandRecord
		if ack.Verify != nil {
			verify = ack.Verify()
		}
		_, ack.Queued, err = s.acknowledgeItem(ctx, tx, ref, uuid, channelID, verify, now)
		if errors.Is(err, store.ErrNotFound) {
			err = nil // not Pomona's profile command (or superseded): nothing to do
		}
	}
	if err != nil {
		ack.Queued, ack.Put = false, nil
		if _, rerr := tx.Tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT profile_ack"); rerr != nil {
			return fmt.Errorf("profile answer failed (%v), and rolling it back: %w", err, rerr)
		}
	}
	if _, err := tx.Tx.ExecContext(ctx, "RELEASE SAVEPOINT profile_ack"); err != nil {
		return err
	}
	ack.Done = err == nil
	return nil
}

func (s *Store) VerifyProfileItems(ctx context.Context, enrollmentID string, verify func([]store.ProfileItem) ([]store.ProfileItem, []string)) ([]store.ProfileItem, error) {
	var put []store.ProfileItem
	err := s.tx(ctx, func(tx *Tx) error {
		var err error
		put, err = s.verifyItems(ctx, tx, enrollmentID, verify)
		return err
	})
	if err != nil {
		return nil, err
	}
	return put, nil
}

// verifyItems is VerifyProfileItems' work inside transaction tx (its own,
// or a result's: RecordResultNext with a store.ProfileAck).
func (s *Store) verifyItems(ctx context.Context, tx *Tx, enrollmentID string, verify func([]store.ProfileItem) ([]store.ProfileItem, []string)) ([]store.ProfileItem, error) {
	items, err := collect(ctx, tx, func(sc scanner) (*store.ProfileItem, error) { return scanItem(sc) },
		`SELECT `+itemColumns+` FROM profile_items i WHERE i.enrollment_id = ? ORDER BY i.identifier`+s.d.ForUpdate, enrollmentID)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	put, del := verify(items)
	for i := range put {
		if put[i].DeviceID != enrollmentID {
			return nil, fmt.Errorf("profile item of %s given for %s", put[i].DeviceID, enrollmentID)
		}
		if _, err := tx.ExecContext(ctx, putItemSQL, itemArgs(&put[i])...); err != nil {
			return nil, s.constraint(err)
		}
	}
	for _, p := range del {
		if err := forgetItem(ctx, tx, enrollmentID, p); err != nil {
			return nil, err
		}
	}
	return put, nil
}
