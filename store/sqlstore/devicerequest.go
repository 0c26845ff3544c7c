package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/pomona-mdm/pomona/store"
)

const identityCertColumns = `serial, enrollment_id, sha256, not_before, not_after, issued_at, renewed_from, revoked_at, revoked_reason`

const accessTokenColumns = `hash, user_id, tenant_id, created_at, expires_at, enrollment_id, revoked_at`

// deviceRequestEnrollmentColumns and deviceRequestUserColumns are the
// enrollment and user columns the MDM channel decides on: enrollmentColumns
// without machine_info and inventory (blobs that grow with the device's
// answers), userColumns without the credentials. Every column costs the
// driver a name, a declared type and a value per statement (the idle poll's
// largest share of allocations, docs/benchmarks.md, session 5).
const (
	deviceRequestEnrollmentColumns = `id, tenant_id, user_id, platform, product, os_version, build_version,
	language, device_signature, profile_id, status, created_at, updated_at,
	COALESCE(apple_enrollment_id, ''), device_name, model, model_name, enrolled_at, unenrolled_at, last_seen_at, predecessor_id`
	deviceRequestUserColumns = `id, tenant_id, email, managed_apple_id, name, enabled, tokens_not_before, created_at, updated_at, last_sign_in_at`
)

// deviceRequestSQL joins an identity certificate to its enrollment and
// user (inner joins: all three must exist) and, by their keys, to the
// bearer's access token and the message's channel (left joins: either may
// be missing, their columns are then NULL). Its last column says whether
// the channel has a command an Idle poll would be handed
// (commandWaitingSQL).
// Its columns are named with one letter (oneLetterNames; the row is read
// by position): the SQLite driver copies every result column's name into
// a new Go string on every execution, and a one-byte string is never
// allocated (61 allocations fewer per result).
var deviceRequestSQL = `SELECT ` + oneLetterNames(qualify("ic", identityCertColumns)+`, `+qualify("e", deviceRequestEnrollmentColumns)+`, `+
	qualify("u", deviceRequestUserColumns)+`, `+qualify("t", accessTokenColumns)+`, `+qualify("c", channelColumns)+`,
	`+commandWaitingSQL) + deviceRequestFrom

// deviceRequestIdleSQL is deviceRequestSQL for an Idle poll
// (store.DeviceRequestQuery.Idle): the same joins, 18 of its 61 columns —
// what store.DeviceRequest lists for Idle, less what the query itself
// names (serial, token hash, channel kind and user id) or a join repeats
// (the enrollment's and the user's ids). t.user_id is never NULL in a
// token row: NULL there says no token was found. Each column is named
// with one letter: the SQLite driver copies every result column's name
// into a new Go string on every execution, and a string of one byte is
// never allocated (18 allocations fewer per idle poll); the row is read
// by position.
const deviceRequestIdleSQL = `SELECT ic.enrollment_id AS a, ic.revoked_at AS b,
	e.tenant_id AS c, e.user_id AS d, e.platform AS e, e.status AS f, COALESCE(e.apple_enrollment_id, '') AS g,
	u.enabled AS h, u.tokens_not_before AS i,
	t.user_id AS j, t.tenant_id AS k, t.created_at AS l, t.expires_at AS m, t.enrollment_id AS n, t.revoked_at AS o,
	c.id AS p, c.last_seen_at AS q,
	` + commandWaitingSQL + ` AS r, `

// deviceRequestIdleGen is deviceRequestIdleSQL's last column: the
// auth_generation count the row was read under (authCache; SQLite,
// Dialect.AuthGeneration), read in the same statement so that a row and
// its count are one snapshot; 0 elsewhere.
const (
	deviceRequestIdleGen   = `(SELECT gen FROM auth_generation WHERE id = 1) AS s`
	deviceRequestIdleNoGen = `0 AS s`
)

