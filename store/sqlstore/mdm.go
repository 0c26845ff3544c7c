package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
)

func (s *Store) BindAppleEnrollment(ctx context.Context, ref, appleID string, info store.DeviceInfo, now time.Time) error {
	defer s.auth.changed() // after the commit: authCache
	return s.tx(ctx, func(tx *Tx) error {
		var cur sql.NullString
		var status string
		err := tx.QueryRowContext(ctx, `SELECT apple_enrollment_id, status FROM enrollments WHERE id = ?`, ref).Scan(&cur, &status)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("enrollment %w", store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if status == store.EnrollmentUnenrolled {
			// Terminal: coming back takes a new enrollment.
			return fmt.Errorf("%w: the enrollment has ended", store.ErrConflict)
		}
		if cur.Valid && cur.String != appleID {
			return fmt.Errorf("%w: this identity belongs to another EnrollmentID", store.ErrConflict)
		}
		var other string
		err = tx.QueryRowContext(ctx, `SELECT id FROM enrollments WHERE apple_enrollment_id = ? AND id <> ?`, appleID, ref).Scan(&other)
		if err == nil {
			return fmt.Errorf("%w: EnrollmentID already bound to another enrollment", store.ErrConflict)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE enrollments SET apple_enrollment_id = ?, status = ?, os_version = CASE WHEN ? <> '' THEN ? ELSE os_version END,
			build_version = CASE WHEN ? <> '' THEN ? ELSE build_version END, device_name = ?, model = ?, model_name = ?,
			enrolled_at = CASE WHEN enrolled_at = 0 THEN ? ELSE enrolled_at END, last_seen_at = ?, updated_at = ? WHERE id = ? AND status <> ?`,
			appleID, store.EnrollmentEnrolled, info.OSVersion, info.OSVersion, info.BuildVersion, info.BuildVersion,
			info.DeviceName, info.Model, info.ModelName, toMicros(now), toMicros(now), toMicros(now), ref, store.EnrollmentUnenrolled)
		return s.constraint(err)
	})
}

func (s *Store) EnrollmentByAppleID(ctx context.Context, appleID string) (*store.Enrollment, error) {
	return scanEnrollment(s.r.QueryRowContext(s.hot(ctx), enrollmentByAppleIDSQL, appleID))
}

// enrollmentByAppleIDSQL and channelsSQL are the API's device reads (every
// command enqueued for one device), their columns named with one letter
// (oneLetterNames): the SQLite driver copies every result column's name
// into a new Go string on every execution, and a one-byte string is never
// allocated (23 and 13 allocations fewer).
var (
	enrollmentByAppleIDSQL = `SELECT ` + oneLetterNames(enrollmentColumns) + ` FROM enrollments WHERE apple_enrollment_id = ?`
	channelsSQL            = `SELECT ` + oneLetterNames(channelColumns) + ` FROM channels WHERE enrollment_ref = ? ORDER BY kind, id`
)

// enrollmentForCommandSQL reads an enrollment (deviceRequestEnrollmentColumns:
// without its blobs) and its first channel of a kind, left-joined: the
// channel's columns are NULL when it has none. Its parameters are the
// kind and the enrollment's id or Apple EnrollmentID (the WHERE clause
// added below). The columns are named with one letter (oneLetterNames)
// and read by position. It replaces the enrollment read and the channels
// read of the API's enqueue: one statement of 34 columns instead of two of
// 23 and 13 per channel.
var (
	enrollmentForCommandFrom = `SELECT ` + oneLetterNames(qualify("e", deviceRequestEnrollmentColumns)+`, `+qualify("c", channelColumns)) + `
	FROM enrollments e
	LEFT JOIN channels c ON c.id = (SELECT ch.id FROM channels ch WHERE ch.enrollment_ref = e.id AND ch.kind = ? ORDER BY ch.id LIMIT 1)`
	enrollmentForCommandByIDSQL      = enrollmentForCommandFrom + ` WHERE e.id = ?`
	enrollmentForCommandByAppleIDSQL = enrollmentForCommandFrom + ` WHERE e.apple_enrollment_id = ?`
)

func (s *Store) EnrollmentForCommand(ctx context.Context, ref string, byAppleID bool, kind string) (*store.Enrollment, *store.Channel, error) {
	q := enrollmentForCommandByIDSQL
	if byAppleID {
		q = enrollmentForCommandByAppleIDSQL
	}
	// One allocation for every scan target: the row escapes to the
	// driver as a whole, the enrollment returned is part of it.
	var row struct {
		e                                            store.Enrollment
		created, updated, enrolled, unenrolled, seen int64
		id, ref, kind, euid, short, long, magic      sql.NullString
		token                                        []byte
		dead, pushed, chSeen, chCreated, chUpdated   sql.NullInt64
	}
	e := &row.e
	err := s.r.QueryRowContext(s.hot(ctx), q, kind, ref).Scan(&e.ID, &e.TenantID, &e.UserID, &e.Platform, &e.Product, &e.OSVersion, &e.BuildVersion,
		&e.Language, &e.DeviceSignature, &e.ProfileID, &e.Status, &row.created, &row.updated,
		&e.AppleEnrollmentID, &e.DeviceName, &e.Model, &e.ModelName, &row.enrolled, &row.unenrolled, &row.seen, &e.PredecessorID,
		&row.id, &row.ref, &row.kind, &row.euid, &row.short, &row.long, &row.token, &row.magic, &row.dead,
		&row.pushed, &row.chSeen, &row.chCreated, &row.chUpdated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("enrollment %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, nil, err
	}
	e.CreatedAt, e.UpdatedAt = fromMicros(row.created), fromMicros(row.updated)
	e.EnrolledAt, e.UnenrolledAt, e.LastSeenAt = fromMicros(row.enrolled), fromMicros(row.unenrolled), fromMicros(row.seen)
	if !row.id.Valid {
		return e, nil, nil
	}
	return e, &store.Channel{ID: row.id.String, DeviceID: row.ref.String, Kind: row.kind.String, EnrollmentUserID: row.euid.String,
		UserShortName: row.short.String, UserLongName: row.long.String, PushToken: row.token, PushMagic: row.magic.String,
		PushDead: row.dead.Int64 != 0, LastPushAt: fromMicros(row.pushed.Int64), LastSeenAt: fromMicros(row.chSeen.Int64),
		CreatedAt: fromMicros(row.chCreated.Int64), UpdatedAt: fromMicros(row.chUpdated.Int64)}, nil
}

func (s *Store) EndEnrollment(ctx context.Context, ref, reason string, now time.Time) error {
	defer s.auth.changed() // after the commit: authCache
	at := toMicros(now)
	return s.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE enrollments SET status = ?, unenrolled_at = CASE WHEN status = ? AND unenrolled_at <> 0 THEN unenrolled_at ELSE ? END,
			updated_at = ? WHERE id = ?`, store.EnrollmentUnenrolled, store.EnrollmentUnenrolled, at, at, ref)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("enrollment %w", store.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE identity_certs SET revoked_at = ?, revoked_reason = ? WHERE enrollment_id = ? AND revoked_at = 0`,
			at, reason, ref); err != nil {
			return err
		}
		// A profile fetched but not yet installed must not yield a
		// certificate for an ended enrollment.
		if _, err := tx.ExecContext(ctx, `DELETE FROM scep_challenges WHERE enrollment_id = ? AND used_at = 0`, ref); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE access_tokens SET revoked_at = ? WHERE revoked_at = 0 AND (enrollment_id = ?
			OR (enrollment_id = '' AND hash = (SELECT token_hash FROM enrollments WHERE id = ?)))`, at, ref, ref)
		return err
	})
}

func (s *Store) PutChannel(ctx context.Context, c *store.Channel) error {
	defer s.auth.changed() // after the commit: authCache
	err := s.writeRow(ctx, `INSERT INTO channels (id, enrollment_ref, kind, enrollment_user_id, user_short_name, user_long_name, push_token,
		push_magic, push_dead, last_push_at, last_seen_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (enrollment_ref, kind, enrollment_user_id) DO UPDATE SET user_short_name = excluded.user_short_name,
		user_long_name = excluded.user_long_name, push_token = excluded.push_token, push_magic = excluded.push_magic,
		push_dead = excluded.push_dead, last_seen_at = excluded.last_seen_at, updated_at = excluded.updated_at
		RETURNING id`,
		[]any{c.ID, c.DeviceID, c.Kind, c.EnrollmentUserID, c.UserShortName, c.UserLongName, c.PushToken, c.PushMagic, boolInt(c.PushDead),
			toMicros(c.LastPushAt), toMicros(c.LastSeenAt), toMicros(c.CreatedAt), toMicros(c.UpdatedAt)}, &c.ID)
	return s.constraint(err)
}

const channelColumns = `id, enrollment_ref, kind, enrollment_user_id, user_short_name, user_long_name, push_token, push_magic, push_dead, last_push_at, last_seen_at, created_at, updated_at`

func scanChannel(sc scanner) (*store.Channel, error) {
	var c store.Channel
	var dead int
	var push, seen, created, updated int64
	if err := sc.Scan(&c.ID, &c.DeviceID, &c.Kind, &c.EnrollmentUserID, &c.UserShortName, &c.UserLongName, &c.PushToken, &c.PushMagic, &dead,
		&push, &seen, &created, &updated); err != nil {
		return nil, err
	}
	c.PushDead = dead != 0
	c.LastPushAt, c.LastSeenAt, c.CreatedAt, c.UpdatedAt = fromMicros(push), fromMicros(seen), fromMicros(created), fromMicros(updated)
	return &c, nil
}

func (s *Store) Channel(ctx context.Context, ref, kind, enrollmentUserID string) (*store.Channel, error) {
	c, err := scanChannel(s.r.QueryRowContext(ctx, `SELECT `+channelColumns+` FROM channels WHERE enrollment_ref = ? AND kind = ? AND enrollment_user_id = ?`,
		ref, kind, enrollmentUserID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("channel %w", store.ErrNotFound)
	}
	return c, err
}

func (s *Store) Channels(ctx context.Context, ref string) ([]store.Channel, error) {
	return collect(s.hot(ctx), s.r, scanChannel, channelsSQL, ref)
}

// TouchChannel is a hint (the same as a command's sent mark): a lost
// last-seen time costs nothing but staleness until the device's next poll
// writes it again, and it is written on a channel's first poll after a
// minute — for a real device, which polls when pushed, on nearly every
// idle poll. So it must not cost a durable commit each time: on SQLite it
// joins a batch that commits without fsync unless a durable write shares
// it; on PostgreSQL it is one autocommitted statement (the enrollment is
// updated from the channel's row in a data-modifying WITH, so both or
// neither change), one round trip instead of a SERIALIZABLE transaction's
// four.
func (s *Store) TouchChannel(ctx context.Context, ref, id string, now time.Time) error {
	// A remembered sender's channel keeps the last-seen time it was read
	// with: this store's write is what keeps it from being touched again
	// within the minute (authCache).
	s.auth.touched(id, toMicros(now))
	if s.gc == nil {
		_, err := s.w.ExecContext(ctx, `WITH c AS (UPDATE channels SET last_seen_at = ? WHERE id = ? AND enrollment_ref = ? RETURNING enrollment_ref)
			UPDATE enrollments SET last_seen_at = ? WHERE id IN (SELECT enrollment_ref FROM c)`, toMicros(now), id, ref, toMicros(now))
		return err
	}
	return s.gc.doHint(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE channels SET last_seen_at = ? WHERE id = ? AND enrollment_ref = ?`, toMicros(now), id, ref)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE enrollments SET last_seen_at = ? WHERE id = ?`, toMicros(now), ref)
		return err
	})
}

