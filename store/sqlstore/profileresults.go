package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
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

// verifiedItemSQL (SQLite) writes a verified item whose identifier,
// version, hash and command are those it has (verifyItems): only the
// columns a verification changes. Arguments: state, acknowledged,
// attempts, error, next_retry (µs), updated_at (µs), enrollment id,
// profile id.
const verifiedItemSQL = `UPDATE profile_items SET state = ?, acknowledged = ?, attempts = ?, error = ?, next_retry = ?, updated_at = ?
	WHERE enrollment_id = ? AND profile_id = ?`

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
	defer s.auth.queueWritten(channelID) // a verifying ProfileList, after the commit: authCache's empty
	var it *store.ProfileItem
	var queued bool
	err := s.tx(ctx, func(tx *Tx) error {
		var err error
		it, err = s.acknowledgeItem(ctx, tx, enrollmentID, commandUUID, channelID, verify, now, &queued)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return it, queued, nil
}

// acknowledgeItem is AcknowledgeProfileItem's work inside transaction tx
// (its own, or a result's: RecordResultNext with a store.ProfileAck). It
// sets *queued to whether it queued the verifying ProfileList — on a
// piped transaction once that statement has gone out with the next one
// (acknowledgeItemCTE).
func (s *Store) acknowledgeItem(ctx context.Context, tx *Tx, enrollmentID, commandUUID, channelID string, verify *store.CommandRecord,
	now time.Time, queued *bool) (*store.ProfileItem, error) {
	*queued = false
	if s.d.WritableCTE && (verify == nil || verify.Audit == nil) {
		return s.acknowledgeItemCTE(ctx, tx, enrollmentID, commandUUID, channelID, verify, now, queued)
	}
	if tx.pipe != nil {
		// Not on a piped transaction (its reads below are database/sql's);
		// reached before any statement of this work.
		return nil, errNotPiped
	}
	it, q, err := s.acknowledgeItemSQL(ctx, tx, enrollmentID, commandUUID, channelID, verify, now)
	*queued = q
	return it, err
}

// acknowledgeItemSQL is acknowledgeItem in separate statements (SQLite;
// PostgreSQL with an audit entry on the verifying command).
func (s *Store) acknowledgeItemSQL(ctx context.Context, tx *Tx, enrollmentID, commandUUID, channelID string, verify *store.CommandRecord,
	now time.Time) (*store.ProfileItem, bool, error) {
	var it *store.ProfileItem
	first := false
	if !s.d.WritableCTE {
		// SQLite: the first answer (the usual one) in one statement
		// (ackFirstSQL); an item already acknowledged or an unknown
		// command takes the read below.
		var certs bool
		switch got, err := scanItem(tx.QueryRowContext(ctx, ackFirstSQL, toMicros(now), enrollmentID, commandUUID, commandUUID), &certs); {
		case err == nil:
			it, first = got, true
			it.Acknowledged, it.Error, it.UpdatedAt = true, "", now
			if certs {
				if err := revokeSuperseded(ctx, tx, it.DeviceID, it.ProfileID, commandUUID, now); err != nil {
					return nil, false, err
				}
			}
		case !errors.Is(err, store.ErrNotFound):
			return nil, false, err
		}
	}
	if it == nil {
		var err error
		it, err = scanItem(tx.QueryRowContext(ctx, itemForCommandSQL+s.d.ForUpdate,
			enrollmentID, commandUUID))
		if err != nil {
			return nil, false, err
		}
		if it.Acknowledged && it.Error == "" {
			return it, false, nil // a repeated answer: nothing changes
		}
		first = !it.Acknowledged
		it.Acknowledged, it.Error, it.UpdatedAt = true, "", now
		if _, err := tx.ExecContext(ctx, `UPDATE profile_items SET acknowledged = 1, error = '', updated_at = ? WHERE enrollment_id = ? AND profile_id = ?`,
			toMicros(now), it.DeviceID, it.ProfileID); err != nil {
			return nil, false, err
		}
		if err := revokeSuperseded(ctx, tx, it.DeviceID, it.ProfileID, commandUUID, now); err != nil {
			return nil, false, err
		}
	}
	if verify == nil || !first {
		return it, false, nil
	}
	if s.d.WritableCTE {
		// PostgreSQL with an audit entry (acknowledgeItemCTE takes the
		// rest): verifyCommandSQL's untyped SELECT list is SQLite's.
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
	// The verifying ProfileList's command row only when none waits
	// (verifyCommandSQL: the "none waits" read and the insert in one
	// statement), then its queue row.
	res, err := tx.ExecContext(ctx, verifyCommandSQL, verify.UUID, verify.RequestType, verify.Payload, toMicros(verify.CreatedAt),
		toMicros(verify.ExpiresAt), verify.CreatedBy, channelID)
	if err != nil {
		return nil, false, s.constraint(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, false, err
	} else if n == 0 {
		return it, false, nil // a ProfileList waits and comes after this install: it verifies it
	}
	if err := s.enqueueRows(ctx, tx, verify, []string{channelID}); err != nil {
		return nil, false, err
	}
	return it, true, nil
}

// ackFirstSQL (SQLite) is acknowledgeItem's read, acknowledgement and
// "are there certificates to revoke" for the first answer to an
// InstallProfile (the item not yet acknowledged: every wave answer but a
// repeat) as one statement, where they were three (the read, the UPDATE,
// and revokeSuperseded's UPDATE, run even when the profile never issued a
// certificate: an acknowledged install 14 → 10 statements with the
// savepoint gone; "Session 13 — wave5", docs/benchmarks.md). It answers
// the item as written (itemColumns' order; acknowledged 1, error empty) and
// whether profile_certs holds a live certificate of the profile issued to
// the enrollment by another command (revokeSuperseded then runs); no row
// when the item is already acknowledged (a repeat, or one with an error
// since: the read of itemForCommandSQL decides) or no item has the
// command. Arguments: updated_at (µs), enrollment id, command uuid,
// command uuid.
const ackFirstSQL = `UPDATE profile_items SET acknowledged = 1, error = '', updated_at = ?
	WHERE enrollment_id = ? AND command_uuid = ? AND acknowledged = 0
	RETURNING enrollment_id, profile_id, identifier, state, version, hash, command_uuid, acknowledged, attempts, error, next_retry, updated_at,
		EXISTS (SELECT 1 FROM profile_certs pc WHERE pc.enrollment_id = profile_items.enrollment_id AND pc.profile_id = profile_items.profile_id
			AND pc.command_uuid <> ? AND pc.revoked_at = 0)`

// verifyCommandSQL (SQLite) inserts the verifying ProfileList's command
// row unless a ProfileList waits in the channel's queue
// (profileListWaiting): one
// statement where the read and the insert were two (an acknowledged
// install's transaction on SQLite, 15 → 14 statements; "Session 12 —
// wave4", docs/benchmarks.md). One row affected: inserted, the queue row
// follows; none: one waits. Arguments: the command's uuid, request type,
// payload, created_at, expires_at, created_by; the channel id.
var verifyCommandSQL = `INSERT INTO commands (uuid, request_type, payload, created_at, expires_at, created_by)
	SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (` + profileListWaiting + `)`

// ackItemSQL is acknowledgeItem's item work as one statement
// (Dialect.WritableCTE: PostgreSQL): it reads and locks the item of the
// command (FOR UPDATE, as the read alone did), and unless it is already
// acknowledged without an error (a repeated answer: nothing written)
// acknowledges it and revokes the certificates of the profile's earlier
// installs (revokeSuperseded's statement). It answers the item as read,
// before the write (none: no item has the command). Every part sees the
// statement's one snapshot, so the writes decide exactly what the read
// then the Go code decided. Arguments: enrollment id, command uuid,
// updated_at (µs), revoked_at (µs), revoked_by, enrollment id, command
// uuid.
const ackItemSQL = `WITH it AS (SELECT ` + itemColumns + ` FROM profile_items i WHERE i.enrollment_id = ? AND i.command_uuid = ? LIMIT 1 FOR UPDATE),
	upd AS (UPDATE profile_items p SET acknowledged = 1, error = '', updated_at = CAST(? AS BIGINT) FROM it
		WHERE p.enrollment_id = it.enrollment_id AND p.profile_id = it.profile_id AND NOT (it.acknowledged <> 0 AND it.error = '')
		RETURNING p.profile_id),
	rev AS (UPDATE profile_certs pc SET revoked_at = CAST(? AS BIGINT), revoked_by = CAST(? AS TEXT) FROM upd
		WHERE pc.enrollment_id = ? AND pc.profile_id = upd.profile_id AND pc.command_uuid <> ? AND pc.revoked_at = 0)
	SELECT enrollment_id, profile_id, identifier, state, version, hash, command_uuid, acknowledged, attempts, error, next_retry, updated_at FROM it`

// verifyEnqueueSQL is acknowledgeItem's "unless a ProfileList waits,
// queue the verifying one" as one statement (Dialect.WritableCTE): the
// profileListWaiting read, and enqueueOneSQL's command and queue row
// inserted only when it found none. One row affected: queued; none: a
// ProfileList waits. Arguments: channel id, then enqueueOneSQL's (uuid,
// request type, payload, created_at, expires_at, created_by, channel id,
// channel id, status, updated_at). Built once (Store.verifyEnqueueQ).
func (s *Store) verifyEnqueueSQL() string {
	waiting := strings.Replace(profileListWaiting, "SELECT 1 FROM queue q", "SELECT 1 AS one FROM queue q", 1)
	return `WITH w AS (` + waiting + `),
	c AS (INSERT INTO commands (uuid, request_type, payload, created_at, expires_at, created_by)
		SELECT CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BYTEA), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS TEXT)
		WHERE NOT EXISTS (SELECT 1 FROM w) RETURNING uuid)
	INSERT INTO queue (channel_id, command_uuid, seq, status, updated_at)
		SELECT CAST(? AS TEXT), c.uuid, ` + s.d.Greatest + `(` + s.d.SeqClock + `, (SELECT COALESCE(MAX(seq), 0) + 1 FROM queue
			WHERE channel_id = ? AND status IN ` + claimable(true) + `)), CAST(? AS TEXT), CAST(? AS BIGINT) FROM c`
}

// acknowledgeItemCTE is acknowledgeItem on a WritableCTE dialect: the
// same reads and writes in two statements (ackItemSQL, verifyEnqueueSQL)
// instead of six, i.e. four network round trips fewer inside the
// result's transaction on PostgreSQL, where a wave's transactions spent
// most of their time waiting for the server's next statement
// (docs/benchmarks.md, "Session 11 — pgwave"). On a piped transaction
// the second goes out with the transaction's next statement (the take:
// Tx.execLater), which then sets *queued.
func (s *Store) acknowledgeItemCTE(ctx context.Context, tx *Tx, enrollmentID, commandUUID, channelID string, verify *store.CommandRecord,
	now time.Time, queued *bool) (*store.ProfileItem, error) {
	at := toMicros(now)
	var row Row
	if tx.aheadItem != nil {
		// Sent with the result's statement (sendProfileAhead): the same
		// statement, for the same command, already answered.
		row, tx.aheadItem = firstRow{tx.aheadItem}, nil
	} else {
		row = tx.row(ctx, ackItemSQL, enrollmentID, commandUUID, at, at, ProfileSupersededBy, enrollmentID, commandUUID)
	}
	it, err := scanItem(row)
	if err != nil {
		return nil, err
	}
	if it.Acknowledged && it.Error == "" {
		return it, nil // a repeated answer: nothing changed
	}
	first := !it.Acknowledged
	it.Acknowledged, it.Error, it.UpdatedAt = true, "", now
	if verify == nil || !first {
		return it, nil
	}
	err = tx.execLater(ctx, func(n int64) { *queued = n == 1 }, s.verifyEnqueueQ, channelID, verify.UUID, verify.RequestType, verify.Payload,
		toMicros(verify.CreatedAt), toMicros(verify.ExpiresAt), verify.CreatedBy, channelID, channelID, store.QueueQueued, toMicros(verify.CreatedAt))
	if err != nil {
		return nil, s.constraint(err)
	}
	return it, nil
}

// ackInResult applies an Acknowledged answer to one of Pomona's profile
// commands (request type rt as queued: InstallProfile, or ProfileList
// when ack.List is set) inside the result's transaction tx. There is no
// savepoint on either backend: the work fails almost never, and its
// SAVEPOINT and RELEASE were two statements on every profile answer (on
// PostgreSQL one more network round trip each; on SQLite 2 of an
// install answer's 14 statements, Session 13). A failure is an
// *ackFailedError: RecordResultNext rolls the whole transaction back
// (on SQLite the group committer rolls back to the transaction's own
// savepoint, or the batch without it) and records the result again
// without the profile work, which is what rolling back to a savepoint
// kept. It sets ack's Done, Queued and Put for this attempt.
func (s *Store) ackInResult(ctx context.Context, tx *Tx, ref, channelID, uuid, rt string, ack *store.ProfileAck, now time.Time) error {
	ack.Done, ack.Queued, ack.Put = false, false, nil
	if rt != "InstallProfile" && (rt != "ProfileList" || ack.List == nil) {
		return nil
	}
	var err error
	if rt == "ProfileList" {
		ack.Put, err = s.verifyItems(ctx, tx, ref, ack.List)
	} else {
		var verify *store.CommandRecord
		if ack.Verify != nil {
			verify = ack.Verify()
		}
		_, err = s.acknowledgeItem(ctx, tx, ref, uuid, channelID, verify, now, &ack.Queued)
		if errors.Is(err, store.ErrNotFound) {
			err = nil // not Pomona's profile command (or superseded): nothing to do
		}
	}
	if errors.Is(err, errNotPiped) {
		return err // nothing sent: the whole answer again on a database/sql transaction
	}
	if err != nil {
		ack.Queued, ack.Put = false, nil
		// On PostgreSQL a failed statement has aborted the transaction:
		// nothing more can run in it. On SQLite the profile work's
		// earlier writes must not commit. Either way the caller redoes
		// the result alone in a new transaction.
		return &ackFailedError{err: err}
	}
	ack.Done = true
	return nil
}

// sendProfileAhead queues, on piped transaction tx (PipeTx.Ahead), the
// first statement of the profile work an Acknowledged answer with ack
// will run (ackInResult) to go out with the result's statement, after
// it: the work's round trip of its own gone ("Session 15 — pgwave7",
// docs/benchmarks.md). Which work is not known before the result's
// statement reads the command's request type, so the statement is
// guessed from ack — a ProfileList's items read when ack.List is set
// (the server sets it only for a result with a ProfileList's array),
// else an install's acknowledgement — and made to do nothing unless the
// command is of that type (aheadItemsSQL, aheadAckItemSQL): a wrong
// guess costs a statement in the same round trip, and the work then runs
// its own statement as before. It runs in the result's transaction, so a
// result refused (unknown command, a contradicting repeat) rolls it back
// with everything else. Arguments as acknowledgeItemCTE and verifyItems
// pass them.
func sendProfileAhead(tx *Tx, ref, uuid string, ack *store.ProfileAck, now time.Time) {
	switch {
	case ack.List != nil:
		tx.aheadItems = tx.pipe.Ahead(tx.d.rebind(aheadItemsSQL), ref, uuid)
	case ack.Verify != nil:
		at := toMicros(now)
		tx.aheadItem = tx.pipe.Ahead(tx.d.rebind(aheadAckItemSQL), ref, uuid, at, at, ProfileSupersededBy, ref, uuid)
	}
}

// aheadAckItemSQL is ackItemSQL that finds no item (so writes nothing)
// unless the command is an InstallProfile (ackInResult acknowledges only
// those). Same arguments.
var aheadAckItemSQL = func() string {
	const from = `WHERE i.enrollment_id = ? AND i.command_uuid = ? LIMIT 1`
	if !strings.Contains(ackItemSQL, from) {
		panic("sqlstore: ackItemSQL changed: aheadAckItemSQL cannot be built")
	}
	return strings.Replace(ackItemSQL, from, `WHERE i.enrollment_id = ? AND i.command_uuid = ?
		AND EXISTS (SELECT 1 FROM commands c WHERE c.uuid = i.command_uuid AND c.request_type = 'InstallProfile') LIMIT 1`, 1)
}()

// aheadItemsSQL is verifyItems' read (PostgreSQL), of no row unless
// command uuid is a ProfileList. Arguments: enrollment id, command uuid.
const aheadItemsSQL = `SELECT ` + itemColumns + ` FROM profile_items i WHERE i.enrollment_id = ?
	AND EXISTS (SELECT 1 FROM commands c WHERE c.uuid = ? AND c.request_type = 'ProfileList') ORDER BY i.identifier FOR UPDATE`

// firstRow is a Rows' first row as a Row (sql.ErrNoRows: none).
type firstRow struct{ rows Rows }

func (r firstRow) Scan(dest ...any) error {
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	return r.rows.Scan(dest...)
}

// ackFailedError is ackInResult's failed profile work: the result's
// transaction is rolled back and RecordResultNext records the result
// again without it. It does not
// unwrap, so a serialization failure inside the profile work is not
// retried with the profile work (as with the savepoint, the result
// stands without it; ack.Done stays false and the caller applies the
// answer on its own).
type ackFailedError struct{ err error }

func (e *ackFailedError) Error() string { return "profile answer failed: " + e.err.Error() }

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
	scan := func(sc scanner) (*store.ProfileItem, error) { return scanItem(sc) }
	var items []store.ProfileItem
	var err error
	if tx.aheadItems != nil {
		// Read with the result's statement (sendProfileAhead).
		items, err = scanRows(tx.aheadItems, scan)
		tx.aheadItems = nil
	} else {
		items, err = collectTx(ctx, tx, scan, `SELECT `+itemColumns+` FROM profile_items i WHERE i.enrollment_id = ? ORDER BY i.identifier`+s.d.ForUpdate, enrollmentID)
	}
	if err != nil || len(items) == 0 {
		return nil, err
	}
	// What was read, by profile: put's items are those rows changed.
	read := make(map[string]store.ProfileItem, len(items))
	for _, it := range items {
		read[it.ProfileID] = it
	}
	put, del := verify(items)
	for i := range put {
		p := &put[i]
		if p.DeviceID != enrollmentID {
			return nil, fmt.Errorf("profile item of %s given for %s", p.DeviceID, enrollmentID)
		}
		if was, ok := read[p.ProfileID]; ok && !s.d.WritableCTE && was.Identifier == p.Identifier && was.Version == p.Version &&
			was.Hash == p.Hash && was.CommandUUID == p.CommandUUID {
			// SQLite: the row exists (read above in this transaction, on
			// the one writer) and its identity columns stay; setting
			// them anyway (putItemSQL's upsert) rewrote the entry of the
			// command_uuid index with the same key, one more page in the
			// WAL per verified item (7 → 6 pages for a wave's ProfileList
			// answer; Session 13 — wave5).
			if _, err := tx.ExecContext(ctx, verifiedItemSQL, p.State, boolInt(p.Acknowledged), p.Attempts, p.Error, toMicros(p.NextRetry),
				toMicros(p.UpdatedAt), p.DeviceID, p.ProfileID); err != nil {
				return nil, s.constraint(err)
			}
			continue
		}
		// On a piped transaction the put goes out with the next
		// statement (Tx.execLater): nothing here reads its answer.
		if err := tx.execLater(ctx, nil, putItemSQL, itemArgs(p)...); err != nil {
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