// commandWaitingSQL says whether channel c has a command an Idle poll
// would be handed (the statuses of NextCommand after an Idle), so that an
// idle poll with an empty queue is one statement; CASE keeps it an integer
// on both backends. One EXISTS per status, not status IN (…): SQLite
// answers an IN list on an index column with an ephemeral table built per
// execution, three index seeks cost less.
const commandWaitingSQL = `CASE WHEN EXISTS (SELECT 1 FROM queue q WHERE q.channel_id = c.id AND q.status = 'queued')
		OR EXISTS (SELECT 1 FROM queue q WHERE q.channel_id = c.id AND q.status = 'sent')
		OR EXISTS (SELECT 1 FROM queue q WHERE q.channel_id = c.id AND q.status = 'NotNow') THEN 1 ELSE 0 END`

// deviceRequestFrom is the joins of both reads; its parameters are the
// token hash, the channel kind and enrollment user id, the serial.
const deviceRequestFrom = `
	FROM identity_certs ic
	JOIN enrollments e ON e.id = ic.enrollment_id
	JOIN users u ON u.id = e.user_id
	LEFT JOIN access_tokens t ON t.hash = ?
	LEFT JOIN channels c ON c.enrollment_ref = e.id AND c.kind = ? AND c.enrollment_user_id = ?
	WHERE ic.serial = ?`

// The column counts of deviceRequestSQL's parts, counted once.
var (
	drCertN, drEnrN, drUserN = columnCount(identityCertColumns), columnCount(deviceRequestEnrollmentColumns), columnCount(deviceRequestUserColumns)
	drTokN, drChN            = columnCount(accessTokenColumns), columnCount(channelColumns)
	drN                      = drCertN + drEnrN + drUserN + drTokN + drChN + 1
)