func (s *Store) SetPushResult(ctx context.Context, id string, dead bool, at time.Time) error {
	_, err := s.w.ExecContext(ctx, `UPDATE channels SET push_dead = ?, last_push_at = ? WHERE id = ?`, boolInt(dead), toMicros(at), id)
	return err
}

// pushResultRows bounds the ids of one SetPushResults statement where
// the dialect has no array parameter (SQLite).
const pushResultRows = 500

// SetPushResults writes a fan-out's answers with one statement per
// outcome (PostgreSQL: an array parameter) or per pushResultRows ids
// (SQLite), as hint writes: a 100,000-channel fan-out used to cost
// 100,000 single-row writes (issue 15 item 8).
func (s *Store) SetPushResults(ctx context.Context, results []store.PushResult, at time.Time) error {
	var live, dead []string
	ts := toMicros(at)
	for _, r := range results {
		switch {
		case r.Dead && len(r.Token) > 0:
			// Only while the channel still has the token APNs called
			// dead: a TokenUpdate during the fan-out brought a live one.
			// One statement each: dead answers are few (a fan-out whose
			// every answer is dead costs what every answer did before
			// SetPushResults).
			if _, err := s.hint(ctx, `UPDATE channels SET push_dead = 1, last_push_at = ? WHERE id = ? AND push_token = ?`, ts, r.ChannelID, r.Token); err != nil {
				return err
			}
		case r.Dead:
			dead = append(dead, r.ChannelID)
		default:
			live = append(live, r.ChannelID)
		}
	}
	for _, g := range []struct {
		ids  []string
		dead bool
	}{{live, false}, {dead, true}} {
		if len(g.ids) == 0 {
			continue
		}
		if s.d.UnnestText != "" {
			// By key (anyIDs): as a join with the unnested ids PostgreSQL
			// without statistics hashed them and read every channel, once
			// per fan-out (a reconciler batch's: 100 passes over 100,000
			// channels for one assignment to 100,000 devices).
			if _, err := s.hint(ctx, `UPDATE channels SET push_dead = ?, last_push_at = ? WHERE id`+anyIDs,
				boolInt(g.dead), ts, g.ids); err != nil {
				return err
			}
			continue
		}
		if err := chunks(g.ids, pushResultRows, func(ids []string) error {
			_, err := s.hint(ctx, `UPDATE channels SET push_dead = ?, last_push_at = ? WHERE id IN `+qmarks(len(ids)),
				append([]any{boolInt(g.dead), ts}, anys(ids)...)...)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// A channel's commands go out in seq order (NextCommand), and seq only
// orders the rows of one channel. A new row's seq is a clock in
// microseconds (Dialect.SeqClock: PostgreSQL's clock_timestamp(), one
// clock for every instance; on SQLite, whose writes are serialised in one
// process, a counter that never repeats or goes back), and for a single
// channel at least that channel's highest waiting seq plus one (its
// answered rows are not read: see enqueueSQL). So no enqueue
// reads a global MAX(seq) — a scan of the whole queue and, under
// SERIALIZABLE, a read that every other enqueue's insert conflicted with:
// a bulk enqueue reads no queue row at all, and a single one only its
// channel's (two at once to one channel still conflict, and one is
// retried, which keeps that channel's order). Rows written before this
// scheme have small seqs (a global counter), below any clock value.
const enqueueBatch = 500

// seqCounter is the SQLite seq clock: microseconds since the epoch, but
// always above the last value it gave and above every seq in the queue
// when the process started.
type seqCounter struct {
	mu      sync.Mutex
	last    int64
	running bool
}

func (c *seqCounter) started() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

func (c *seqCounter) start(last int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last, c.running = max(c.last, last), true
}

func (c *seqCounter) next() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = max(time.Now().UnixMicro(), c.last+1)
	return c.last
}

func (s *Store) enqueueSQL(batch int) string {
	clock := s.d.SeqClock
	if clock == "" {
		clock = "CAST(? AS BIGINT)"
	}
	if batch == 1 {
		// Above the channel's waiting rows only (claimable(true): the
		// rows NextCommand orders), not its whole history: that MAX read
		// every row the channel ever had through queue_next (channel,
		// status, seq) — on SQLite 1.7 ms of CPU per enqueue to a
		// channel with 10,000 answered commands, 0.3 ms now
		// (BenchmarkEnqueueAfterHistory) — and, on PostgreSQL under
		// SERIALIZABLE, took a predicate lock on every one of them.
		// Answered rows take no part in the delivery order.
		return `INSERT INTO queue (channel_id, command_uuid, seq, status, updated_at)
			SELECT ?, ?, ` + s.d.Greatest + `(` + clock + `, COALESCE(MAX(seq), 0) + 1), ?, CAST(? AS BIGINT) FROM queue
			WHERE channel_id = ? AND status IN ` + claimable(true)
	}
	// A batch takes one seq for all its rows (its channels differ): read
	// once, passed as a parameter (evaluating the clock per row made
	// PostgreSQL's bulk insert markedly slower).
	return `INSERT INTO queue (channel_id, command_uuid, seq, status, updated_at) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?), ", batch), ", ")
}

func (s *Store) Enqueue(ctx context.Context, cmd *store.CommandRecord, channelIDs []string) error {
	if len(channelIDs) == 1 {
		defer s.auth.queueWritten(channelIDs[0]) // after the commit: authCache's empty
	} else {
		defer s.auth.queueWritten("")
	}
	if s.d.WritableCTE && s.d.SeqClock != "" && len(channelIDs) == 1 {
		return s.enqueueOne(ctx, cmd, channelIDs[0])
	}
	return s.tx(ctx, func(tx *Tx) error { return s.enqueue(ctx, tx, cmd, channelIDs) })
}

// enqueueOneSQL is a single-channel enqueue as one statement (PostgreSQL,
// Dialect.WritableCTE): the command row, its queue row and, with audit,
// the request's audit entry (returning its id). Arguments: the command's
// uuid, request type, payload, created_at, expires_at, created_by; the
// channel id twice, the queued status, updated_at; with audit the entry's
// auditArgs. The queue row's seq is enqueueSQL(1)'s. The foreign keys are
// checked at the end of the statement, so the queue row's reference to
// the command inserted beside it holds, and a missing channel fails the
// whole statement (nothing is written).
func (s *Store) enqueueOneSQL(audit bool) string {
	cmd := `WITH c AS (INSERT INTO commands (uuid, request_type, payload, created_at, expires_at, created_by) VALUES (?, ?, ?, ?, ?, ?) RETURNING uuid)`
	queue := `INSERT INTO queue (channel_id, command_uuid, seq, status, updated_at)
		SELECT ?, c.uuid, ` + s.d.Greatest + `(` + s.d.SeqClock + `, (SELECT COALESCE(MAX(seq), 0) + 1 FROM queue
			WHERE channel_id = ? AND status IN ` + claimable(true) + `)), ?, CAST(? AS BIGINT) FROM c`
	if !audit {
		return cmd + "\n" + queue
	}
	return cmd + `, q AS (` + queue + ` RETURNING command_uuid)
		INSERT INTO audit_log (at, actor, action, target, status, remote)
		SELECT CAST(? AS BIGINT), ?, ?, ?, CAST(? AS BIGINT), ? FROM q RETURNING id`
}

// enqueueOne is Enqueue to one channel — every API and job enqueue to a
// device — as one autocommitted statement (enqueueOneSQL): one network
// round trip and one durable commit instead of BEGIN, three INSERTs and
// COMMIT, with the same all-or-nothing outcome. It needs no transaction
// of its own: the statement writes only new rows, and its one read (the
// channel's highest waiting seq) decides no write of another row. That
// read sees every enqueue committed before the statement started (its
// snapshot), so a command enqueued after another still gets a later seq,
// whatever the clock does; two enqueues to one channel at the same moment
// (no order between them to keep) may now both commit, where SERIALIZABLE
// made one retry, and take seqs in clock order.
func (s *Store) enqueueOne(ctx context.Context, cmd *store.CommandRecord, channelID string) error {
	at := toMicros(cmd.CreatedAt)
	args := []any{cmd.UUID, cmd.RequestType, cmd.Payload, at, toMicros(cmd.ExpiresAt), cmd.CreatedBy,
		channelID, channelID, store.QueueQueued, at}
	var err error
	for attempt := 0; attempt < maxTxAttempts; attempt++ {
		if cmd.Audit != nil {
			err = s.w.QueryRowContext(ctx, s.enqueueOneQ[1], append(args, auditArgs(cmd.Audit)...)...).Scan(&cmd.Audit.ID)
		} else {
			_, err = s.w.ExecContext(ctx, s.enqueueOneQ[0], args...)
		}
		// A server whose default isolation is SERIALIZABLE can still
		// report a conflict (or a deadlock with a channel's deletion):
		// the statement was rolled back whole, so run it again.
		if err == nil || s.d.Retryable == nil || !s.d.Retryable(err) {
			break
		}
		s.retries.Add(1)
		time.Sleep(time.Duration(attempt+1) * time.Millisecond)
	}
	if err == nil {
		return nil
	}
	// The only foreign key is the queue row's channel (its command is
	// the row inserted beside it).
	if e := s.constraint(err); errors.Is(e, store.ErrInUse) {
		return fmt.Errorf("channel %s %w", channelID, store.ErrNotFound)
	} else {
		return e
	}
}

func (s *Store) enqueue(ctx context.Context, tx *Tx, cmd *store.CommandRecord, channelIDs []string) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO commands (uuid, request_type, payload, created_at, expires_at, created_by) VALUES (?, ?, ?, ?, ?, ?)`,
		cmd.UUID, cmd.RequestType, cmd.Payload, toMicros(cmd.CreatedAt), toMicros(cmd.ExpiresAt), cmd.CreatedBy); err != nil {
		return s.constraint(err)
	}
	return s.enqueueRows(ctx, tx, cmd, channelIDs)
}

// enqueueRows is enqueue's queue rows (and audit entry) for command cmd,
// whose row is written already.
func (s *Store) enqueueRows(ctx context.Context, tx *Tx, cmd *store.CommandRecord, channelIDs []string) error {
	// Rows go in batches of enqueueBatch (one statement each: a bulk
	// command to 100,000 devices is 200 statements, not 100,000 round
	// trips); the remainder one by one, so that the statement texts
	// stay few.
	at := toMicros(cmd.CreatedAt)
	failed := func(err error, ids []string) error {
		if e := s.constraint(err); errors.Is(e, store.ErrInUse) {
			return fmt.Errorf("a channel of %v %w", ids[:min(len(ids), 3)], store.ErrNotFound)
		}
		return s.constraint(err)
	}
	if s.d.SeqClock == "" && !s.seqs.started() {
		// Once per process: continue above every seq already written,
		// whatever the clock says now.
		var last int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM queue`).Scan(&last); err != nil {
			return err
		}
		s.seqs.start(last)
	}
	if s.d.UnnestText != "" && len(channelIDs) > 1 {
		// One statement for every row (their channels differ: one seq).
		var seq int64
		if err := tx.QueryRowContext(ctx, `SELECT `+s.d.SeqClock).Scan(&seq); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO queue (channel_id, command_uuid, seq, status, updated_at)
			SELECT t.id, ?, ?, ?, ? FROM `+s.d.UnnestText, cmd.UUID, seq, store.QueueQueued, at, channelIDs); err != nil {
			return failed(err, channelIDs)
		}
		channelIDs = nil
	}
	for len(channelIDs) >= enqueueBatch {
		ids := channelIDs[:enqueueBatch]
		var seq int64
		if s.d.SeqClock == "" {
			seq = s.seqs.next()
		} else if err := tx.QueryRowContext(ctx, `SELECT `+s.d.SeqClock).Scan(&seq); err != nil {
			return err
		}
		// The values every row shares are boxed once, not per row.
		args := make([]any, 0, 5*len(ids))
		uuid, seqArg, status, atArg := any(cmd.UUID), any(seq), any(store.QueueQueued), any(at)
		for _, id := range ids {
			args = append(args, id, uuid, seqArg, status, atArg)
		}
		if _, err := tx.ExecContext(ctx, s.enqueueSQL(enqueueBatch), args...); err != nil {
			return failed(err, ids)
		}
		channelIDs = channelIDs[enqueueBatch:]
	}
	for _, id := range channelIDs {
		args := []any{id, cmd.UUID}
		if s.d.SeqClock == "" {
			args = append(args, s.seqs.next())
		}
		args = append(args, store.QueueQueued, at, id)
		if _, err := tx.ExecContext(ctx, s.enqueueSQL(1), args...); err != nil {
			return failed(err, []string{id})
		}
	}
	if cmd.Audit != nil {
		// The request's audit entry shares the command's commit (one
		// fsync, not two) and is rolled back with it.
		return appendAudit(ctx, tx, cmd.Audit)
	}
	return nil
}

const queuedColumns = `q.channel_id, q.command_uuid, c.request_type, c.payload, c.created_at, c.expires_at, c.created_by, q.status, q.result, q.sent_at, q.updated_at, c.render, q.vars`

func scanQueued(sc scanner) (*store.QueuedCommand, error) {
	var q store.QueuedCommand
	var created, expires, sent, updated int64
	if err := sc.Scan(&q.ChannelID, &q.UUID, &q.RequestType, &q.Payload, &created, &expires, &q.CreatedBy, &q.Status, &q.Result, &sent, &updated, &q.Render, &q.Vars); err != nil {
		return nil, err
	}
	q.CreatedAt, q.ExpiresAt, q.SentAt, q.UpdatedAt = fromMicros(created), fromMicros(expires), fromMicros(sent), fromMicros(updated)
	return &q, nil
}

// claimable lists the queue statuses NextCommand may hand out: queued
// commands and ones sent without an answer (a device works through one
// command at a time: a command still "sent" when the device reports on
// another one never reached it, e.g. its answer was lost with a failed
// instance), and after an Idle poll also the ones answered NotNow (they
// wait for the next Idle).
func claimable(afterIdle bool) string {
	if afterIdle {
		return `('queued', 'sent', 'NotNow')`
	}
	return `('queued', 'sent')`
}

// nextSQL reads a channel's next claimable command (seq order), scoped
// to the authenticated enrollment ref. Arguments: channel id, ref.
func nextSQL(afterIdle bool) string {
	if afterIdle {
		return nextAfterIdleSQL
	}
	return nextAfterReportSQL
}

// claimSQL: see buildClaimSQL.
func claimSQL(afterIdle bool) string {
	if afterIdle {
		return claimAfterIdleSQL
	}
	return claimAfterReportSQL
}

// The statements of next, built once: the statement cache is keyed by the
// text, and building it per call cost a concatenation per statement.
var (
	nextAfterIdleSQL, nextAfterReportSQL   = buildNextSQL(true), buildNextSQL(false)
	claimAfterIdleSQL, claimAfterReportSQL = buildClaimSQL(true), buildClaimSQL(false)
	// takeAfterIdleSQL, takeAfterReportSQL: see buildTakeSQL.
	takeAfterIdleSQL, takeAfterReportSQL = buildTakeSQL(true), buildTakeSQL(false)
	// recordCTESQL: see buildRecordCTESQL.
	recordCTESQL = buildRecordCTESQL()
	// errNoCommand is NextCommand's answer when nothing is claimable (the
	// usual answer after a report: made once, not per call).
	errNoCommand = fmt.Errorf("command %w", store.ErrNotFound)
)

func buildNextSQL(afterIdle bool) string {
	// One-letter column names (oneLetterNames): 13 allocations fewer
	// per read on SQLite — every fetching poll, and every result's look
	// for the next command, which the driver sets up even when no row
	// comes back.
	return `SELECT ` + oneLetterNames(queuedColumns) + ` FROM queue q JOIN commands c ON c.uuid = q.command_uuid
		JOIN channels ch ON ch.id = q.channel_id
		WHERE q.channel_id = ? AND ch.enrollment_ref = ? AND q.status IN ` + claimable(afterIdle) + ` ORDER BY q.seq LIMIT 1`
}

// claimSQL sets a queue row's status (sent, with sent_at, or expired) if it
// is still claimable: a result that was recorded meanwhile (a command
// handed out twice at once) is never overwritten. Arguments: status,
// sent_at (0 keeps it), updated_at, channel id, command uuid.
func buildClaimSQL(afterIdle bool) string {
	return `UPDATE queue SET status = ?, sent_at = CASE WHEN CAST(? AS BIGINT) <> 0 THEN CAST(? AS BIGINT) ELSE sent_at END, updated_at = ?
		WHERE channel_id = ? AND command_uuid = ? AND status IN ` + claimable(afterIdle)
}

// buildTakeSQL is next's read and mark as one statement (Dialect.WritableCTE:
// PostgreSQL): pick picks the channel's first claimable row (seq order,
// scoped to the enrollment ref as nextSQL), upd marks it — expired when
// its command's expires_at (µs, 0: never) is at or before now, else sent
// with sent_at now — if it is still claimable when the row is locked, and
// returns it. The statement answers one row, led by a boolean: true and
// the row as marked (status sent or expired); false and the picked row as
// the statement's snapshot saw it, when upd found it no longer claimable
// (answered by a concurrent request between the pick and the lock, at READ
// COMMITTED: the caller picks again); no row: nothing claimable.
// Arguments: channel id, ref, now (µs) three times, channel id.
func buildTakeSQL(afterIdle bool) string {
	expired := `c.expires_at <> 0 AND c.expires_at <= CAST(? AS BIGINT)`
	return `WITH pick AS (SELECT q.command_uuid FROM queue q JOIN channels ch ON ch.id = q.channel_id
			WHERE q.channel_id = ? AND ch.enrollment_ref = ? AND q.status IN ` + claimable(afterIdle) + ` ORDER BY q.seq LIMIT 1),
		upd AS (UPDATE queue q SET status = CASE WHEN ` + expired + ` THEN '` + store.QueueExpired + `' ELSE '` + store.QueueSent + `' END,
			sent_at = CASE WHEN ` + expired + ` THEN q.sent_at ELSE CAST(? AS BIGINT) END, updated_at = CAST(? AS BIGINT)
			FROM pick, commands c WHERE q.channel_id = ? AND q.command_uuid = pick.command_uuid AND c.uuid = q.command_uuid
			AND q.status IN ` + claimable(afterIdle) + `
			RETURNING ` + queuedColumns + `)
		SELECT true, upd.* FROM upd
		UNION ALL
		SELECT false, ` + queuedColumns + ` FROM pick JOIN queue q ON q.command_uuid = pick.command_uuid JOIN commands c ON c.uuid = q.command_uuid
			WHERE q.channel_id = ? AND NOT EXISTS (SELECT 1 FROM upd)`
}

// take is next as one statement a call (buildTakeSQL, Dialect.WritableCTE),
// through query (the writer's pool, autocommitted, or a transaction's): a
// fetching poll on PostgreSQL is one round trip for the command instead of
// a read and an UPDATE. Same outcomes as next: the first claimable row is
// marked sent and returned; an expired one is marked expired and the next
// one taken; one answered meanwhile is passed over; errNoCommand when
// nothing is claimable.
func take(query func(q string, args ...any) Row, ref, channelID string, afterIdle bool, now time.Time) (*store.QueuedCommand, error) {
	at := toMicros(now)
	text := takeAfterReportSQL
	if afterIdle {
		text = takeAfterIdleSQL
	}
	for {
		var marked bool
		q, err := scanQueued(scannerFunc(func(dest ...any) error {
			return query(text, channelID, ref, at, at, at, at, channelID, channelID).Scan(append([]any{&marked}, dest...)...)
		}))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, errNoCommand
		}
		if err != nil {
			return nil, err
		}
		if !marked || q.Status != store.QueueSent {
			continue // answered meanwhile, or expired now: the next one
		}
		q.SentAt, q.UpdatedAt = now, now
		return q, nil
	}
}

// next hands out channelID's next command: read the first claimable row,
// mark it expired through write and read on, or mark it sent through mark
// (a transaction's statements for both, or the read pool, a hint write for
// expired marks — the next read must see it — and a lazy hint for the sent
// mark). mark answers the rows it changed; 0 means the row was answered
// meanwhile and the next one is read.
func next(ctx context.Context, read func(q string, args ...any) *sql.Row, write, mark func(q string, args ...any) (int64, error),
	ref, channelID string, afterIdle bool, now time.Time) (*store.QueuedCommand, error) {
	at := toMicros(now)
	for {
		q, err := scanQueued(read(nextSQL(afterIdle), channelID, ref))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, errNoCommand
		}
		if err != nil {
			return nil, err
		}
		if !q.ExpiresAt.IsZero() && !now.Before(q.ExpiresAt) {
			if _, err := write(claimSQL(afterIdle), store.QueueExpired, 0, 0, at, channelID, q.UUID); err != nil {
				return nil, err
			}
			continue
		}
		n, err := mark(claimSQL(afterIdle), store.QueueSent, at, at, at, channelID, q.UUID)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			continue // answered meanwhile: the next one
		}
		q.Status, q.SentAt, q.UpdatedAt = store.QueueSent, now, now
		return q, nil
	}
}