// DeviceRequest reads an MDM request's sender in one statement.
func (s *Store) DeviceRequest(ctx context.Context, q store.DeviceRequestQuery) (*store.DeviceRequest, error) {
	hash := q.TokenHash
	if hash == nil {
		hash = []byte{} // matches no token (a NULL parameter is typed differently by each driver)
	}
	ctx = s.hot(ctx) // Dialect.DetachHotReads says why
	if q.Idle {
		return s.deviceRequestIdle(ctx, q, hash)
	}
	buf := make([]any, 2*drN) // the values, then pointers to them: one allocation
	vals, ptrs := buf[:drN:drN], buf[drN:]
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	err := s.r.QueryRowContext(ctx, deviceRequestSQL, hash, q.ChannelKind, q.EnrollmentUserID, q.Serial).Scan(ptrs...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("device request %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	r := &store.DeviceRequest{}
	ic, rest := vals[:drCertN], vals[drCertN:]
	var nb, na, issued, revoked int64
	if err := (&valueScanner{v: ic}).Scan(&r.IdentityCert.Serial, &r.IdentityCert.DeviceID, &r.IdentityCert.SHA256, &nb, &na, &issued,
		&r.IdentityCert.RenewedFrom, &revoked, &r.IdentityCert.RevokedReason); err != nil {
		return nil, err
	}
	r.IdentityCert.NotBefore, r.IdentityCert.NotAfter, r.IdentityCert.IssuedAt, r.IdentityCert.RevokedAt = fromMicros(nb), fromMicros(na), fromMicros(issued), fromMicros(revoked)
	if err := scanRequestEnrollment(&valueScanner{v: rest[:drEnrN]}, &r.Enrollment); err != nil {
		return nil, err
	}
	rest = rest[drEnrN:]
	if err := scanRequestUser(&valueScanner{v: rest[:drUserN]}, &r.User); err != nil {
		return nil, err
	}
	rest = rest[drUserN:]
	if tok := rest[:drTokN]; tok[0] != nil {
		var t store.AccessToken
		var created, expires, revoked int64
		if err := (&valueScanner{v: tok}).Scan(&t.Hash, &t.UserID, &t.TenantID, &created, &expires, &t.DeviceID, &revoked); err != nil {
			return nil, err
		}
		t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromMicros(created), fromMicros(expires), fromMicros(revoked)
		r.AccessToken = &t
	}
	rest = rest[drTokN:]
	if ch := rest[:drChN]; ch[0] != nil {
		c, err := scanChannel(&valueScanner{v: ch})
		if err != nil {
			return nil, err
		}
		r.Channel = c
		var waiting int64
		if err := assign(&waiting, rest[drChN]); err != nil {
			return nil, err
		}
		r.CommandWaiting = waiting != 0
	}
	return r, nil
}

// idleRow is deviceRequestIdleSQL's row, scanned into typed fields (no
// value boxed in an interface on the way): the left-joined columns of
// the token and the channel are NULL when there is none.
type idleRow struct {
	r                                          store.DeviceRequest
	revoked, notBefore, enabled, waiting       int64
	tokUser, tokTenant, tokDevice, chID        sql.NullString
	tokCreated, tokExpires, tokRevoked, chSeen sql.NullInt64
}

// deviceRequestIdle is DeviceRequest with q.Idle: the fields
// store.DeviceRequest lists for Idle, from what the store remembers of
// the sender (authCache) or else deviceRequestIdleSQL, whose row it then
// remembers.
func (s *Store) deviceRequestIdle(ctx context.Context, q store.DeviceRequestQuery, hash []byte) (*store.DeviceRequest, error) {
	key := authKey(q)
	if r, ok, err := s.cachedDeviceRequest(ctx, q, key); ok || err != nil {
		return r, err
	}
	gen, qgen, remember := s.authBegin()
	row := &idleRow{}
	r := &row.r
	var dbGen int64
	err := s.r.QueryRowContext(ctx, s.idleQ, hash, q.ChannelKind, q.EnrollmentUserID, q.Serial).Scan(
		&r.IdentityCert.DeviceID, &row.revoked,
		&r.Enrollment.TenantID, &r.Enrollment.UserID, &r.Enrollment.Platform, &r.Enrollment.Status, &r.Enrollment.AppleEnrollmentID,
		&row.enabled, &row.notBefore,
		&row.tokUser, &row.tokTenant, &row.tokCreated, &row.tokExpires, &row.tokDevice, &row.tokRevoked,
		&row.chID, &row.chSeen, &row.waiting, &dbGen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("device request %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	r.IdentityCert.Serial, r.IdentityCert.RevokedAt = q.Serial, fromMicros(row.revoked)
	r.Enrollment.ID = r.IdentityCert.DeviceID
	r.User.ID, r.User.Enabled, r.User.TokensNotBefore = r.Enrollment.UserID, row.enabled != 0, fromMicros(row.notBefore)
	if row.tokUser.Valid {
		r.AccessToken = &store.AccessToken{Hash: q.TokenHash, UserID: row.tokUser.String, TenantID: row.tokTenant.String,
			CreatedAt: fromMicros(row.tokCreated.Int64), ExpiresAt: fromMicros(row.tokExpires.Int64), DeviceID: row.tokDevice.String,
			RevokedAt: fromMicros(row.tokRevoked.Int64)}
	}
	if row.chID.Valid {
		r.Channel = &store.Channel{ID: row.chID.String, DeviceID: r.Enrollment.ID, Kind: q.ChannelKind, EnrollmentUserID: q.EnrollmentUserID,
			LastSeenAt: fromMicros(row.chSeen.Int64)}
		r.CommandWaiting = row.waiting != 0
	}
	if remember {
		e := &authEntry{gen: uint64(dbGen), deviceID: r.IdentityCert.DeviceID, tenantID: r.Enrollment.TenantID, userID: r.Enrollment.UserID,
			platform: r.Enrollment.Platform, status: r.Enrollment.Status, appleID: r.Enrollment.AppleEnrollmentID,
			revoked: row.revoked, notBefore: row.notBefore, enabled: row.enabled != 0, chID: row.chID.String, chSeen: row.chSeen.Int64}
		if row.tokUser.Valid {
			e.tok, e.tokCreated, e.tokExpires, e.tokRevoked = true, row.tokCreated.Int64, row.tokExpires.Int64, row.tokRevoked.Int64
			e.tokUser, e.tokTenant, e.tokDevice = same(e.userID, row.tokUser.String), same(e.tenantID, row.tokTenant.String), same(e.deviceID, row.tokDevice.String)
		}
		s.authRemember(key, e, gen)
		if !s.d.AuthGeneration && row.chID.Valid && row.waiting == 0 && !q.NoWaiting {
			s.auth.sawEmpty(row.chID.String, qgen)
		}
	}
	return r, nil
}

// scanRequestEnrollment reads deviceRequestEnrollmentColumns into e.
func scanRequestEnrollment(sc scanner, e *store.Enrollment) error {
	var created, updated, enrolled, unenrolled, seen int64
	if err := sc.Scan(&e.ID, &e.TenantID, &e.UserID, &e.Platform, &e.Product, &e.OSVersion, &e.BuildVersion,
		&e.Language, &e.DeviceSignature, &e.ProfileID, &e.Status, &created, &updated,
		&e.AppleEnrollmentID, &e.DeviceName, &e.Model, &e.ModelName, &enrolled, &unenrolled, &seen, &e.PredecessorID); err != nil {
		return err
	}
	e.CreatedAt, e.UpdatedAt = fromMicros(created), fromMicros(updated)
	e.EnrolledAt, e.UnenrolledAt, e.LastSeenAt = fromMicros(enrolled), fromMicros(unenrolled), fromMicros(seen)
	return nil
}

// scanRequestUser reads deviceRequestUserColumns into u.
func scanRequestUser(sc scanner, u *store.User) error {
	var enabled int
	var notBefore, created, updated, lastSignIn int64
	if err := sc.Scan(&u.ID, &u.TenantID, &u.Email, &u.ManagedAppleID, &u.Name, &enabled, &notBefore, &created, &updated, &lastSignIn); err != nil {
		return err
	}
	u.Enabled = enabled != 0
	u.TokensNotBefore = fromMicros(notBefore)
	u.CreatedAt, u.UpdatedAt, u.LastSignInAt = fromMicros(created), fromMicros(updated), fromMicros(lastSignIn)
	return nil
}

// columnCount is the number of columns in a column list.
func columnCount(columns string) int { return len(splitColumns(columns)) }

// splitColumns splits a column list at its top-level commas.
func splitColumns(columns string) []string {
	depth, start := 0, 0
	var items []string
	for i, r := range columns {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				items = append(items, columns[start:i])
				start = i + 1
			}
		}
	}
	return append(items, columns[start:])
}

// oneLetterNames names each column of a column list with one letter,
// a to z and again (a result may repeat a name, on both backends).
func oneLetterNames(columns string) string {
	items := splitColumns(columns)
	for i, it := range items {
		items[i] = strings.TrimSpace(it) + " AS " + string(rune('a'+i%26))
	}
	return strings.Join(items, ", ")
}

// qualify prefixes every column of a column list with alias (also inside
// a COALESCE(column, …)).
func qualify(alias, columns string) string {
	var out []string
	for _, it := range splitColumns(columns) {
		it = strings.TrimSpace(it)
		if rest, ok := strings.CutPrefix(it, "COALESCE("); ok {
			it = "COALESCE(" + alias + "." + rest
		} else {
			it = alias + "." + it
		}
		out = append(out, it)
	}
	return strings.Join(out, ", ")
}

// valueScanner feeds driver values already read (int64, string, []byte,
// nil) to a scan function written for a row: a NULL becomes the zero value.
type valueScanner struct{ v []any }

func (s *valueScanner) Scan(dest ...any) error {
	if len(dest) != len(s.v) {
		return fmt.Errorf("sqlstore: %d values for %d destinations", len(s.v), len(dest))
	}
	for i, d := range dest {
		if err := assign(d, s.v[i]); err != nil {
			return fmt.Errorf("sqlstore: column %d: %w", i, err)
		}
	}
	return nil
}

func assign(dest, v any) error {
	switch d := dest.(type) {
	case *string:
		switch x := v.(type) {
		case nil:
			*d = ""
		case string:
			*d = x
		case []byte:
			*d = string(x)
		default:
			return fmt.Errorf("%T into string", v)
		}
	case *[]byte:
		switch x := v.(type) {
		case nil:
			*d = nil
		case []byte:
			*d = x // database/sql copied it already (Scan into *any)
		case string:
			*d = []byte(x)
		default:
			return fmt.Errorf("%T into []byte", v)
		}
	case *int64:
		switch x := v.(type) {
		case nil:
			*d = 0
		case int64:
			*d = x
		default:
			return fmt.Errorf("%T into int64", v)
		}
	case *int:
		switch x := v.(type) {
		case nil:
			*d = 0
		case int64:
			*d = int(x)
		default:
			return fmt.Errorf("%T into int", v)
		}
	default:
		return fmt.Errorf("unsupported destination %T", dest)
	}
	return nil
}