// NextCommand reads the next command on the read pool and marks it sent
// with a hint write: the mark is what the API, the console and the
// re-push job (WaitingChannels: a sent command is not pushed for) show,
// but it needs no fsync of its own before the device is answered — lost
// in a crash, the command is still queued and goes again on the next
// poll, as a sent command never answered does anyway. On PostgreSQL the
// read and the mark are one autocommitted statement (take), a round trip
// fewer per fetching poll.
//
// On SQLite the mark is a lazy hint (groupcommit.go, doHintLater): the
// poll is answered without waiting for it, and it commits with the next
// batch — usually the device's result a few milliseconds later, whose one
// durable COMMIT then carries both (no commit, BEGIN or PRAGMA switch of
// its own), or alone without fsync after hintWait. What that changes:
// the writer's transactions (the result, an enqueue) see the mark at
// once (FIFO); the status reads of the read pool (QueuedCommands,
// CommandSummaries, ChannelCommand, WaitingChannels) settle first, so
// they see it too; the next poll reads claimable rows, sent or queued
// alike. A row answered between the read and the mark (a second request
// of the same device at once) is handed out anyway — the device's second
// answer is a repeat, which RecordResult ignores — where the synchronous
// mark passed over it. A crash before the batch commits loses the mark,
// as a crash before the unsynced commit did.
//
// It reads the full row at once, with no cheaper look first: an Idle poll
// with an empty queue no longer comes here (DeviceRequest's
// CommandWaiting answers it), so a look would be one statement more for
// every poll that does get a command; an empty read costs the driver
// some two dozen allocations more than a one-column look, paid only after
// a report with nothing queued behind it (both stores read the next
// command after a report inside RecordResultNext's transaction).
func (s *Store) NextCommand(ctx context.Context, ref, channelID string, afterIdle bool, now time.Time) (*store.QueuedCommand, error) {
	if s.d.WritableCTE {
		// One autocommitted statement: the mark is the same hint as
		// below, written with the read.
		return take(func(q string, args ...any) Row { return s.w.QueryRowContext(ctx, q, args...) }, ref, channelID, afterIdle, now)
	}
	hint := func(q string, args ...any) (int64, error) { return s.hint(ctx, q, args...) }
	mark := hint
	if s.gc != nil {
		mark = func(q string, args ...any) (int64, error) {
			err := s.gc.doHintLater(func(tx *Tx) error {
				_, err := tx.ExecContext(context.Background(), q, args...)
				return err
			})
			return 1, err
		}
	}
	rctx := s.hot(ctx)
	return next(ctx, func(q string, args ...any) *sql.Row { return s.r.QueryRowContext(rctx, q, args...) }, hint, mark,
		ref, channelID, afterIdle, now)
}

// hint runs one write statement that may be lost in a crash without harm
// (groupcommit.go, doHint): on SQLite in a batch that commits without
// fsync unless it shares the batch with a durable write, elsewhere as a
// single autocommitted statement. It returns the rows affected.
func (s *Store) hint(ctx context.Context, q string, args ...any) (int64, error) {
	var res sql.Result
	var err error
	if s.gc != nil {
		err = s.gc.doHint(ctx, func(tx *Tx) error {
			res, err = tx.ExecContext(ctx, q, args...)
			return err
		})
	} else {
		res, err = s.w.ExecContext(ctx, q, args...)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s *Store) RecordResult(ctx context.Context, ref, channelID, uuid, status string, result []byte, now time.Time, inv store.InventoryFunc) (string, error) {
	var rt string
	err := s.tx(ctx, func(tx *Tx) error {
		var err error
		rt, err = recordResult(ctx, tx, ref, channelID, uuid, status, result, now, inv)
		return err
	})
	return rt, err
}

// RecordResultNext is RecordResult and NextCommand (after a report, not
// an Idle), in one transaction: the result, its inventory and the next
// command's sent mark share one durable commit (on PostgreSQL one COMMIT
// instead of the result's and an autocommitted mark's, and two round
// trips fewer when a command is handed out). When the backend would run
// it SERIALIZABLE (no ResultTxOptions, no group commit) the next command
// is read and marked after the commit, as NextCommand does: reading the
// channel's queue under predicate locks widens the transaction's
// conflicts with concurrent enqueues and jobs.
//
// With ack, an acknowledged InstallProfile (or ProfileList) also moves the
// profile items in the same transaction on both backends (ackInResult:
// a failure of that work redoes the result without it): their own commit — an fsync on SQLite,
// a commit on PostgreSQL — is saved, and the verifying ProfileList an
// install queues is read as the next command without a read of its own.
// On PostgreSQL an answer's inventory UPDATE goes out with the next
// command's take (Tx.deferred), not as a statement of its own.
//
// On PostgreSQL the transaction runs at the dialect's ResultTxOptions
// (REPEATABLE READ, with the profile items it rewrites read FOR UPDATE):
// every read in it decides a write of the same row, so a concurrent change
// of that row is still a serialization failure and a retry. The one
// decision over rows it does not write is whether a ProfileList already
// waits before an install queues its verifying one: two such decisions at
// once (a replayed answer beside the reconciler's periodic ProfileList)
// can both queue one, and the device then answers the second as another
// verification of the same items — at most one extra round trip, never a
// lost or wrong state.
func (s *Store) RecordResultNext(ctx context.Context, ref, channelID, uuid, status string, result []byte, now time.Time,
	inv store.InventoryFunc, ack *store.ProfileAck) (string, *store.QueuedCommand, error) {
	if ack != nil {
		// It may queue a verifying ProfileList on the channel.
		defer s.auth.queueWritten(channelID) // after the commit: authCache's empty
	}
	var rt string
	var q *store.QueuedCommand
	// The transaction may run more than once: ack's outputs are set
	// from a copy, after the commit (allocated only when there is an ack:
	// a plain result's path allocates nothing more).
	var got *store.ProfileAck
	if ack != nil {
		got = &store.ProfileAck{}
	}
	nextInTx := s.gc != nil || s.d.ResultTxOptions != nil
	withAck := got != nil && status == mdm.Acknowledged
	fn := func(tx *Tx) error {
		var err error
		q = nil
		// On PostgreSQL the inventory's UPDATE rides with the next
		// command's take below: one round trip fewer per answer that
		// adds to the inventory (a ProfileList's, a DeviceInformation's).
		tx.deferWrites = nextInTx && s.d.WritableCTE && s.gc == nil
		if withAck && tx.pipe != nil {
			sendProfileAhead(tx, ref, uuid, ack, now)
		}
		if rt, err = recordResult(ctx, tx, ref, channelID, uuid, status, result, now, inv); err != nil {
			return err
		}
		if withAck {
			*got = store.ProfileAck{Verify: ack.Verify, List: ack.List}
			err = s.ackInResult(ctx, tx, ref, channelID, uuid, rt, got, now)
			tx.aheadItem, tx.aheadItems = nil, nil // not for other work
			if err != nil {
				return err
			}
		}
		if !nextInTx {
			return nil // the next command after the commit (see above)
		}
		if s.d.WritableCTE {
			last := tx.pipe != nil
			q, err = take(func(q string, args ...any) Row {
				q, args = tx.withDeferred(q, args)
				if last {
					// The take is the transaction's last statement: its
					// COMMIT goes with it (PipeTx.RowCommit). Another
					// take after it (the row picked was answered
					// meanwhile, or expired) runs autocommitted, as
					// NextCommand's does.
					last = false
					return tx.pipe.RowCommit(ctx, tx.d.rebind(q), args...)
				}
				return tx.row(ctx, q, args...)
			}, ref, channelID, false, now)
		} else {
			write := func(q string, args ...any) (int64, error) {
				res, err := tx.ExecContext(ctx, q, args...)
				if err != nil {
					return 0, err
				}
				return res.RowsAffected()
			}
			q, err = next(ctx, func(q string, args ...any) *sql.Row { return tx.QueryRowContext(ctx, q, args...) }, write, write,
				ref, channelID, false, now)
		}
		if errors.Is(err, store.ErrNotFound) {
			q = nil
			return nil // commit the result: there is just nothing to send
		}
		return err
	}
	run := s.resultTx
	if s.d.Pipeline != nil && nextInTx && s.d.WritableCTE && s.gc == nil {
		// BEGIN with the result's statement, COMMIT with the take.
		run = func(ctx context.Context, fn func(*Tx) error) error {
			err := s.pipedTx(ctx, s.d.ResultTxOptions, fn)
			var later *LaterError
			switch {
			case errors.Is(err, errNotPiped):
				err = s.resultTx(ctx, fn)
			case errors.As(err, &later):
				// Only the profile work queues statements to go out
				// later (its item puts, the verifying ProfileList): its
				// failure, reported by the statement they went with.
				err = &ackFailedError{err: later.Err}
			}
			return err
		}
	}
	err := run(ctx, fn)
	var failed *ackFailedError
	if errors.As(err, &failed) {
		// The profile work failed where no savepoint kept the result
		// (ackInResult): the result and the next command again, alone.
		withAck, *got = false, store.ProfileAck{}
		err = run(ctx, fn)
	}
	if err != nil {
		return "", nil, err
	}
	if got != nil {
		ack.Done, ack.Queued, ack.Put = got.Done, got.Queued, got.Put
	}
	if nextInTx {
		return rt, q, nil
	}
	q, err = s.NextCommand(ctx, ref, channelID, false, now)
	if errors.Is(err, store.ErrNotFound) {
		return rt, nil, nil
	}
	// An error here fails the request although the result is stored:
	// the device sends it again, the repeat is ignored and the next
	// command comes with the answer.
	return rt, q, err
}

// answered lists the queue statuses of a command answered for good
// (recordResult: a result for it is a repeat or a contradiction).
const answered = `('` + mdm.Acknowledged + `', '` + mdm.Error + `', '` + mdm.CommandFormatError + `')`

// buildRecordCTESQL is recordResult's status read and result write as one
// statement (Dialect.WritableCTE: PostgreSQL): cur reads the queue row's
// status and request type as the read alone did (scoped to the enrollment
// ref), w writes the result unless cur's status makes recordResult keep
// the row as it is — answered for good (a repeat, or a contradiction that
// fails the transaction), or expired and the result a NotNow — and the
// statement answers cur's row (none: no such command for this ref, and
// nothing written). Both parts see the transaction's one snapshot, so the
// write decides exactly what the switch in recordResult decides from the
// same status. Arguments: the inventoryColumns boolean twice, channel id,
// uuid, ref, status, result, now (µs), channel id, uuid, status.
func buildRecordCTESQL() string {
	return `WITH cur AS (SELECT q.status, c.request_type, ` + inventoryColumns + ` FROM queue q JOIN commands c ON c.uuid = q.command_uuid
			JOIN channels ch ON ch.id = q.channel_id LEFT JOIN enrollments e ON e.id = ch.enrollment_ref
			WHERE q.channel_id = ? AND q.command_uuid = ? AND ch.enrollment_ref = ?),
		w AS (UPDATE queue SET status = CAST(? AS TEXT), result = ?, updated_at = CAST(? AS BIGINT) FROM cur
			WHERE queue.channel_id = ? AND queue.command_uuid = ? AND cur.status NOT IN ` + answered + `
			AND NOT (cur.status = '` + store.QueueExpired + `' AND CAST(? AS TEXT) = '` + mdm.NotNow + `'))
		SELECT status, request_type, inv_read, inventory FROM cur`
}

// inventoryColumns are what recordResult's status read adds: whether it
// read the enrollment's inventory (inv_read: the first argument is true —
// an Acknowledged result with an InventoryFunc — and the command's type
// is one of mdm.InventoryRequestTypes, and the enrollment e exists) and
// the inventory then (else NULL). So an answer that adds to the inventory
// needs no read of its own, and other answers (an InstallProfile's) do not
// carry the whole inventory back for nothing. Arguments: the boolean twice.
var inventoryColumns = func() string {
	read := `(CAST(? AS BOOLEAN) AND e.id IS NOT NULL AND c.request_type IN ('` + strings.Join(mdm.InventoryRequestTypes, `', '`) + `'))`
	return read + ` AS inv_read, CASE WHEN ` + read + ` THEN e.inventory END AS inventory`
}()

// recordReadSQL is recordResult's status read where the write is a
// statement of its own. Arguments: the inventoryColumns boolean twice,
// channel id, uuid, ref.
var recordReadSQL = `SELECT q.status, c.request_type, ` + inventoryColumns + ` FROM queue q JOIN commands c ON c.uuid = q.command_uuid
	JOIN channels ch ON ch.id = q.channel_id LEFT JOIN enrollments e ON e.id = ch.enrollment_ref
	WHERE q.channel_id = ? AND q.command_uuid = ? AND ch.enrollment_ref = ?`

// recordResult stores a device's result for command uuid in transaction
// tx and returns the command's request type: a repeat of the recorded
// answer changes nothing, a contradicting one is ErrConflict, an unknown
// command (or another enrollment's) ErrNotFound. With inv, an
// Acknowledged result's inventory section is written in the same
// transaction. On a WritableCTE dialect the read and the write are one
// statement (buildRecordCTESQL), elsewhere two.
func recordResult(ctx context.Context, tx *Tx, ref, channelID, uuid, status string, result []byte, now time.Time, inv store.InventoryFunc) (string, error) {
	var cur, rt string
	var invRead bool
	var raw []byte
	var err error
	wantInv := inv != nil && status == mdm.Acknowledged
	written := tx.d.WritableCTE
	if written {
		err = tx.row(ctx, recordCTESQL, wantInv, wantInv, channelID, uuid, ref, status, result, toMicros(now), channelID, uuid, status).
			Scan(&cur, &rt, &invRead, &raw)
	} else {
		err = tx.row(ctx, recordReadSQL, wantInv, wantInv, channelID, uuid, ref).Scan(&cur, &rt, &invRead, &raw)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("command %s for this enrollment %w", uuid, store.ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	switch cur {
	case mdm.Acknowledged, mdm.Error, mdm.CommandFormatError:
		// A repeated result is idempotent: the first one stands. A
		// different one contradicts it: refused, so that nothing acts on
		// it as the command's result (the profile reconciler's hook, the
		// result event).
		if status != cur {
			return rt, fmt.Errorf("%w: command %s was answered %s, not %s", store.ErrConflict, uuid, cur, status)
		}
		return rt, nil
	case store.QueueExpired:
		if status == mdm.NotNow {
			return rt, nil
		}
	}
	if !written { // else buildRecordCTESQL wrote it with the read
		if _, err = tx.ExecContext(ctx, `UPDATE queue SET status = ?, result = ?, updated_at = ? WHERE channel_id = ? AND command_uuid = ?`,
			status, result, toMicros(now), channelID, uuid); err != nil {
			return "", err
		}
	}
	if inv == nil || status != mdm.Acknowledged {
		return rt, nil
	}
	if section, data, info, ok := inv(rt); ok {
		if invRead {
			return rt, writeInventory(ctx, tx, ref, raw, section, data, info, now)
		}
		// A section for a type not in mdm.InventoryRequestTypes (another
		// InventoryFunc): read here.
		return rt, updateInventory(ctx, tx, ref, section, data, info, now)
	}
	return rt, nil
}

// claimIdempotencyKey inserts k with response and createdAt (µs) unless
// its (principal, key) is already stored, in which case it returns that
// record and inserts nothing. A concurrent request with the same key
// waits on the insert for the first to finish (on PostgreSQL by a
// serialization failure and the retry).
func (s *Store) claimIdempotencyKey(ctx context.Context, tx *Tx, k *store.IdempotencyKey, response []byte, createdAt int64) (*store.IdempotencyKey, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (`+idempotencyColumns+`) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (principal, idem_key) DO NOTHING`, k.Principal, k.Key, k.Fingerprint, response, createdAt, toMicros(k.ExpiresAt))
	if err != nil {
		return nil, s.constraint(err)
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return nil, err
	}
	return scanIdempotencyKey(tx.QueryRowContext(ctx, `SELECT `+idempotencyColumns+` FROM idempotency_keys
		WHERE principal = ? AND idem_key = ?`, k.Principal, k.Key))
}

func (s *Store) UpdateInventory(ctx context.Context, ref, section string, data any, info *store.DeviceInfo, now time.Time) error {
	return s.tx(ctx, func(tx *Tx) error { return updateInventory(ctx, tx, ref, section, data, info, now) })
}

// updateInventory replaces one section of the enrollment's inventory
// (a JSON object of sections, each {"data": …, "updated_at": RFC 3339})
// and the device fields info carries, in one statement. The other
// sections are kept as they are stored (not decoded and encoded again).
func updateInventory(ctx context.Context, tx *Tx, ref, section string, data any, info *store.DeviceInfo, now time.Time) error {
	var raw []byte
	err := tx.row(ctx, `SELECT inventory FROM enrollments WHERE id = ?`, ref).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("enrollment %w", store.ErrNotFound)
	}
	if err != nil {
		return err
	}
	return writeInventory(ctx, tx, ref, raw, section, data, info, now)
}

// writeInventory is updateInventory with the stored inventory raw
// already read in transaction tx.
func writeInventory(ctx context.Context, tx *Tx, ref string, raw []byte, section string, data any, info *store.DeviceInfo, now time.Time) error {
	inv := map[string]json.RawMessage{}
	if len(raw) > 0 && json.Unmarshal(raw, &inv) != nil {
		inv = map[string]json.RawMessage{}
	}
	sec, err := json.Marshal(map[string]any{"data": data, "updated_at": now.UTC().Format(time.RFC3339)})
	if err != nil {
		return err
	}
	inv[section] = sec
	b, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	if info == nil {
		info = &store.DeviceInfo{}
	}
	args := []any{b, toMicros(now), info.OSVersion, info.OSVersion, info.BuildVersion, info.BuildVersion, info.DeviceName, info.DeviceName,
		info.Model, info.Model, info.ModelName, info.ModelName, ref}
	if tx.deferWrites {
		// Nothing in the transaction reads the row back or checks the
		// write: it goes out with the next command's take (Tx.deferred).
		// One held back already (not so far: one section per answer)
		// goes first, so the writes keep their order.
		if err := tx.flushDeferred(ctx); err != nil {
			return err
		}
		tx.deferred = &deferredWrite{q: writeInventorySQL, args: args}
		return nil
	}
	_, err = tx.ExecContext(ctx, writeInventorySQL, args...)
	return err
}

// writeInventorySQL is writeInventory's UPDATE. Arguments: the inventory
// (JSON), updated_at (µs), OS version, build version, device name, model
// and model name each twice (an empty one keeps the stored value), ref.
const writeInventorySQL = `UPDATE enrollments SET inventory = ?, updated_at = ?,
		os_version = CASE WHEN ? <> '' THEN ? ELSE os_version END, build_version = CASE WHEN ? <> '' THEN ? ELSE build_version END,
		device_name = CASE WHEN ? <> '' THEN ? ELSE device_name END, model = CASE WHEN ? <> '' THEN ? ELSE model END,
		model_name = CASE WHEN ? <> '' THEN ? ELSE model_name END WHERE id = ?`

func (s *Store) SetUndeliverable(ctx context.Context, ref, channelID, uuid string, now time.Time) error {
	return s.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE queue SET status = ?, updated_at = ?
			WHERE channel_id = ? AND command_uuid = ? AND status IN `+claimable(true)+`
			AND EXISTS (SELECT 1 FROM channels ch WHERE ch.id = queue.channel_id AND ch.enrollment_ref = ?)`,
			store.QueueUndeliverable, toMicros(now), channelID, uuid, ref)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("claimable command %s on this channel %w", uuid, store.ErrNotFound)
		}
		return nil
	})
}

func (s *Store) QueuedCommands(ctx context.Context, channelID string, limit int) ([]store.QueuedCommand, error) {
	if limit <= 0 {
		limit = 100
	}
	if err := s.gc.settle(ctx); err != nil {
		return nil, err
	}
	return collect(ctx, s.r, scanQueued, `SELECT `+queuedColumns+` FROM queue q JOIN commands c ON c.uuid = q.command_uuid
		WHERE q.channel_id = ? ORDER BY q.seq DESC LIMIT ?`, channelID, limit)
}

// commandSummaryColumns are queuedColumns without the payload and vars,
// and the result only when it is at most the first argument's bytes
// (length() of a BLOB/bytea is read from its header or TOAST pointer: a
// large result is not read at all), then its length.
const commandSummaryColumns = `q.channel_id, q.command_uuid, c.request_type, c.created_at, c.expires_at, c.created_by, q.status,
	CASE WHEN COALESCE(length(q.result), 0) <= CAST(? AS BIGINT) THEN q.result END, COALESCE(length(q.result), 0), q.sent_at, q.updated_at, c.render`

func scanCommandSummary(sc scanner) (*store.QueuedCommand, error) {
	var q store.QueuedCommand
	var created, expires, sent, updated int64
	if err := sc.Scan(&q.ChannelID, &q.UUID, &q.RequestType, &created, &expires, &q.CreatedBy, &q.Status, &q.Result, &q.ResultSize, &sent, &updated, &q.Render); err != nil {
		return nil, err
	}
	q.CreatedAt, q.ExpiresAt, q.SentAt, q.UpdatedAt = fromMicros(created), fromMicros(expires), fromMicros(sent), fromMicros(updated)
	return &q, nil
}

func (s *Store) CommandSummaries(ctx context.Context, channelID string, limit, maxResult int) ([]store.QueuedCommand, error) {
	if limit <= 0 {
		limit = 100
	}
	if err := s.gc.settle(ctx); err != nil {
		return nil, err
	}
	return collect(ctx, s.r, scanCommandSummary, `SELECT `+commandSummaryColumns+` FROM queue q JOIN commands c ON c.uuid = q.command_uuid
		WHERE q.channel_id = ? ORDER BY q.seq DESC LIMIT ?`, max(maxResult, 0), channelID, limit)
}

// scannerFunc is a scanner from a function (a row scanned with more
// destinations than its scan function knows).
type scannerFunc func(dest ...any) error

func (f scannerFunc) Scan(dest ...any) error { return f(dest...) }

func (s *Store) ChannelCommand(ctx context.Context, ref, uuid string) (*store.QueuedCommand, string, error) {
	if err := s.gc.settle(ctx); err != nil { // a lazy sent mark (NextCommand)
		return nil, "", err
	}
	var kind string
	q, err := scanQueued(scannerFunc(func(dest ...any) error {
		return s.r.QueryRowContext(ctx, `SELECT `+queuedColumns+`, ch.kind FROM queue q JOIN commands c ON c.uuid = q.command_uuid
			JOIN channels ch ON ch.id = q.channel_id WHERE ch.enrollment_ref = ? AND q.command_uuid = ? ORDER BY q.seq DESC LIMIT 1`,
			ref, uuid).Scan(append(dest, &kind)...)
	}))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", fmt.Errorf("command %s of this enrollment %w", uuid, store.ErrNotFound)
	}
	if err != nil {
		return nil, "", err
	}
	q.ResultSize = len(q.Result)
	return q, kind, nil
}

func (s *Store) TargetChannels(ctx context.Context, f store.TargetFilter) ([]store.ChannelTarget, error) {
	// The rows of one query are distinct channels; only a union of
	// several (a tenant and users, chunks of a list) can repeat one, so
	// duplicates are removed once at the end, and only then (a map of
	// 100,000 ids for a tenant-wide command would be waste).
	queries := 0
	out := make([]store.ChannelTarget, 0, 64)
	base := `SELECT c.id, e.platform, c.push_token, c.push_magic, c.push_dead
		FROM channels c JOIN enrollments e ON e.id = c.enrollment_ref
		WHERE c.kind = 'device' AND e.status = 'enrolled' AND `
	run := func(where string, args ...any) error {
		queries++
		rows, err := s.r.QueryContext(ctx, base+where, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		var dead int
		for rows.Next() {
			// Scanned in place: no per-row copy.
			out = append(out, store.ChannelTarget{})
			t := &out[len(out)-1]
			if err := rows.Scan(&t.ChannelID, &t.Platform, &t.PushToken, &t.PushMagic, &dead); err != nil {
				return err
			}
			t.PushDead = dead != 0
		}
		return rows.Err()
	}
	if f.TenantID != "" {
		if err := run(`e.tenant_id = ?`, f.TenantID); err != nil {
			return nil, err
		}
	}
	// Lists go in chunks: SQLite bounds the number of parameters.
	chunks := func(ids []string, where func(n int) string) error {
		for i := 0; i < len(ids); i += 500 {
			part := ids[i:min(i+500, len(ids))]
			args := make([]any, 0, 2*len(part))
			for _, id := range part {
				args = append(args, id)
			}
			if err := run(where(len(part)), args...); err != nil {
				return err
			}
		}
		return nil
	}
	in := func(n int) string { return "(" + strings.TrimSuffix(strings.Repeat("?,", n), ",") + ")" }
	if err := chunks(f.UserIDs, func(n int) string { return `e.user_id IN ` + in(n) }); err != nil {
		return nil, err
	}
	var ours, apple []string
	for _, id := range f.EnrollmentIDs {
		if strings.HasPrefix(id, "en_") {
			ours = append(ours, id)
		} else {
			apple = append(apple, id)
		}
	}
	if err := chunks(ours, func(n int) string { return `e.id IN ` + in(n) }); err != nil {
		return nil, err
	}
	if err := chunks(apple, func(n int) string { return `e.apple_enrollment_id IN ` + in(n) }); err != nil {
		return nil, err
	}
	if queries > 1 {
		seen := make(map[string]struct{}, len(out))
		kept := out[:0]
		for _, t := range out {
			if _, dup := seen[t.ChannelID]; !dup {
				seen[t.ChannelID] = struct{}{}
				kept = append(kept, t)
			}
		}
		clear(out[len(kept):])
		out = kept
	}
	return out, nil
}

func (s *Store) WaitingChannels(ctx context.Context, waitingSince, pushedBefore time.Time, limit int) ([]store.Channel, error) {
	if err := s.gc.settle(ctx); err != nil { // a lazy sent mark (NextCommand)
		return nil, err
	}
	return collect(ctx, s.r, scanChannel, `SELECT `+channelColumns+` FROM channels WHERE push_dead = 0 AND push_magic <> '' AND last_push_at < ?
		AND id IN (SELECT channel_id FROM queue WHERE status IN ('queued', 'NotNow') AND updated_at < ?) ORDER BY last_push_at LIMIT ?`,
		toMicros(pushedBefore), toMicros(waitingSince), limit)
}

const idempotencyColumns = `principal, idem_key, fingerprint, response, created_at, expires_at`

func scanIdempotencyKey(sc scanner) (*store.IdempotencyKey, error) {
	var k store.IdempotencyKey
	var created, expires int64
	if err := sc.Scan(&k.Principal, &k.Key, &k.Fingerprint, &k.Response, &created, &expires); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("idempotency key %w", store.ErrNotFound)
		}
		return nil, err
	}
	k.CreatedAt, k.ExpiresAt = fromMicros(created), fromMicros(expires)
	return &k, nil
}

func (s *Store) IdempotencyKey(ctx context.Context, principal, key string, now time.Time) (*store.IdempotencyKey, error) {
	return scanIdempotencyKey(s.r.QueryRowContext(ctx, `SELECT `+idempotencyColumns+` FROM idempotency_keys
		WHERE principal = ? AND idem_key = ? AND expires_at > ?`, principal, key, toMicros(now)))
}

func (s *Store) EnqueueOnce(ctx context.Context, k *store.IdempotencyKey, cmd *store.CommandRecord, channelIDs []string) (*store.IdempotencyKey, error) {
	defer s.auth.queueWritten("") // after the commit: authCache's empty
	var existing *store.IdempotencyKey
	err := s.tx(ctx, func(tx *Tx) error {
		existing = nil
		now := toMicros(k.CreatedAt)
		if _, err := tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE principal = ? AND idem_key = ? AND expires_at <= ?`,
			k.Principal, k.Key, now); err != nil {
			return err
		}
		// The key goes in first: a concurrent request with the same key
		// waits here for the first to finish, then finds its record (on
		// PostgreSQL by a serialization failure and the retry).
		prior, err := s.claimIdempotencyKey(ctx, tx, k, k.Response, now)
		if err != nil || prior != nil {
			existing = prior
			return err
		}
		return s.enqueue(ctx, tx, cmd, channelIDs)
	})
	if err != nil {
		return nil, err
	}
	return existing, nil
}

func (s *Store) PurgeIdempotencyKeys(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE expires_at <= ?`, toMicros(now))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// targetFrom is the FROM and WHERE clause of f's targets, as
// TargetChannels selects them: enrollments e, enrolled, joined to their
// device channel c. A tenant alone is one range of enrollments_targets;
// with lists, the selected enrollment ids are a UNION first (each once),
// each part on its own index, and the join starts from them: as one
// disjunction in WHERE, SQLite walked every enrolled enrollment instead.
// Lists are parameters (store.TargetListMax at most).
func targetFrom(f store.TargetFilter) (string, []any, error) {
	if n := len(f.UserIDs) + len(f.EnrollmentIDs); n > store.TargetListMax {
		return "", nil, fmt.Errorf("bulk targets: %d ids, at most %d in one statement", n, store.TargetListMax)
	}
	const join = ` JOIN channels c ON c.enrollment_ref = e.id WHERE c.kind = 'device' AND e.status = 'enrolled'`
	if len(f.UserIDs) == 0 && len(f.EnrollmentIDs) == 0 {
		if f.TenantID == "" {
			return "", nil, errors.New("bulk targets: empty filter")
		}
		return ` FROM enrollments e` + join + ` AND e.tenant_id = ?`, []any{f.TenantID}, nil
	}
	var parts []string
	var args []any
	in := func(col string, ids []string) {
		if len(ids) == 0 {
			return
		}
		parts = append(parts, `SELECT id FROM enrollments WHERE `+col+` IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ")+`)`)
		for _, id := range ids {
			args = append(args, id)
		}
	}
	if f.TenantID != "" {
		parts = append(parts, `SELECT id FROM enrollments WHERE tenant_id = ?`)
		args = append(args, f.TenantID)
	}
	in(`user_id`, f.UserIDs)
	var ours, apple []string
	for _, id := range f.EnrollmentIDs {
		if strings.HasPrefix(id, "en_") {
			ours = append(ours, id)
		} else {
			apple = append(apple, id)
		}
	}
	in(`id`, ours)
	in(`apple_enrollment_id`, apple)
	return ` FROM (` + strings.Join(parts, " UNION ") + `) sel JOIN enrollments e ON e.id = sel.id` + join, args, nil
}

// EnqueueTargets queues cmd for f's targets with one INSERT … SELECT from
// the enrollment–channel join: no channel id goes to Go and back (a
// tenant of 100,000 devices was 100,000 rows read, then 200 statements of
// 500 rows bound again on SQLite). The count per platform that plan
// needs is one grouped read of the same join, in the same transaction,
// so the rows written are exactly the ones counted (SQLite: one writer;
// PostgreSQL: one SERIALIZABLE snapshot).
func (s *Store) EnqueueTargets(ctx context.Context, k *store.IdempotencyKey, cmd *store.CommandRecord, f store.TargetFilter,
	plan store.BulkPlan) (int, *store.IdempotencyKey, error) {
	defer s.auth.queueWritten("") // after the commit: authCache's empty
	from, wargs, err := targetFrom(f)
	if err != nil {
		return 0, nil, err
	}
	var queued int
	var existing *store.IdempotencyKey
	// Alone: up to every enrollment's queue row in one statement (txAlone).
	err = s.txAlone(ctx, func(tx *Tx) error {
		queued, existing = 0, nil
		if k != nil {
			if _, err := tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE principal = ? AND idem_key = ? AND expires_at <= ?`,
				k.Principal, k.Key, toMicros(k.CreatedAt)); err != nil {
				return err
			}
		}
		counts := map[string]int{}
		rows, err := tx.QueryContext(ctx, `SELECT e.platform, COUNT(*)`+from+` GROUP BY e.platform`, wargs...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var p string
			var n int
			if err := rows.Scan(&p, &n); err != nil {
				rows.Close()
				return err
			}
			counts[p] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		platforms, answer, err := plan(counts)
		if err != nil {
			return err
		}
		want := 0
		for _, p := range platforms {
			want += counts[p]
		}
		if k != nil {
			// As EnqueueOnce: a concurrent request with the same key
			// waits here for the first to finish, then finds its record.
			prior, err := s.claimIdempotencyKey(ctx, tx, k, answer, toMicros(k.CreatedAt))
			if err != nil || prior != nil {
				existing = prior
				return err
			}
			k.Response = answer
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO commands (uuid, request_type, payload, created_at, expires_at, created_by) VALUES (?, ?, ?, ?, ?, ?)`,
			cmd.UUID, cmd.RequestType, cmd.Payload, toMicros(cmd.CreatedAt), toMicros(cmd.ExpiresAt), cmd.CreatedBy); err != nil {
			return s.constraint(err)
		}
		if want > 0 {
			// The rows' channels differ: one seq for all (as a batch in
			// enqueue).
			seq, err := s.batchSeq(ctx, tx)
			if err != nil {
				return err
			}
			args := append(make([]any, 0, 4+len(wargs)+len(platforms)), cmd.UUID, seq, store.QueueQueued, toMicros(cmd.CreatedAt))
			args = append(args, wargs...)
			for _, p := range platforms {
				args = append(args, p)
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO queue (channel_id, command_uuid, seq, status, updated_at)
				SELECT c.id, CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS BIGINT)`+from+
				` AND e.platform IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(platforms)), ", ")+`)`, args...)
			if err != nil {
				return s.constraint(err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if int(n) != want {
				// Cannot happen in one transaction; refuse rather than
				// answer a count that is not what was queued.
				return fmt.Errorf("bulk enqueue: counted %d targets, queued %d", want, n)
			}
			queued = int(n)
		}
		if cmd.Audit != nil {
			return appendAudit(ctx, tx, cmd.Audit)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return queued, existing, nil
}

// batchSeq is the seq of a batch of queue rows for distinct channels, in
// transaction tx: the store's counter (SQLite; started above every seq in
// the queue once per process) or the database's clock.
func (s *Store) batchSeq(ctx context.Context, tx *Tx) (int64, error) {
	if s.d.SeqClock != "" {
		var seq int64
		err := tx.QueryRowContext(ctx, `SELECT `+s.d.SeqClock).Scan(&seq)
		return seq, err
	}
	if !s.seqs.started() {
		var last int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM queue`).Scan(&last); err != nil {
			return 0, err
		}
		s.seqs.start(last)
	}
	return s.seqs.next(), nil
}
