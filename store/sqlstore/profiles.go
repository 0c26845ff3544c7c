package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// Groups.

const groupColumns = `g.id, g.tenant_id, g.name, g.source, g.created_at, g.updated_at,
	CASE WHEN g.source = 'all' THEN (SELECT COUNT(*) FROM users u WHERE u.tenant_id = g.tenant_id)
	ELSE (SELECT COUNT(*) FROM user_group_members m WHERE m.group_id = g.id) END`

func scanGroup(sc scanner) (*store.Group, error) {
	var g store.Group
	var c, u int64
	err := sc.Scan(&g.ID, &g.TenantID, &g.Name, &g.Source, &c, &u, &g.Members)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("group %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	g.CreatedAt, g.UpdatedAt = fromMicros(c), fromMicros(u)
	return &g, nil
}

func (s *Store) CreateGroup(ctx context.Context, g *store.Group) error {
	if g.Source == "" {
		g.Source = store.GroupStatic
	}
	return s.tx(ctx, func(tx *Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tenants WHERE id = ?`, g.TenantID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("tenant %w", store.ErrNotFound)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO user_groups (id, tenant_id, name, source, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
			g.ID, g.TenantID, g.Name, g.Source, toMicros(g.CreatedAt), toMicros(g.UpdatedAt))
		return s.constraint(err)
	})
}

func (s *Store) AllUsersGroup(ctx context.Context, tenantID string, now time.Time) (*store.Group, error) {
	g, err := scanGroup(s.r.QueryRowContext(ctx, `SELECT `+groupColumns+` FROM user_groups g WHERE g.tenant_id = ? AND g.source = 'all'`, tenantID))
	if !errors.Is(err, store.ErrNotFound) {
		return g, err
	}
	ng := &store.Group{ID: "gr_all_" + tenantID, TenantID: tenantID, Name: store.AllUsersName, Source: store.GroupAllUsers, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateGroup(ctx, ng); err != nil && !errors.Is(err, store.ErrConflict) {
		return nil, err
	}
	return scanGroup(s.r.QueryRowContext(ctx, `SELECT `+groupColumns+` FROM user_groups g WHERE g.tenant_id = ? AND g.source = 'all'`, tenantID))
}

func (s *Store) Group(ctx context.Context, id string) (*store.Group, error) {
	return scanGroup(s.r.QueryRowContext(ctx, `SELECT `+groupColumns+` FROM user_groups g WHERE g.id = ?`, id))
}

func (s *Store) Groups(ctx context.Context, tenantID string) ([]store.Group, error) {
	return collect(ctx, s.r, scanGroup, `SELECT `+groupColumns+` FROM user_groups g WHERE g.tenant_id = ? ORDER BY g.source = 'all' DESC, g.name`, tenantID)
}

func (s *Store) RenameGroup(ctx context.Context, id, name string, now time.Time) (*store.Group, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE user_groups SET name = ?, updated_at = ? WHERE id = ?`, name, toMicros(now), id)
	if err != nil {
		return nil, s.constraint(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, fmt.Errorf("group %w", store.ErrNotFound)
	}
	return s.Group(ctx, id)
}

func (s *Store) DeleteGroup(ctx context.Context, id string, now time.Time) error {
	return s.tx(ctx, func(tx *Tx) error {
		if err := markGroup(ctx, tx, id, now); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM user_groups WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("group %w", store.ErrNotFound)
		}
		return nil
	})
}

func (s *Store) AddGroupMembers(ctx context.Context, groupID string, userIDs []string, now time.Time) (int, error) {
	added := 0
	err := s.tx(ctx, func(tx *Tx) error {
		added = 0
		var tenant, source string
		err := tx.QueryRowContext(ctx, `SELECT tenant_id, source FROM user_groups WHERE id = ?`, groupID).Scan(&tenant, &source)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("group %w", store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if source != store.GroupStatic {
			return fmt.Errorf("%w: the members of a %s group are not managed in Pomona", store.ErrConflict, source)
		}
		for _, uid := range userIDs {
			var ut string
			err := tx.QueryRowContext(ctx, `SELECT tenant_id FROM users WHERE id = ?`, uid).Scan(&ut)
			if errors.Is(err, sql.ErrNoRows) || err == nil && ut != tenant {
				return fmt.Errorf("user %s %w in the group's tenant", uid, store.ErrNotFound)
			}
			if err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO user_group_members (group_id, user_id) VALUES (?, ?) ON CONFLICT (group_id, user_id) DO NOTHING`, groupID, uid)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				added++
				if err := markWhere(ctx, tx, `e.user_id = ?`, now, uid); err != nil {
					return err
				}
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE user_groups SET updated_at = ? WHERE id = ?`, toMicros(now), groupID)
		return err
	})
	return added, err
}

func (s *Store) RemoveGroupMember(ctx context.Context, groupID, userID string, now time.Time) error {
	return s.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM user_group_members WHERE group_id = ? AND user_id = ?`, groupID, userID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("membership %w", store.ErrNotFound)
		}
		return markWhere(ctx, tx, `e.user_id = ?`, now, userID)
	})
}

func (s *Store) GroupMembers(ctx context.Context, groupID, after string, limit int) ([]store.User, error) {
	if limit <= 0 {
		limit = 100
	}
	g, err := s.Group(ctx, groupID)
	if err != nil {
		return nil, err
	}
	if g.Source == store.GroupAllUsers {
		return collect(ctx, s.r, scanUser, `SELECT `+userColumns+` FROM users WHERE tenant_id = ? AND email > ? ORDER BY email LIMIT ?`, g.TenantID, after, limit)
	}
	return collect(ctx, s.r, scanUser, `SELECT `+userColumns+` FROM users WHERE id IN (SELECT user_id FROM user_group_members WHERE group_id = ?)
		AND email > ? ORDER BY email LIMIT ?`, groupID, after, limit)
}

func (s *Store) UserGroups(ctx context.Context, userID string) ([]store.Group, error) {
	return collect(ctx, s.r, scanGroup, `SELECT `+groupColumns+` FROM user_groups g
		WHERE g.id IN (SELECT group_id FROM user_group_members WHERE user_id = ?) ORDER BY g.name`, userID)
}

// Dirty marking: every change queues exactly the enrolled devices it may
// concern, in the caller's transaction, with one INSERT … SELECT.

const markSQL = `INSERT INTO reconcile_queue (enrollment_id, due_at, verify, gen)
	SELECT e.id, ?, 0, 1 FROM enrollments e WHERE e.status = 'enrolled' AND (%s) ORDER BY e.id
	ON CONFLICT (enrollment_id) DO UPDATE SET gen = reconcile_queue.gen + 1,
	due_at = CASE WHEN excluded.due_at < reconcile_queue.due_at THEN excluded.due_at ELSE reconcile_queue.due_at END`

func markWhere(ctx context.Context, tx *Tx, cond string, due time.Time, args ...any) error {
	res, err := tx.ExecContext(ctx, fmt.Sprintf(markSQL, cond), append([]any{toMicros(due)}, args...)...)
	if err != nil || tx.d.AnalyzeAfter == 0 {
		return err
	}
	// Fresh statistics for the claims that drain what was just marked
	// (Dialect.AnalyzeAfter).
	if n, err := res.RowsAffected(); err == nil && n >= tx.d.AnalyzeAfter && !slices.Contains(tx.analyze, "reconcile_queue") {
		tx.analyze = append(tx.analyze, "reconcile_queue")
	}
	return nil
}

// The conditions of the two kinds of large marking (every parameter is
// the group's or the profile's id).
const (
	// groupCond: the devices of a group's users.
	groupCond = `e.user_id IN (SELECT user_id FROM user_group_members WHERE group_id = ?)
		OR e.tenant_id IN (SELECT tenant_id FROM user_groups WHERE id = ? AND source = 'all')`
	// profileCond: the devices of every group the profile is assigned
	// to, and those that have an item of it.
	profileCond = `e.user_id IN (SELECT m.user_id FROM user_group_members m JOIN profile_assignments a ON a.group_id = m.group_id WHERE a.profile_id = ?)
		OR e.tenant_id IN (SELECT g.tenant_id FROM user_groups g JOIN profile_assignments a ON a.group_id = g.id WHERE a.profile_id = ? AND g.source = 'all')
		OR e.id IN (SELECT enrollment_id FROM profile_items WHERE profile_id = ?)`
)

// Kinds of a pending expansion (reconcile_expansions.kind).
const (
	expandGroup   = "group"
	expandProfile = "profile"
)

// markCond is the condition of an expansion kind and its parameters.
func markCond(kind, target string) (string, []any, error) {
	switch kind {
	case expandGroup:
		return groupCond, []any{target, target}, nil
	case expandProfile:
		return profileCond, []any{target, target, target}, nil
	}
	return "", nil, fmt.Errorf("sqlstore: unknown reconcile expansion kind %q", kind)
}

// markGroup marks the devices of a group's users, all of them in tx
// (DeleteGroup: the condition is gone once tx commits).
func markGroup(ctx context.Context, tx *Tx, groupID string, due time.Time) error {
	return markWhere(ctx, tx, groupCond, due, groupID, groupID)
}

// markProfile marks the devices of every group the profile is assigned
// to, and those that have an item of it, all of them in tx
// (DeleteProfile: its assignments go in tx).
func markProfile(ctx context.Context, tx *Tx, profileID string, due time.Time) error {
	return markWhere(ctx, tx, profileCond, due, profileID, profileID, profileID)
}

// markRangeSQL is markSQL for the enrollments whose id lies in (?, ?]:
// one chunk of an expansion. The range is walked on enrollments' primary
// key, in id order (no sort). The status test is written so that no
// index can serve it: without statistics (a fleet seeded or enrolled
// since the last ANALYZE) PostgreSQL estimated status = 'enrolled' at a
// few dozen rows and read every enrolled device through
// enrollments_status_last_seen, then sorted them, for each chunk
// (0.12–0.3 s per 1,000-device chunk at 20,000 devices at load 32:
// quadratic in the fleet; "Session 13 — pgassign5", docs/benchmarks.md).
//
// Its rows are written claimed by claimed_by until claimed_until (the
// 2nd and 3rd parameters; empty and 0: unclaimed): an expansion's chunk is
// marked by a claimer, and a row it inserts is its claim at once
// (chunkClaim, markChunk). A row already queued keeps its claim: the upsert
// touches only gen and due_at, as every marking does.
const markRangeSQL = `INSERT INTO reconcile_queue (enrollment_id, due_at, verify, gen, claimed_by, claimed_until)
	SELECT e.id, ?, 0, 1, ?, ? FROM enrollments e WHERE e.id > ? AND e.id <= ? AND (e.status = 'enrolled') IS TRUE AND (%s) ORDER BY e.id
	ON CONFLICT (enrollment_id) DO UPDATE SET gen = reconcile_queue.gen + 1,
	due_at = CASE WHEN excluded.due_at < reconcile_queue.due_at THEN excluded.due_at ELSE reconcile_queue.due_at END`

// chunkClaim is who claims the rows a chunk inserts (markChunk): the
// claim's holder, until when, and when it claims (a chunk whose due time
// is later than now is marked unclaimed, as any marking). The zero value
// claims nothing.
type chunkClaim struct {
	holder string
	now    time.Time
	until  time.Time
}

// markChunk marks, among the next limit enrollments after the cursor
// after (by id, in the database's order; any status), the enrolled ones
// meeting cond. It returns how many enrollments the range held (fewer
// than limit: the range reached the last enrollment, nothing is left to
// mark after it), the range's last id (the next cursor) and how many
// queue rows it wrote. The range, not the matches, makes a chunk: its
// cost is limit index entries whatever the condition selects.
//
// With a claim (cl.holder set and the chunk due at cl.now), the rows the
// chunk inserts are claimed by cl.holder in the same statement and come
// back as claimed (one DirtyEnrollment each, gen 1): marking and claiming
// a fresh device is one row write, where a claim after the mark updated
// every row again. Rows the chunk found already queued (gen moved past 1)
// are not claimed: another holder may hold them, or they are due later;
// the claims take them as any marked row.
func markChunk(ctx context.Context, tx *Tx, cond string, args []any, due time.Time, after string, limit int, cl chunkClaim) (n int, last string, marked int64, claimed []store.DirtyEnrollment, err error) {
	if q := tx.d.ChunkRangeByIndex[0]; q != "" {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return 0, "", 0, nil, err
		}
	}
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MAX(id), '') FROM (SELECT id FROM enrollments WHERE id > ? ORDER BY id LIMIT ?) r`,
		after, limit).Scan(&n, &last); err != nil {
		return 0, "", 0, nil, err
	}
	if q := tx.d.ChunkRangeByIndex[1]; q != "" {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return 0, "", 0, nil, err
		}
	}
	if n == 0 {
		return 0, "", 0, nil, nil
	}
	q := fmt.Sprintf(markRangeSQL, cond)
	if cl.holder == "" || due.After(cl.now) {
		res, err := tx.ExecContext(ctx, q, append([]any{toMicros(due), "", 0, after, last}, args...)...)
		if err != nil {
			return 0, "", 0, nil, err
		}
		marked, _ = res.RowsAffected()
		return n, last, marked, nil, nil
	}
	rows, err := tx.QueryContext(ctx, q+` RETURNING enrollment_id, gen`, append([]any{toMicros(due), cl.holder, toMicros(cl.until), after, last}, args...)...)
	if err != nil {
		return 0, "", 0, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var d store.DirtyEnrollment
		if err := rows.Scan(&d.DeviceID, &d.Gen); err != nil {
			return 0, "", 0, nil, err
		}
		marked++
		// gen 1: inserted by this statement, so claimed by cl.holder (an
		// upsert's update makes it at least 2).
		if d.Gen == 1 {
			claimed = append(claimed, d)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, "", 0, nil, err
	}
	return n, last, marked, claimed, nil
}

// analyzeMarked asks for ANALYZE reconcile_queue after tx commits when an
// expansion's marked count went from before to after past
// Dialect.AnalyzeAfter × 4^k: fresh statistics while its backlog grows,
// a few times per expansion instead of after every chunk.
func analyzeMarked(tx *Tx, before, after int64) {
	a := tx.d.AnalyzeAfter
	if a <= 0 || slices.Contains(tx.analyze, "reconcile_queue") {
		return
	}
	for t := a; t <= after; t *= 4 {
		if before < t {
			tx.analyze = append(tx.analyze, "reconcile_queue")
			return
		}
	}
}

// markLarge marks the devices of a change that may concern many (kind
// and target: markCond). With a mark chunk (Dialect.MarkChunk,
// SetMarkChunk) it marks the first chunk in tx and, when there may be
// more, records the rest in reconcile_expansions in tx: committed with
// the change, marked by the reconciler's next claims (expandMarks).
// Without, it marks them all in tx.
func (s *Store) markLarge(ctx context.Context, tx *Tx, kind, target string, due time.Time) error {
	cond, args, err := markCond(kind, target)
	if err != nil {
		return err
	}
	chunk := int(s.markChunk.Load())
	if chunk <= 0 {
		return markWhere(ctx, tx, cond, due, args...)
	}
	if kind == expandGroup {
		// A static group of fewer members than a chunk (the common case)
		// is marked whole, at once: its users' devices by their index.
		var small int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM user_groups WHERE id = ? AND source = 'static'
			AND (SELECT COUNT(*) FROM (SELECT 1 FROM user_group_members WHERE group_id = ? LIMIT ?) m) < ?`,
			target, target, chunk, chunk).Scan(&small); err != nil {
			return err
		}
		if small > 0 {
			return markWhere(ctx, tx, cond, due, args...)
		}
	}
	n, last, marked, _, err := markChunk(ctx, tx, cond, args, due, "", chunk, chunkClaim{})
	if err != nil {
		return err
	}
	analyzeMarked(tx, 0, marked)
	if n < chunk {
		return nil // the whole fleet was one chunk
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO reconcile_expansions (kind, target, due_at, after_id, marked, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		kind, target, toMicros(due), last, marked, toMicros(due))
	return err
}

// expandMarks marks the next chunk (limit devices) of the oldest pending
// expansion (markLarge) in one transaction: the chunk's queue rows and
// the cursor's advance (or the expansion's end, when the chunk comes
// back short) commit together, so a crash between chunks resumes from
// the committed cursor and marks no device twice. The expansion's row
// is locked for the transaction (FOR UPDATE on PostgreSQL, at READ
// COMMITTED so a claimer that waited for it reads the advanced cursor;
// SQLite's one writer serialises them): two instances expand one chunk
// after the other, never the same one. more: an expansion may remain
// (false: none was pending). One read of reconcile_expansions when none
// is pending; none at all on a store that marks inline (MarkChunk 0:
// one process, which never records an expansion).
//
// With a claim (cl: ClaimDirty's holder, now and lease end) the rows the
// chunk inserts are claimed in the same transaction and returned
// (markChunk): a device freshly marked is claimed without a second write
// of its row. They commit with the cursor, so a crash after the commit
// leaves them claimed until the lease ends, as any claim.
func (s *Store) expandMarks(ctx context.Context, limit int, cl chunkClaim) (more bool, claimed []store.DirtyEnrollment, err error) {
	if s.markChunk.Load() <= 0 {
		return false, nil, nil // this store marks inline and records none (SQLite)
	}
	var pending int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM reconcile_expansions LIMIT 1) p`).Scan(&pending); err != nil || pending == 0 {
		return false, nil, err
	}
	opts := s.d.ReconcileTxOptions
	if opts == nil {
		opts = s.d.TxOptions
	}
	err = s.txWith(ctx, opts, func(tx *Tx) error {
		// The read above saw one; if it has ended meanwhile, the caller
		// looks again. The function may run again: start empty.
		more, claimed = true, nil
		var xid, due, marked int64
		var kind, target, after string
		err := tx.QueryRowContext(ctx, `SELECT id, kind, target, due_at, after_id, marked FROM reconcile_expansions ORDER BY id LIMIT 1`+s.d.ForUpdate).
			Scan(&xid, &kind, &target, &due, &after, &marked)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		cond, args, err := markCond(kind, target)
		if err != nil {
			return err
		}
		n, last, m, cs, err := markChunk(ctx, tx, cond, args, fromMicros(due), after, limit, cl)
		if err != nil {
			return err
		}
		claimed = cs
		analyzeMarked(tx, marked, marked+m)
		if n < limit {
			_, err = tx.ExecContext(ctx, `DELETE FROM reconcile_expansions WHERE id = ?`, xid)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE reconcile_expansions SET after_id = ?, marked = ? WHERE id = ?`, last, marked+m, xid)
		}
		return err
	})
	if err != nil {
		return more, nil, err
	}
	return more, claimed, nil
}

// Profiles.

const profileColumns = `id, tenant_id, identifier, name, platforms, min_os, sign, version, hash, payload_types, created_at, updated_at`

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func scanProfile(sc scanner) (*store.ConfigProfile, error) {
	var p store.ConfigProfile
	var plats, types string
	var sign int
	var c, u int64
	err := sc.Scan(&p.ID, &p.TenantID, &p.Identifier, &p.Name, &plats, &p.MinOS, &sign, &p.Version, &p.Hash, &types, &c, &u)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("profile %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	p.Platforms, p.PayloadTypes, p.Sign = splitList(plats), splitList(types), sign != 0
	p.CreatedAt, p.UpdatedAt = fromMicros(c), fromMicros(u)
	return &p, nil
}

func (s *Store) CreateProfile(ctx context.Context, p *store.ConfigProfile, v *store.ProfileVersion) error {
	p.Version, v.Version, v.ProfileID, p.Hash = 1, 1, p.ID, v.Hash
	return s.tx(ctx, func(tx *Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tenants WHERE id = ?`, p.TenantID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("tenant %w", store.ErrNotFound)
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM config_profiles WHERE tenant_id = ? AND identifier = ?`, p.TenantID, p.Identifier).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: the tenant has a profile with the identifier %s already (upload a new version of it instead)", store.ErrConflict, p.Identifier)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO config_profiles (`+profileColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.TenantID, p.Identifier, p.Name, strings.Join(p.Platforms, ","), p.MinOS, boolInt(p.Sign), p.Version, p.Hash,
			strings.Join(p.PayloadTypes, ","), toMicros(p.CreatedAt), toMicros(p.UpdatedAt)); err != nil {
			return s.constraint(err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO config_profile_versions (profile_id, version, plist, hash, signed, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			v.ProfileID, v.Version, v.Plist, v.Hash, boolInt(v.Signed), toMicros(v.CreatedAt))
		return s.constraint(err)
	})
}

func (s *Store) AddProfileVersion(ctx context.Context, v *store.ProfileVersion) (*store.ConfigProfile, error) {
	var out *store.ConfigProfile
	err := s.tx(ctx, func(tx *Tx) error {
		p, err := scanProfile(tx.QueryRowContext(ctx, `SELECT `+profileColumns+` FROM config_profiles WHERE id = ? AND deleted_at = 0`, v.ProfileID))
		if err != nil {
			return err
		}
		v.Version = p.Version + 1
		if _, err := tx.ExecContext(ctx, `INSERT INTO config_profile_versions (profile_id, version, plist, hash, signed, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			v.ProfileID, v.Version, v.Plist, v.Hash, boolInt(v.Signed), toMicros(v.CreatedAt)); err != nil {
			return s.constraint(err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE config_profiles SET version = ?, hash = ?, updated_at = ? WHERE id = ?`,
			v.Version, v.Hash, toMicros(v.CreatedAt), v.ProfileID); err != nil {
			return err
		}
		p.Version, p.Hash, p.UpdatedAt = v.Version, v.Hash, v.CreatedAt
		out = p
		return s.markLarge(ctx, tx, expandProfile, v.ProfileID, v.CreatedAt)
	})
	return out, err
}

func (s *Store) ConfigProfile(ctx context.Context, id string) (*store.ConfigProfile, error) {
	return scanProfile(s.r.QueryRowContext(ctx, `SELECT `+profileColumns+` FROM config_profiles WHERE id = ? AND deleted_at = 0`, id))
}

func (s *Store) ConfigProfiles(ctx context.Context, tenantID string) ([]store.ConfigProfile, error) {
	q, args := `SELECT `+profileColumns+` FROM config_profiles WHERE deleted_at = 0`, []any{}
	if tenantID != "" {
		q, args = q+` AND tenant_id = ?`, append(args, tenantID)
	}
	return collect(ctx, s.r, scanProfile, q+` ORDER BY identifier`, args...)
}

func (s *Store) ProfileVersions(ctx context.Context, profileID string) ([]store.ProfileVersion, error) {
	return collect(ctx, s.r, func(sc scanner) (*store.ProfileVersion, error) {
		var v store.ProfileVersion
		var signed int
		var c int64
		if err := sc.Scan(&v.ProfileID, &v.Version, &v.Plist, &v.Hash, &signed, &c); err != nil {
			return nil, err
		}
		v.Signed, v.CreatedAt = signed != 0, fromMicros(c)
		return &v, nil
	}, `SELECT profile_id, version, plist, hash, signed, created_at FROM config_profile_versions WHERE profile_id = ? ORDER BY version DESC`, profileID)
}

func (s *Store) Assign(ctx context.Context, a *store.Assignment, now time.Time) error {
	return s.tx(ctx, func(tx *Tx) error {
		var pt, gt string
		err := tx.QueryRowContext(ctx, `SELECT tenant_id FROM config_profiles WHERE id = ? AND deleted_at = 0`, a.ProfileID).Scan(&pt)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("profile %w", store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx, `SELECT tenant_id FROM user_groups WHERE id = ?`, a.GroupID).Scan(&gt)
		if errors.Is(err, sql.ErrNoRows) || err == nil && gt != pt {
			return fmt.Errorf("group %w in the profile's tenant", store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO profile_assignments (profile_id, group_id, exclude, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (profile_id, group_id) DO UPDATE SET exclude = excluded.exclude`, a.ProfileID, a.GroupID, boolInt(a.Exclude), toMicros(a.CreatedAt)); err != nil {
			return err
		}
		return s.markLarge(ctx, tx, expandGroup, a.GroupID, now)
	})
}

func (s *Store) Unassign(ctx context.Context, profileID, groupID string, now time.Time) error {
	return s.tx(ctx, func(tx *Tx) error {
		// The group's members stay: its devices can be marked after
		// the assignment is gone (markLarge).
		if err := s.markLarge(ctx, tx, expandGroup, groupID, now); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM profile_assignments WHERE profile_id = ? AND group_id = ?`, profileID, groupID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("assignment %w", store.ErrNotFound)
		}
		return nil
	})
}

func (s *Store) Assignments(ctx context.Context, profileID string) ([]store.Assignment, error) {
	return collect(ctx, s.r, func(sc scanner) (*store.Assignment, error) {
		var a store.Assignment
		var ex int
		var c int64
		if err := sc.Scan(&a.ProfileID, &a.GroupID, &ex, &c); err != nil {
			return nil, err
		}
		a.Exclude, a.CreatedAt = ex != 0, fromMicros(c)
		return &a, nil
	}, `SELECT profile_id, group_id, exclude, created_at FROM profile_assignments WHERE profile_id = ? ORDER BY group_id`, profileID)
}

func (s *Store) CandidateProfiles(ctx context.Context, enrollmentID string) ([]store.CandidateProfile, error) {
	return collect(ctx, s.r, func(sc scanner) (*store.CandidateProfile, error) {
		var c store.CandidateProfile
		var plats string
		var sign, inc, exc int
		if err := sc.Scan(&c.ProfileID, &c.Identifier, &c.Version, &plats, &c.MinOS, &sign, &c.Plist, &inc, &exc); err != nil {
			return nil, err
		}
		c.Platforms, c.Sign, c.Included, c.Excluded = splitList(plats), sign != 0, inc != 0, exc != 0
		return &c, nil
	}, `SELECT p.id, p.identifier, p.version, p.platforms, p.min_os, p.sign, v.plist,
		MAX(CASE WHEN a.exclude = 0 THEN 1 ELSE 0 END), MAX(CASE WHEN a.exclude <> 0 THEN 1 ELSE 0 END)
		FROM enrollments e
		JOIN user_groups g ON g.tenant_id = e.tenant_id
		JOIN profile_assignments a ON a.group_id = g.id
		JOIN config_profiles p ON p.id = a.profile_id
		JOIN config_profile_versions v ON v.profile_id = p.id AND v.version = p.version
		WHERE e.id = ? AND (g.source = 'all' OR EXISTS (SELECT 1 FROM user_group_members m WHERE m.group_id = g.id AND m.user_id = e.user_id))
		GROUP BY p.id, p.identifier, p.version, p.platforms, p.min_os, p.sign, v.plist
		ORDER BY p.identifier`, enrollmentID)
}

// Items.

// itemForCommandSQL reads the item of enrollment ? that command ? was
// queued for; arguments: enrollment id, command UUID. A template command
// (render at delivery) is shared by up to a batch's 1,000 items, so the
// lookup needs both columns in one index (profile_items_command,
// migration 0025; TestItemForCommandPlan): with command_uuid alone it
// walked every item of the batch.
const itemForCommandSQL = `SELECT ` + itemColumns + ` FROM profile_items i WHERE i.enrollment_id = ? AND i.command_uuid = ?`

const itemColumns = `i.enrollment_id, i.profile_id, i.identifier, i.state, i.version, i.hash, i.command_uuid, i.acknowledged, i.attempts, i.error, i.next_retry, i.updated_at`

func scanItem(sc scanner, extra ...any) (*store.ProfileItem, error) {
	var it store.ProfileItem
	var ack int
	var nr, u int64
	err := sc.Scan(append([]any{&it.DeviceID, &it.ProfileID, &it.Identifier, &it.State, &it.Version, &it.Hash, &it.CommandUUID, &ack, &it.Attempts, &it.Error, &nr, &u}, extra...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("profile item %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	it.Acknowledged, it.NextRetry, it.UpdatedAt = ack != 0, fromMicros(nr), fromMicros(u)
	return &it, nil
}

func (s *Store) ProfileItems(ctx context.Context, enrollmentID string) ([]store.ProfileItem, error) {
	return collect(ctx, s.r, func(sc scanner) (*store.ProfileItem, error) { return scanItem(sc) },
		`SELECT `+itemColumns+` FROM profile_items i WHERE i.enrollment_id = ? ORDER BY i.identifier`, enrollmentID)
}

func (s *Store) PutProfileItem(ctx context.Context, it *store.ProfileItem) error {
	_, err := s.w.ExecContext(ctx, putItemSQL, itemArgs(it)...)
	return s.constraint(err)
}

func (s *Store) DeleteProfileItem(ctx context.Context, enrollmentID, profileID string) error {
	return s.tx(ctx, func(tx *Tx) error { return forgetItem(ctx, tx, enrollmentID, profileID) })
}

// putItemForCommandSQL replaces an item while it carries a command;
// arguments: itemArgs' values after the two keys, then the keys and the
// command.
const putItemForCommandSQL = `UPDATE profile_items SET identifier = ?, state = ?, version = ?, hash = ?, command_uuid = ?, acknowledged = ?,
	attempts = ?, error = ?, next_retry = ?, updated_at = ? WHERE enrollment_id = ? AND profile_id = ? AND command_uuid = ?`

func (s *Store) PutProfileItemForCommand(ctx context.Context, it *store.ProfileItem, commandUUID string) error {
	if commandUUID == "" {
		return fmt.Errorf("profile item %w", store.ErrNotFound)
	}
	a := itemArgs(it)
	res, err := s.w.ExecContext(ctx, putItemForCommandSQL, append(a[2:], it.DeviceID, it.ProfileID, commandUUID)...)
	if err != nil {
		return s.constraint(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("profile item with command %s %w", commandUUID, store.ErrNotFound)
	}
	return nil
}

func (s *Store) FailProfileItemForCommand(ctx context.Context, it *store.ProfileItem, commandUUID string) error {
	if commandUUID == "" {
		return fmt.Errorf("profile item %w", store.ErrNotFound)
	}
	a := itemArgs(it)
	res, err := s.w.ExecContext(ctx, putItemForCommandSQL+` AND state <> ?`, append(a[2:], it.DeviceID, it.ProfileID, commandUUID, it.State)...)
	if err != nil {
		return s.constraint(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("profile item with command %s, not %s yet, %w", commandUUID, it.State, store.ErrNotFound)
	}
	return nil
}

func (s *Store) DeleteProfileItemForCommand(ctx context.Context, enrollmentID, profileID, commandUUID string) error {
	if commandUUID == "" {
		return fmt.Errorf("profile item %w", store.ErrNotFound)
	}
	return s.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM profile_items WHERE enrollment_id = ? AND profile_id = ? AND command_uuid = ?`,
			enrollmentID, profileID, commandUUID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("profile item with command %s %w", commandUUID, store.ErrNotFound)
		}
		return revokeItemCerts(ctx, tx, enrollmentID, profileID)
	})
}

// ProfileRemovedBy is profile_certs.revoked_by for a certificate whose
// profile left the device.
const ProfileRemovedBy = "the profile was removed from the device"

// forgetItem deletes an item and revokes the user certificates Pomona
// issued through that profile to that device: the profile that carried
// them is gone from it (or was never installed), so nothing on the device
// should still present them to a RADIUS, VPN or mail server. The revocation
// triggers put them on the CRL and into OCSP in the same transaction.
// The time is the store's clock: when the item went.
func forgetItem(ctx context.Context, tx *Tx, enrollmentID, profileID string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM profile_items WHERE enrollment_id = ? AND profile_id = ?`, enrollmentID, profileID); err != nil {
		return err
	}
	return revokeItemCerts(ctx, tx, enrollmentID, profileID)
}

// revokeItemCerts is forgetItem's revocation, for an item deleted.
func revokeItemCerts(ctx context.Context, tx *Tx, enrollmentID, profileID string) error {
	_, err := tx.ExecContext(ctx, `UPDATE profile_certs SET revoked_at = ?, revoked_by = ? WHERE enrollment_id = ? AND profile_id = ? AND revoked_at = 0`,
		toMicros(time.Now().UTC()), ProfileRemovedBy, enrollmentID, profileID)
	return err
}

func (s *Store) ProfileStatus(ctx context.Context, profileID, state, after string, limit int) (map[string]int, []store.ProfileDevice, error) {
	if limit <= 0 {
		limit = 100
	}
	counts := map[string]int{}
	rows, err := s.r.QueryContext(ctx, `SELECT state, COUNT(*) FROM profile_items WHERE profile_id = ? GROUP BY state`, profileID)
	if err != nil {
		return nil, nil, err
	}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			rows.Close()
			return nil, nil, err
		}
		counts[st] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	// The page is cut in profile_items first (an index range of limit
	// entries: profile_items_profile or profile_items_profile_device),
	// then joined: a join before the LIMIT let a planner without fresh
	// statistics join and sort every item of a 100,000-device profile.
	q := `SELECT i.enrollment_id, i.profile_id FROM profile_items i WHERE i.profile_id = ? AND i.enrollment_id > ?`
	args := []any{profileID, after}
	if state != "" {
		q, args = q+` AND i.state = ?`, append(args, state)
	}
	q = `SELECT ` + itemColumns + `, e.user_id, u.email, e.platform, e.device_name FROM (` + q + ` ORDER BY i.enrollment_id LIMIT ?) page
		JOIN profile_items i ON i.enrollment_id = page.enrollment_id AND i.profile_id = page.profile_id
		JOIN enrollments e ON e.id = i.enrollment_id JOIN users u ON u.id = e.user_id`
	devs, err := collect(ctx, s.r, func(sc scanner) (*store.ProfileDevice, error) {
		var d store.ProfileDevice
		it, err := scanItem(sc, &d.UserID, &d.UserEmail, &d.Platform, &d.DeviceName)
		if err != nil {
			return nil, err
		}
		d.ProfileItem = *it
		return &d, nil
	}, q+` ORDER BY i.enrollment_id`, append(args, limit)...)
	return counts, devs, err
}

// The reconciler's queue.

func (s *Store) MarkDirty(ctx context.Context, ids []string, due time.Time, verify bool) error {
	if len(ids) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `INSERT INTO reconcile_queue (enrollment_id, due_at, verify, gen) VALUES (?, ?, ?, 1)
				ON CONFLICT (enrollment_id) DO UPDATE SET gen = reconcile_queue.gen + 1,
				verify = CASE WHEN excluded.verify <> 0 THEN 1 ELSE reconcile_queue.verify END,
				due_at = CASE WHEN excluded.due_at < reconcile_queue.due_at THEN excluded.due_at ELSE reconcile_queue.due_at END`,
				id, toMicros(due), boolInt(verify)); err != nil {
				return s.constraint(err)
			}
		}
		return nil
	})
}

// ClaimDirty first marks the next chunk of a pending expansion
// (expandMarks: a large change's devices not marked in its own
// transaction), then claims; while its claim comes back short and an
// expansion may remain it marks and claims again, so a short claim
// still means nothing more is due (profiles.Job.Drain stops its workers
// on one). Claims made before an error are returned without it: they
// are held, and the expansion goes on at the next claim.
func (s *Store) ClaimDirty(ctx context.Context, holder string, now time.Time, lease time.Duration, limit int) ([]store.DirtyEnrollment, error) {
	if limit <= 0 {
		limit = 100
	}
	var out []store.DirtyEnrollment
	for {
		more, got, err := s.expandMarks(ctx, limit-len(out), chunkClaim{holder: holder, now: now, until: now.Add(lease)})
		out = append(out, got...)
		if err == nil && len(out) < limit {
			got, err = s.claimDirty(ctx, holder, now, lease, limit-len(out))
			out = append(out, got...)
		}
		if err != nil {
			if len(out) > 0 {
				return out, nil
			}
			return nil, err
		}
		if len(out) >= limit || !more {
			return out, nil
		}
	}
}

// claimDirty is one claim of at most limit due enrollments.
func (s *Store) claimDirty(ctx context.Context, holder string, now time.Time, lease time.Duration, limit int) ([]store.DirtyEnrollment, error) {
	if s.d.SkipLocked {
		return s.claimDirtySkipLocked(ctx, holder, now, lease, limit)
	}
	var out []store.DirtyEnrollment
	err := s.tx(ctx, func(tx *Tx) error {
		var err error
		out, err = claimDirtyTx(ctx, tx, holder, now, lease, limit)
		return err
	})
	return out, err
}

// claimDirtyTx is ClaimDirty's SELECT and UPDATE in transaction tx (a
// backend whose one writer serialises the claimers).
func claimDirtyTx(ctx context.Context, tx *Tx, holder string, now time.Time, lease time.Duration, limit int) ([]store.DirtyEnrollment, error) {
	var out []store.DirtyEnrollment
	rows, err := tx.QueryContext(ctx, `SELECT enrollment_id, verify, gen FROM reconcile_queue WHERE due_at <= ? AND claimed_until <= ?
		ORDER BY due_at, enrollment_id LIMIT ?`, toMicros(now), toMicros(now), limit)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var d store.DirtyEnrollment
		var v int
		if err := rows.Scan(&d.DeviceID, &v, &d.Gen); err != nil {
			rows.Close()
			return nil, err
		}
		d.Verify = v != 0
		out = append(out, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// One statement per reconcileChunk claims (was one per claim).
	return out, chunks(out, reconcileChunk, func(ds []store.DirtyEnrollment) error {
		args := make([]any, 0, 2+len(ds))
		args = append(args, holder, toMicros(now.Add(lease)))
		for _, d := range ds {
			args = append(args, d.DeviceID)
		}
		_, err := tx.ExecContext(ctx, `UPDATE reconcile_queue SET claimed_by = ?, claimed_until = ? WHERE enrollment_id IN `+qmarks(len(ds)), args...)
		return err
	})
}

// ClaimReconcile is ClaimDirty followed by ReconcileInputs of the claimed
// enrollments (see store.ProfileStore). With
// Dialect.ClaimReadsInputs both are one transaction on the writer
// connection, see there; otherwise (both backends today) two steps: the
// claim on the writer, the reads on the read pool.
func (s *Store) ClaimReconcile(ctx context.Context, holder string, now time.Time, lease time.Duration, limit int) ([]store.DirtyEnrollment, []store.ReconcileInput, error) {
	if limit <= 0 {
		limit = 100
	}
	if !s.d.ClaimReadsInputs || s.d.SkipLocked {
		ds, err := s.ClaimDirty(ctx, holder, now, lease, limit)
		if err != nil || len(ds) == 0 {
			return ds, nil, err
		}
		ins, err := s.ReconcileInputs(ctx, dirtyIDs(ds))
		return ds, ins, err
	}
	// Unclaimed (chunkClaim{}): the claim below is the transaction's.
	if _, _, err := s.expandMarks(ctx, limit, chunkClaim{}); err != nil {
		return nil, nil, err
	}
	var ds []store.DirtyEnrollment
	var ins []store.ReconcileInput
	err := s.tx(ctx, func(tx *Tx) error {
		// The function may run again (group commit): start empty.
		ds, ins = nil, nil
		var err error
		if ds, err = claimDirtyTx(ctx, tx, holder, now, lease, limit); err != nil || len(ds) == 0 {
			return err
		}
		return chunks(dirtyIDs(ds), reconcileInputChunk, func(ids []string) error {
			got, err := s.reconcileInputs(ctx, tx, ids)
			ins = append(ins, got...)
			return err
		})
	})
	if err != nil {
		return nil, nil, err
	}
	return ds, ins, nil
}

func dirtyIDs(ds []store.DirtyEnrollment) []string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.DeviceID
	}
	return ids
}

// claimDirtySkipLocked is ClaimDirty in one autocommitted statement at
// READ COMMITTED (Dialect.SkipLocked: PostgreSQL). The subquery walks
// reconcile_queue_due_enrollment in claim order and locks up to limit due,
// unclaimed rows, skipping rows another transaction holds locked (a
// concurrent claimer's, a MarkDirty's, a batch's finish): those are
// either being claimed or will be due again, and the next pass takes
// them. A row changed and committed since the statement's snapshot is
// re-read under its lock and claimed only if it still is due and
// unclaimed (PostgreSQL's re-check of an UPDATE's and FOR UPDATE's
// conditions at READ COMMITTED), so two claimers never hold one row: the
// guarantee ClaimDirty gives. Why not the SERIALIZABLE SELECT + UPDATE
// of other backends: with four workers per instance, each claim's read
// of the queue's index range (predicate locks promoted to the whole
// relation past a few dozen pages) conflicted with every other worker's
// claim and finish, and a conflict reran the claim or, worse, a whole
// batch's write ("Session 9 — pgassign", docs/benchmarks.md). The rows
// come back in claim order (due, then enrollment id): RETURNING has no
// order of its own.
func (s *Store) claimDirtySkipLocked(ctx context.Context, holder string, now time.Time, lease time.Duration, limit int) ([]store.DirtyEnrollment, error) {
	at := toMicros(now)
	// = ANY(ARRAY(…)): the picked ids are one array, evaluated once, and
	// the update finds them by the primary key; a join with the picked
	// rows was planned as a hash join over a sequential scan of the
	// whole queue.
	rows, err := s.w.QueryContext(ctx, `UPDATE reconcile_queue SET claimed_by = ?, claimed_until = ?
		WHERE enrollment_id = ANY(ARRAY(SELECT enrollment_id FROM reconcile_queue
			WHERE due_at <= ? AND claimed_until <= ? ORDER BY due_at, enrollment_id LIMIT ? FOR UPDATE SKIP LOCKED))
		RETURNING enrollment_id, verify, gen, due_at`, holder, toMicros(now.Add(lease)), at, at, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type claimed struct {
		d   store.DirtyEnrollment
		due int64
	}
	var cs []claimed
	for rows.Next() {
		var c claimed
		var v int
		if err := rows.Scan(&c.d.DeviceID, &v, &c.d.Gen, &c.due); err != nil {
			return nil, err
		}
		c.d.Verify = v != 0
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].due != cs[j].due {
			return cs[i].due < cs[j].due
		}
		return cs[i].d.DeviceID < cs[j].d.DeviceID
	})
	out := make([]store.DirtyEnrollment, len(cs))
	for i, c := range cs {
		out[i] = c.d
	}
	return out, nil
}

func (s *Store) FinishDirty(ctx context.Context, d store.DirtyEnrollment, holder string, next time.Time, verify bool) error {
	return s.tx(ctx, func(tx *Tx) error {
		var gen int64
		var by string
		err := tx.QueryRowContext(ctx, `SELECT gen, claimed_by FROM reconcile_queue WHERE enrollment_id = ?`, d.DeviceID).Scan(&gen, &by)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case by != holder:
			return nil // the claim expired and another holder has it
		case gen != d.Gen:
			// Marked again meanwhile: due as marked, claim released.
			_, err = tx.ExecContext(ctx, `UPDATE reconcile_queue SET claimed_by = '', claimed_until = 0 WHERE enrollment_id = ?`, d.DeviceID)
		case next.IsZero():
			_, err = tx.ExecContext(ctx, `DELETE FROM reconcile_queue WHERE enrollment_id = ?`, d.DeviceID)
		default:
			_, err = tx.ExecContext(ctx, `UPDATE reconcile_queue SET due_at = ?, verify = ?, claimed_by = '', claimed_until = 0 WHERE enrollment_id = ?`,
				toMicros(next), boolInt(verify), d.DeviceID)
		}
		return err
	})
}

func (s *Store) DirtyCount(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM reconcile_queue WHERE due_at <= ?`, toMicros(now)).Scan(&n)
	return n, err
}

// Per-user certificates of profiles' SCEP payloads.

func (s *Store) AddProfileChallenge(ctx context.Context, ch *store.SCEPChallenge, profileID string) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO scep_challenges (hash, enrollment_id, expires_at, kind, profile_id) VALUES (?, ?, ?, ?, ?)`,
		ch.Hash, ch.DeviceID, toMicros(ch.ExpiresAt), store.ChallengeProfile, profileID)
	return s.constraint(err)
}

func (s *Store) ProfileChallenge(ctx context.Context, hash []byte) (*store.SCEPChallenge, string, error) {
	return profileChallenge(ctx, s.r, hash)
}

func profileChallenge(ctx context.Context, q queryer, hash []byte) (*store.SCEPChallenge, string, error) {
	c, err := getChallenge(ctx, q, hash)
	if err != nil {
		return nil, "", err
	}
	if c.Kind != store.ChallengeProfile {
		return nil, "", fmt.Errorf("profile SCEP challenge %w", store.ErrNotFound)
	}
	var pid string
	if err := q.QueryRowContext(ctx, `SELECT profile_id FROM scep_challenges WHERE hash = ?`, hash).Scan(&pid); err != nil {
		return nil, "", err
	}
	return c, pid, nil
}

func (s *Store) ConsumeProfileChallenge(ctx context.Context, hash []byte, now time.Time, pc *store.ProfileCert) error {
	return s.tx(ctx, func(tx *Tx) error {
		c, pid, err := profileChallenge(ctx, tx, hash)
		if err != nil {
			return err
		}
		switch {
		case !c.UsedAt.IsZero():
			return store.ErrSCEPChallengeUsed
		case !now.Before(c.ExpiresAt):
			return fmt.Errorf("SCEP challenge %w", store.ErrExpired)
		case pc.DeviceID != c.DeviceID || pc.ProfileID != pid:
			return fmt.Errorf("%w: certificate and challenge belong to different enrollments or profiles", store.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE scep_challenges SET used_at = ? WHERE hash = ? AND used_at = 0`, toMicros(now), hash); err != nil {
			return err
		}
		// The certificate remembers the command that carried its challenge
		// (AcknowledgeProfileItem: a later delivery supersedes it).
		_, err = tx.ExecContext(ctx, `INSERT INTO profile_certs (serial, enrollment_id, profile_id, subject, email, sha256, not_before, not_after, issued_at, command_uuid)
			SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, command_uuid FROM scep_challenges WHERE hash = ?`, pc.Serial, pc.DeviceID, pc.ProfileID, pc.Subject, pc.Email, pc.SHA256,
			toMicros(pc.NotBefore), toMicros(pc.NotAfter), toMicros(pc.IssuedAt), hash)
		return s.constraint(err)
	})
}

func (s *Store) ProfileCerts(ctx context.Context, enrollmentID string) ([]store.ProfileCert, error) {
	return collect(ctx, s.r, func(sc scanner) (*store.ProfileCert, error) {
		var c store.ProfileCert
		var nb, na, is, rv int64
		if err := sc.Scan(&c.Serial, &c.DeviceID, &c.ProfileID, &c.Subject, &c.Email, &c.SHA256, &nb, &na, &is, &rv, &c.RevokedBy); err != nil {
			return nil, err
		}
		c.NotBefore, c.NotAfter, c.IssuedAt, c.RevokedAt = fromMicros(nb), fromMicros(na), fromMicros(is), fromMicros(rv)
		return &c, nil
	}, `SELECT serial, enrollment_id, profile_id, subject, email, sha256, not_before, not_after, issued_at, revoked_at, revoked_by
		FROM profile_certs WHERE enrollment_id = ? ORDER BY issued_at DESC, serial`, enrollmentID)
}

func (s *Store) RevokeProfileCert(ctx context.Context, enrollmentID, serial, by string, now time.Time) error {
	return s.tx(ctx, func(tx *Tx) error {
		var rv int64
		err := tx.QueryRowContext(ctx, `SELECT revoked_at FROM profile_certs WHERE serial = ? AND enrollment_id = ?`, serial, enrollmentID).Scan(&rv)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("certificate %w on this device", store.ErrNotFound)
		}
		if err != nil || rv != 0 {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE profile_certs SET revoked_at = ?, revoked_by = ? WHERE serial = ?`, toMicros(now), by, serial)
		return err
	})
}

// The reconciler's batch: set-based reads and one write transaction per
// claimed batch (issue 15 item 8: 100,000 devices in seconds, not per-device
// round trips).

// reconcileChunk bounds the ids of one IN list (SQLite allows 32,766
// parameters, PostgreSQL 65,535; statements stay small).
const reconcileChunk = 500

// qmarks is "(?, ?, …)" with n placeholders.
func qmarks(n int) string {
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// chunks calls fn with consecutive slices of at most n elements.
func chunks[T any](xs []T, n int, fn func([]T) error) error {
	for len(xs) > 0 {
		k := min(n, len(xs))
		if err := fn(xs[:k]); err != nil {
			return err
		}
		xs = xs[k:]
	}
	return nil
}

// ReconcileInputs reads a batch in chunks of reconcileInputChunk ids:
// each chunk re-reads the assignments and the assigned profiles' plists,
// so a chunk holds a whole default batch (profiles.DefaultBatch).
const reconcileInputChunk = 1000

func (s *Store) ReconcileInputs(ctx context.Context, ids []string) ([]store.ReconcileInput, error) {
	var out []store.ReconcileInput
	err := chunks(ids, reconcileInputChunk, func(ids []string) error {
		got, err := s.reconcileInputs(ctx, s.r, ids)
		out = append(out, got...)
		return err
	})
	return out, err
}

// reconcileInputSQL reads, for a chunk of enrollment ids, the columns
// planning and the push read of each enrollment, its user and its device
// channel, in one statement (store.ReconcileInput says which fields are
// filled). The inner join leaves out an enrollment whose user is gone.
const reconcileInputSQL = `SELECT e.id, e.tenant_id, e.user_id, e.platform, e.os_version, e.status, COALESCE(e.apple_enrollment_id, ''),
	u.email, u.managed_apple_id, u.name, COALESCE(c.id, ''), c.push_token, COALESCE(c.push_magic, ''), COALESCE(c.push_dead, 0)
	FROM enrollments e JOIN users u ON u.id = e.user_id
	LEFT JOIN channels c ON c.enrollment_ref = e.id AND c.kind = 'device' AND c.enrollment_user_id = ''
	WHERE e.id IN `

// reconcileInputArraysSQL is reconcileInputSQL with array parameters
// (Dialect.ArrayBatches: PostgreSQL), argument: the ids as one text[].
// Each enrollment's device channel is a probe of channels_owner by the
// enrollment (the LATERAL subquery, kept from being flattened into a
// join by its LIMIT): a join let a planner without statistics of
// channels (autovacuum off, or not yet run after a bulk load) estimate
// the device channels at one row and join every enrollment of the chunk
// with every device channel, 1,000 × 1,000 comparisons per chunk — 7.5 s
// a chunk at 20,000 devices, 96 % of PostgreSQL's time in the assignment
// ("Session 10 — pgassign2", docs/benchmarks.md). The enrollments, and
// their users, are found by key too (anyIDs).
const reconcileInputArraysSQL = `SELECT e.id, e.tenant_id, e.user_id, e.platform, e.os_version, e.status, COALESCE(e.apple_enrollment_id, ''),
	u.email, u.managed_apple_id, u.name, COALESCE(c.id, ''), c.push_token, COALESCE(c.push_magic, ''), COALESCE(c.push_dead, 0)
	FROM enrollments e JOIN users u ON u.id = e.user_id
	LEFT JOIN LATERAL (SELECT c.id, c.push_token, c.push_magic, c.push_dead FROM channels c
		WHERE c.enrollment_ref = e.id AND c.kind = 'device' AND c.enrollment_user_id = '' LIMIT 1) c ON true
	WHERE e.id` + anyIDs

// reconcileItemsArraysSQL reads the profile items of a chunk's
// enrollments (Dialect.ArrayBatches), one probe of profile_items' primary
// key per enrollment: the subquery runs once per id (OFFSET 0 keeps it
// from being flattened into a join). Not anyIDs: profile_items starts
// empty and grows during the first assignment, and while it has a few
// pages PostgreSQL scans it and compares each row with every id of the
// parameter (a run-time array is not hashed): 60–170 ms a chunk at 1,000
// items, where the probes cost a few milliseconds.
// (DISTINCT: an id given twice reads its items once, as IN does.)
const reconcileItemsArraysSQL = `SELECT ` + itemColumns + ` FROM (SELECT DISTINCT id FROM unnest(CAST(? AS text[])) AS u(id)) k
	CROSS JOIN LATERAL (SELECT * FROM profile_items p WHERE p.enrollment_id = k.id OFFSET 0) i ORDER BY i.enrollment_id, i.identifier`

// anyIDs is the condition "the column is one of the ids of one text[]
// parameter", for PostgreSQL statements that must find a batch's rows by
// key at any table size and without statistics (Dialect.ArrayBatches).
// The ids are wrapped in ARRAY(SELECT unnest(…)): an InitPlan evaluated
// once at run time, whose contents the planner does not see, so it plans
// a few rows and probes the key's index. Given the 1,000 values
// themselves (= ANY(CAST(? AS text[]))) it costed 1,000 probes against
// one pass over the table and chose the pass — of every enrollment, every
// channel, the whole reconcile_queue — once per batch: at 100,000
// devices 100 batches × 100,000 rows per table, quadratic in the fleet
// ("Session 11 — pgassign3", docs/benchmarks.md).
const anyIDs = ` = ANY(ARRAY(SELECT unnest(CAST(? AS text[]))))`

// reconcileInputs reads one chunk through rq: the read pool, or the
// claim's transaction (ClaimReconcile).
func (s *Store) reconcileInputs(ctx context.Context, rq queryer, ids []string) ([]store.ReconcileInput, error) {
	// itemsSQL reads the chunk's profile items.
	main, itemsSQL, args := reconcileInputSQL+qmarks(len(ids)),
		`SELECT `+itemColumns+` FROM profile_items i WHERE i.enrollment_id IN `+qmarks(len(ids))+` ORDER BY i.enrollment_id, i.identifier`, anys(ids)
	if s.d.ArrayBatches {
		main, itemsSQL, args = reconcileInputArraysSQL, reconcileItemsArraysSQL, []any{ids}
	}
	out := make([]store.ReconcileInput, 0, len(ids))
	tenantIDs, userIDs := map[string]bool{}, map[string]bool{}
	rows, err := rq.QueryContext(ctx, main, args...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var r store.ReconcileInput
		e, u := &r.Enrollment, &r.User
		var ch store.Channel
		var dead int
		if err := rows.Scan(&e.ID, &e.TenantID, &e.UserID, &e.Platform, &e.OSVersion, &e.Status, &e.AppleEnrollmentID,
			&u.Email, &u.ManagedAppleID, &u.Name, &ch.ID, &ch.PushToken, &ch.PushMagic, &dead); err != nil {
			rows.Close()
			return nil, err
		}
		u.ID, u.TenantID = e.UserID, e.TenantID
		if ch.ID != "" {
			ch.DeviceID, ch.Kind, ch.PushDead = e.ID, "device", dead != 0
			r.Channel = &ch
		}
		out = append(out, r)
		tenantIDs[e.TenantID], userIDs[e.UserID] = true, true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, nil
	}
	tids := make([]string, 0, len(tenantIDs))
	for t := range tenantIDs {
		tids = append(tids, t)
	}
	tenantName := make(map[string]string, len(tids))
	rows, err = rq.QueryContext(ctx, `SELECT id, name FROM tenants WHERE id IN `+qmarks(len(tids)), anys(tids)...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			rows.Close()
			return nil, err
		}
		tenantName[id] = name
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	uids := make([]string, 0, len(userIDs))
	for u := range userIDs {
		uids = append(uids, u)
	}
	// The users' static (and other member-based) groups.
	userGroups := map[string][]string{}
	groupIDs := map[string]bool{}
	rows, err = rq.QueryContext(ctx, `SELECT user_id, group_id FROM user_group_members WHERE user_id IN `+qmarks(len(uids))+`
		ORDER BY user_id, group_id`, anys(uids)...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var u, g string
		if err := rows.Scan(&u, &g); err != nil {
			rows.Close()
			return nil, err
		}
		userGroups[u] = append(userGroups[u], g)
		groupIDs[g] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Assignments of those groups and of the tenants' all-users groups.
	type assignment struct {
		profile, group, tenant string
		exclude, all           bool
	}
	gids := make([]string, 0, len(groupIDs))
	for g := range groupIDs {
		gids = append(gids, g)
	}
	q := `SELECT a.profile_id, a.group_id, g.tenant_id, a.exclude, g.source FROM profile_assignments a JOIN user_groups g ON g.id = a.group_id
		WHERE g.tenant_id IN ` + qmarks(len(tids)) + ` AND (g.source = 'all'`
	qargs := anys(tids)
	if len(gids) > 0 {
		q += ` OR g.id IN ` + qmarks(len(gids))
		qargs = append(qargs, anys(gids)...)
	}
	var asg []assignment
	profileIDs := map[string]bool{}
	rows, err = rq.QueryContext(ctx, q+`)`, qargs...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var a assignment
		var ex int
		var src string
		if err := rows.Scan(&a.profile, &a.group, &a.tenant, &ex, &src); err != nil {
			rows.Close()
			return nil, err
		}
		a.exclude, a.all = ex != 0, src == store.GroupAllUsers
		asg = append(asg, a)
		profileIDs[a.profile] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// The assigned profiles' current versions, in CandidateProfiles' order.
	pids := make([]string, 0, len(profileIDs))
	for p := range profileIDs {
		pids = append(pids, p)
	}
	var profs []store.CandidateProfile
	if len(pids) > 0 {
		profs, err = collect(ctx, rq, func(sc scanner) (*store.CandidateProfile, error) {
			var c store.CandidateProfile
			var plats string
			var sign int
			if err := sc.Scan(&c.ProfileID, &c.Identifier, &c.Version, &plats, &c.MinOS, &sign, &c.Plist); err != nil {
				return nil, err
			}
			c.Platforms, c.Sign = splitList(plats), sign != 0
			return &c, nil
		}, `SELECT p.id, p.identifier, p.version, p.platforms, p.min_os, p.sign, v.plist FROM config_profiles p
			JOIN config_profile_versions v ON v.profile_id = p.id AND v.version = p.version
			WHERE p.id IN `+qmarks(len(pids))+` ORDER BY p.identifier`, anys(pids)...)
		if err != nil {
			return nil, err
		}
	}
	items, err := collect(ctx, rq, func(sc scanner) (*store.ProfileItem, error) { return scanItem(sc) }, itemsSQL, args...)
	if err != nil {
		return nil, err
	}

	// Candidates are resolved once per distinct group set (tenant + the
	// user's groups): thousands of users usually share a handful.
	bySet := map[string][]store.CandidateProfile{}
	candidates := func(tenant string, groups []string) []store.CandidateProfile {
		key := tenant + "\x00" + strings.Join(groups, "\x00")
		if c, ok := bySet[key]; ok {
			return c
		}
		mine := map[string]bool{}
		for _, g := range groups {
			mine[g] = true
		}
		inc, exc := map[string]bool{}, map[string]bool{}
		for _, a := range asg {
			if a.tenant != tenant || !a.all && !mine[a.group] {
				continue
			}
			if a.exclude {
				exc[a.profile] = true
			} else {
				inc[a.profile] = true
			}
		}
		var cs []store.CandidateProfile
		for _, p := range profs {
			if inc[p.ProfileID] || exc[p.ProfileID] {
				c := p
				c.Included, c.Excluded = inc[p.ProfileID], exc[p.ProfileID]
				cs = append(cs, c)
			}
		}
		bySet[key] = cs
		return cs
	}
	itemsByEnr := map[string][]store.ProfileItem{}
	for _, it := range items {
		itemsByEnr[it.DeviceID] = append(itemsByEnr[it.DeviceID], it)
	}
	kept := out[:0]
	for _, r := range out {
		e := &r.Enrollment
		name, ok := tenantName[e.TenantID]
		if !ok {
			continue // deleted meanwhile
		}
		r.Tenant = store.Tenant{ID: e.TenantID, Name: name}
		r.Candidates, r.Items = candidates(e.TenantID, userGroups[e.UserID]), itemsByEnr[e.ID]
		kept = append(kept, r)
	}
	out = kept
	return out, nil
}

// Row counts of the batch's multi-row statements (parameters per
// statement stay under a few thousand).
const (
	reconcileCommandRows = 100
	reconcileItemRows    = 200
	reconcileClaimRows   = 200
)

func (s *Store) ApplyReconcile(ctx context.Context, b *store.ReconcileBatch) error {
	defer s.auth.queueWritten("") // after the commit: authCache's empty
	// Alone: a batch writes thousands of rows (txAlone); at the
	// dialect's ReconcileTxOptions where it has them.
	run := s.txAlone
	if s.gc == nil && s.d.ReconcileTxOptions != nil {
		run = func(ctx context.Context, fn func(*Tx) error) error { return s.txWith(ctx, s.d.ReconcileTxOptions, fn) }
	}
	return run(ctx, func(tx *Tx) error {
		if s.d.ArrayBatches {
			// The claims' end first: its statements lock the rows they
			// finish and count them (finishHeldArrays), where a locking
			// read of the same rows before the writes (holdsClaims) took
			// one more row lock — a heap write and WAL record per device —
			// and one more statement per batch.
			if err := finishHeldArrays(ctx, tx, b.Holder, b.Finished); err != nil {
				return err
			}
		} else if err := s.holdsClaims(ctx, tx, b.Holder, b.Finished); err != nil {
			return err
		}
		if err := chunks(b.Challenges, reconcileItemRows, func(cs []store.NewProfileChallenge) error {
			args := make([]any, 0, 6*len(cs))
			for _, c := range cs {
				args = append(args, c.Challenge.Hash, c.Challenge.DeviceID, toMicros(c.Challenge.ExpiresAt), store.ChallengeProfile, c.ProfileID, c.CommandUUID)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO scep_challenges (hash, enrollment_id, expires_at, kind, profile_id, command_uuid) VALUES `+
				strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?), ", len(cs)), ", "), args...)
			return s.constraint(err)
		}); err != nil {
			return err
		}
		if err := s.applyCommands(ctx, tx, b.Commands, b.Queue); err != nil {
			return err
		}
		if s.d.ArrayBatches {
			if err := putItemsArrays(ctx, tx, b.PutItems); err != nil {
				return s.constraint(err)
			}
		} else if err := chunks(b.PutItems, reconcileItemRows, func(its []store.ProfileItem) error {
			args := make([]any, 0, 12*len(its))
			for _, it := range its {
				args = append(args, it.DeviceID, it.ProfileID, it.Identifier, it.State, it.Version, it.Hash, it.CommandUUID, boolInt(it.Acknowledged),
					it.Attempts, it.Error, toMicros(it.NextRetry), toMicros(it.UpdatedAt))
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO profile_items (enrollment_id, profile_id, identifier, state, version, hash, command_uuid, acknowledged, attempts, error, next_retry, updated_at)
				VALUES `+strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?), ", len(its)), ", ")+`
				ON CONFLICT (enrollment_id, profile_id) DO UPDATE SET identifier = excluded.identifier, state = excluded.state, version = excluded.version,
				hash = excluded.hash, command_uuid = excluded.command_uuid, acknowledged = excluded.acknowledged, attempts = excluded.attempts,
				error = excluded.error, next_retry = excluded.next_retry, updated_at = excluded.updated_at`, args...)
			return s.constraint(err)
		}); err != nil {
			return err
		}
		for _, d := range b.DelItems {
			if err := forgetItem(ctx, tx, d.DeviceID, d.ProfileID); err != nil {
				return err
			}
		}
		if s.d.ArrayBatches {
			return nil // finished first, above
		}
		return chunks(b.Finished, reconcileClaimRows, func(fs []store.FinishedClaim) error { return finishClaims(ctx, tx, b.Holder, fs) })
	})
}

// holdsClaims returns store.ErrClaimLost unless holder still holds every
// claim of fs (claimed_by = holder; an expired claim nobody took since is
// still held), for dialects without ArrayBatches (SQLite; PostgreSQL
// checks by finishing the claims first and counting them:
// finishHeldArrays). It runs first in ApplyReconcile's transaction, so
// nothing of a batch whose claims were taken over is written. SQLite's
// single writer orders the check before any other claim.
func (s *Store) holdsClaims(ctx context.Context, tx *Tx, holder string, fs []store.FinishedClaim) error {
	if len(fs) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(fs))
	ids := make([]string, 0, len(fs))
	for _, f := range fs {
		if !seen[f.Dirty.DeviceID] {
			seen[f.Dirty.DeviceID] = true
			ids = append(ids, f.Dirty.DeviceID)
		}
	}
	held := 0
	if err := chunks(ids, reconcileClaimRows, func(ids []string) error {
		var n int
		err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM reconcile_queue WHERE claimed_by = ? AND enrollment_id IN `+qmarks(len(ids)),
			append([]any{holder}, anys(ids)...)...).Scan(&n)
		held += n
		return err
	}); err != nil {
		return err
	}
	if held != len(ids) {
		return fmt.Errorf("%w: %s holds %d of its %d claims", store.ErrClaimLost, holder, held, len(ids))
	}
	return nil
}

// applyCommands inserts the commands and their queue rows. A channel's
// rows must come out in the order given (NextCommand orders by seq), so
// rows go in rounds: round k holds every channel's k-th command, and each
// statement of a round takes one seq for its rows (their channels differ,
// as in the bulk enqueue), later rounds later seqs.
func (s *Store) applyCommands(ctx context.Context, tx *Tx, cmds []store.CommandRecord, queue []store.BatchQueueEntry) error {
	if len(cmds) == 0 {
		return nil
	}
	at := map[string]int64{}
	if err := chunks(cmds, reconcileCommandRows, func(cs []store.CommandRecord) error {
		args := make([]any, 0, 7*len(cs))
		for _, c := range cs {
			args = append(args, c.UUID, c.RequestType, c.Payload, toMicros(c.CreatedAt), toMicros(c.ExpiresAt), c.CreatedBy, c.Render)
			at[c.UUID] = toMicros(c.CreatedAt)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO commands (uuid, request_type, payload, created_at, expires_at, created_by, render) VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?), ", len(cs)), ", "), args...)
		return s.constraint(err)
	}); err != nil {
		return err
	}
	type row struct {
		channel, uuid, vars string
		at                  int64
	}
	var rounds [][]row
	nth := map[string]int{}
	for _, q := range queue {
		k := nth[q.ChannelID]
		nth[q.ChannelID] = k + 1
		if k == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[k] = append(rounds[k], row{q.ChannelID, q.CommandUUID, q.Vars, at[q.CommandUUID]})
	}
	// In key order: queue's primary key and queue_next are led by the
	// channel id, and a batch's channels sort together (their ids begin
	// with their enrollments', mdmservice.NewChannelID), so sorted rows go
	// to neighbouring leaves one after the other.
	for _, rs := range rounds {
		slices.SortFunc(rs, func(a, b row) int { return strings.Compare(a.channel, b.channel) })
	}
	if s.d.SeqClock == "" && !s.seqs.started() {
		var last int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM queue`).Scan(&last); err != nil {
			return err
		}
		s.seqs.start(last)
	}
	if s.d.ArrayBatches {
		// One statement per round, its rows as arrays (the round's
		// channels differ: one seq for all of them, as below).
		for _, rs := range rounds {
			var seq int64
			if err := tx.QueryRowContext(ctx, `SELECT `+s.d.SeqClock).Scan(&seq); err != nil {
				return err
			}
			chans, uuids, vars, ats := make([]string, len(rs)), make([]string, len(rs)), make([]string, len(rs)), make([]int64, len(rs))
			for i, r := range rs {
				chans[i], uuids[i], vars[i], ats[i] = r.channel, r.uuid, r.vars, r.at
			}
			if _, err := tx.ExecContext(ctx, batchQueueArraysSQL, seq, store.QueueQueued, chans, uuids, ats, vars); err != nil {
				if e := s.constraint(err); errors.Is(e, store.ErrInUse) {
					return fmt.Errorf("a channel of the batch %w", store.ErrNotFound)
				}
				return s.constraint(err)
			}
		}
		return nil
	}
	for _, rs := range rounds {
		if err := chunks(rs, enqueueBatch, func(rs []row) error {
			var seq int64
			if s.d.SeqClock == "" {
				seq = s.seqs.next()
			} else if err := tx.QueryRowContext(ctx, `SELECT `+s.d.SeqClock).Scan(&seq); err != nil {
				return err
			}
			args := make([]any, 0, 6*len(rs))
			for _, r := range rs {
				args = append(args, r.channel, r.uuid, seq, store.QueueQueued, r.at, r.vars)
			}
			if _, err := tx.ExecContext(ctx, batchQueueValuesSQL(len(rs)), args...); err != nil {
				if e := s.constraint(err); errors.Is(e, store.ErrInUse) {
					return fmt.Errorf("a channel of the batch %w", store.ErrNotFound)
				}
				return s.constraint(err)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// batchQueueValuesSQL inserts n queue rows of a reconciler batch
// (channel, command, seq, status, updated_at, vars each).
func batchQueueValuesSQL(n int) string {
	return `INSERT INTO queue (channel_id, command_uuid, seq, status, updated_at, vars) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?), ", n), ", ")
}

// batchQueueArraysSQL inserts a round of a reconciler batch's queue rows
// from arrays (Dialect.ArrayBatches); arguments: seq, status, then the
// channels, commands, updated_at times and vars, one element per row.
const batchQueueArraysSQL = `INSERT INTO queue (channel_id, command_uuid, seq, status, updated_at, vars)
	SELECT t.c, t.u, ?, ?, t.a, t.v FROM unnest(CAST(? AS text[]), CAST(? AS text[]), CAST(? AS bigint[]), CAST(? AS text[])) AS t(c, u, a, v)`

// putItemsArrays is ApplyReconcile's upsert of the batch's profile items
// in one statement from arrays (Dialect.ArrayBatches).
func putItemsArrays(ctx context.Context, tx *Tx, its []store.ProfileItem) error {
	if len(its) == 0 {
		return nil
	}
	n := len(its)
	enr, prof, ident, state, hash, cmd, errs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	version, ack, attempts, retry, updated := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	for i, it := range its {
		enr[i], prof[i], ident[i], state[i], hash[i], cmd[i], errs[i] = it.DeviceID, it.ProfileID, it.Identifier, it.State, it.Hash, it.CommandUUID, it.Error
		version[i], ack[i], attempts[i], retry[i], updated[i] = int64(it.Version), int64(boolInt(it.Acknowledged)), int64(it.Attempts), toMicros(it.NextRetry), toMicros(it.UpdatedAt)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO profile_items (enrollment_id, profile_id, identifier, state, version, hash, command_uuid, acknowledged, attempts, error, next_retry, updated_at)
		SELECT * FROM unnest(CAST(? AS text[]), CAST(? AS text[]), CAST(? AS text[]), CAST(? AS text[]), CAST(? AS bigint[]), CAST(? AS text[]),
			CAST(? AS text[]), CAST(? AS bigint[]), CAST(? AS bigint[]), CAST(? AS text[]), CAST(? AS bigint[]), CAST(? AS bigint[]))
		ON CONFLICT (enrollment_id, profile_id) DO UPDATE SET identifier = excluded.identifier, state = excluded.state, version = excluded.version,
		hash = excluded.hash, command_uuid = excluded.command_uuid, acknowledged = excluded.acknowledged, attempts = excluded.attempts,
		error = excluded.error, next_retry = excluded.next_retry, updated_at = excluded.updated_at`,
		enr, prof, ident, state, version, hash, cmd, ack, attempts, errs, retry, updated)
	return err
}

// finishHeldArrays is holdsClaims and finishClaimsArrays in one: it
// finishes the claims of fs and returns store.ErrClaimLost unless it
// finished every one of them, so it runs first in ApplyReconcile's
// transaction and nothing of a batch whose claims were taken over is
// written (the caller rolls back). Each finishing statement touches a
// row only while holder claims it and leaves it unclaimed or deleted,
// so every held row is counted exactly once, duplicates in fs included.
// The count is made under the statements' own row locks: a concurrent
// claimer skips the rows until the batch commits (SKIP LOCKED), and a
// claim that committed first makes the count short (READ COMMITTED's
// re-check of claimed_by on the newest version), as holdsClaims' FOR
// UPDATE did.
func finishHeldArrays(ctx context.Context, tx *Tx, holder string, fs []store.FinishedClaim) error {
	if len(fs) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(fs))
	for _, f := range fs {
		seen[f.Dirty.DeviceID] = true
	}
	held, err := finishClaimsArrays(ctx, tx, holder, fs)
	if err != nil {
		return err
	}
	if held != int64(len(seen)) {
		return fmt.Errorf("%w: %s holds %d of its %d claims", store.ErrClaimLost, holder, held, len(seen))
	}
	return nil
}

// finishClaimsArrays is finishClaims with array parameters
// (Dialect.ArrayBatches): per group of claims due again at the same time
// one UPDATE (or, for claims that end, a DELETE and a release), each
// naming its rows by enrollment_id = ANY(ids) (probes of the primary key
// whatever the statistics, anyIDs: a pass over the whole queue per batch
// is quadratic in the fleet) and looking up each row's claimed generation in a jsonb
// object of id → gen: one statement and one small plan where the OR-lists
// took ten. A row still claimed by holder at its claimed gen is finished; one
// marked again since (another gen) only has its claim released, due as
// marked; one another holder took is left alone. Under READ COMMITTED
// PostgreSQL re-checks these conditions, and the CASEs, on the newest
// committed version of a row it had to wait for (a concurrent mark).
//
// It returns how many queue rows its statements finished (deleted or
// released): the claims holder still held.
func finishClaimsArrays(ctx context.Context, tx *Tx, holder string, fs []store.FinishedClaim) (int64, error) {
	var held int64
	count := func(res sql.Result, err error) error {
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		held += n
		return err
	}
	order, groups := groupByDue(fs)
	for _, k := range order {
		g := groups[k]
		ids := make([]string, len(g))
		gens := make(map[string]int64, len(g))
		for i, f := range g {
			ids[i], gens[f.Dirty.DeviceID] = f.Dirty.DeviceID, f.Dirty.Gen
		}
		gj, err := json.Marshal(gens)
		if err != nil {
			return 0, err
		}
		const claimed = `enrollment_id` + anyIDs + ` AND claimed_by = ?`
		const sameGen = `gen = CAST(CAST(? AS jsonb) ->> enrollment_id AS BIGINT)`
		if k.next == 0 {
			if err := count(tx.ExecContext(ctx, `DELETE FROM reconcile_queue WHERE `+claimed+` AND `+sameGen, ids, holder, string(gj))); err != nil {
				return 0, err
			}
			if err := count(tx.ExecContext(ctx, `UPDATE reconcile_queue SET claimed_by = '', claimed_until = 0 WHERE `+claimed, ids, holder)); err != nil {
				return 0, err
			}
			continue
		}
		if err := count(tx.ExecContext(ctx, `UPDATE reconcile_queue SET due_at = CASE WHEN `+sameGen+` THEN ? ELSE due_at END,
			verify = CASE WHEN `+sameGen+` THEN ? ELSE verify END, claimed_by = '', claimed_until = 0 WHERE `+claimed,
			string(gj), k.next, string(gj), boolInt(k.verify), ids, holder)); err != nil {
			return 0, err
		}
	}
	return held, nil
}

// due is when a finished claim's enrollment is due again (next in
// microseconds, 0: only when marked) and whether that is a verification.
type due struct {
	next   int64
	verify bool
}

// groupByDue groups finished claims by their due time, in the order each
// due time first appears: one finishing statement per group.
func groupByDue(fs []store.FinishedClaim) ([]due, map[due][]store.FinishedClaim) {
	groups := map[due][]store.FinishedClaim{}
	var order []due
	for _, f := range fs {
		k := due{toMicros(f.Next), f.Verify}
		if f.Next.IsZero() {
			k = due{}
		}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], f)
	}
	return order, groups
}

// finishClaims is FinishDirty for many claims of one holder: entries not
// marked again since the claim (same gen) go, or are due at their next
// time; the rest still claimed by holder were marked again and are
// released, due as marked. Claims another holder took are left alone.
func finishClaims(ctx context.Context, tx *Tx, holder string, fs []store.FinishedClaim) error {
	if tx.d.FinishByValues {
		return finishClaimsValues(ctx, tx, holder, fs)
	}
	match := func(fs []store.FinishedClaim) (string, []any) {
		var b strings.Builder
		args := make([]any, 0, 2*len(fs))
		for i, f := range fs {
			if i > 0 {
				b.WriteString(" OR ")
			}
			b.WriteString("(enrollment_id = ? AND gen = ?)")
			args = append(args, f.Dirty.DeviceID, f.Dirty.Gen)
		}
		return "(" + b.String() + ")", args
	}
	order, groups := groupByDue(fs)
	for _, k := range order {
		cond, args := match(groups[k])
		var err error
		if k.next == 0 {
			_, err = tx.ExecContext(ctx, `DELETE FROM reconcile_queue WHERE claimed_by = ? AND `+cond, append([]any{holder}, args...)...)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE reconcile_queue SET due_at = ?, verify = ?, claimed_by = '', claimed_until = 0 WHERE claimed_by = ? AND `+cond,
				append([]any{k.next, boolInt(k.verify), holder}, args...)...)
		}
		if err != nil {
			return err
		}
	}
	ids := make([]string, len(fs))
	for i, f := range fs {
		ids[i] = f.Dirty.DeviceID
	}
	_, err := tx.ExecContext(ctx, `UPDATE reconcile_queue SET claimed_by = '', claimed_until = 0 WHERE claimed_by = ? AND enrollment_id IN `+qmarks(len(ids)),
		append([]any{holder}, anys(ids)...)...)
	return err
}

// finishClaimsValues is finishClaims in one UPDATE joined with the
// claims as a VALUES list (Dialect.FinishByValues), after one DELETE for
// the claims that end (next zero): each queue row is found once, where
// finishClaims' UPDATE per due time and its release of the claims marked
// again each looked up every row. Same outcome, row by row: a row
// claimed by holder whose gen is the claim's goes (next zero) or is due
// at next with verify; one marked again since (gen moved) keeps its due
// and verify and is released; rows another holder claimed are left alone.
func finishClaimsValues(ctx context.Context, tx *Tx, holder string, fs []store.FinishedClaim) error {
	// An OR of (id AND gen) pairs: SQLite looks each up by the primary
	// key; (enrollment_id, gen) IN (VALUES …) was planned as a scan of
	// the whole queue.
	var b strings.Builder
	ending := []any{holder}
	for _, f := range fs {
		if f.Next.IsZero() {
			if len(ending) > 1 {
				b.WriteString(" OR ")
			}
			b.WriteString("(enrollment_id = ? AND gen = ?)")
			ending = append(ending, f.Dirty.DeviceID, f.Dirty.Gen)
		}
	}
	if len(ending) > 1 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM reconcile_queue WHERE claimed_by = ? AND (`+b.String()+`)`, ending...); err != nil {
			return err
		}
	}
	args := make([]any, 0, 4*len(fs)+1)
	for _, f := range fs {
		next := toMicros(f.Next)
		if f.Next.IsZero() {
			next = 0 // deleted above unless marked again: then only released
		}
		args = append(args, f.Dirty.DeviceID, f.Dirty.Gen, next, boolInt(f.Verify))
	}
	_, err := tx.ExecContext(ctx, finishValuesSQL(len(fs)), append(args, holder)...)
	return err
}

// finishValuesSQL is finishClaimsValues' UPDATE of n claims (id, gen,
// next, verify each; then the holder). TestFinishValuesPlan: one
// primary-key search per claim, no scan of the queue.
func finishValuesSQL(n int) string {
	return `WITH v(id, gen, next, verify) AS (VALUES ` + strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?), ", n), ", ") + `)
		UPDATE reconcile_queue SET
			due_at = CASE WHEN reconcile_queue.gen = v.gen THEN v.next ELSE reconcile_queue.due_at END,
			verify = CASE WHEN reconcile_queue.gen = v.gen THEN v.verify ELSE reconcile_queue.verify END,
			claimed_by = '', claimed_until = 0
		FROM v WHERE reconcile_queue.enrollment_id = v.id AND reconcile_queue.claimed_by = ?`
}

func (s *Store) ProfileItemForCommand(ctx context.Context, enrollmentID, commandUUID string) (*store.ProfileItem, error) {
	if commandUUID == "" {
		return nil, fmt.Errorf("profile item %w", store.ErrNotFound)
	}
	return scanItem(s.r.QueryRowContext(ctx, itemForCommandSQL, enrollmentID, commandUUID))
}

// Deleting and editing profiles (docs/profiles.md). A deleted profile is a
// tombstone (deleted_at) while the reconciler removes it from devices: its
// items cascade from its row and are what makes the reconciler send
// RemoveProfile.

func (s *Store) DeleteProfile(ctx context.Context, id string, now time.Time) error {
	return s.tx(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE config_profiles SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at = 0`, toMicros(now), toMicros(now), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("profile %w", store.ErrNotFound)
		}
		// Mark before the assignments go: markProfile finds the devices
		// through them (and through the items).
		if err := markProfile(ctx, tx, id, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM profile_assignments WHERE profile_id = ?`, id); err != nil {
			return err
		}
		// Nothing to remove anywhere: the row can go now.
		_, err = tx.ExecContext(ctx, `DELETE FROM config_profiles WHERE id = ? AND NOT EXISTS (SELECT 1 FROM profile_items WHERE profile_id = ?)`, id, id)
		return err
	})
}

// onDeviceCond: the item states in which something of the profile
// is (or is about to be) on the device; failed counts when acknowledged.
const onDeviceCond = `(state IN ('installed', 'installing', 'removing') OR (state = 'failed' AND acknowledged <> 0))`

func (s *Store) ProfileOnDevices(ctx context.Context, id string) (int, error) {
	if _, err := s.ConfigProfile(ctx, id); err != nil {
		return 0, err
	}
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM profile_items WHERE profile_id = ? AND `+onDeviceCond, id).Scan(&n)
	return n, err
}

func (s *Store) PurgeDeletedProfiles(ctx context.Context, tenantID, identifier string) (int, error) {
	var left int
	err := s.tx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM config_profiles WHERE tenant_id = ? AND deleted_at <> 0
			AND NOT EXISTS (SELECT 1 FROM profile_items i WHERE i.profile_id = config_profiles.id)`, tenantID); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM profile_items i JOIN config_profiles p ON p.id = i.profile_id
			WHERE p.tenant_id = ? AND p.identifier = ? AND p.deleted_at <> 0`, tenantID, identifier).Scan(&left)
	})
	return left, err
}

func (s *Store) UpdateProfile(ctx context.Context, id string, ch store.ProfileChange, now time.Time) (*store.ConfigProfile, error) {
	var out *store.ConfigProfile
	err := s.tx(ctx, func(tx *Tx) error {
		p, err := scanProfile(tx.QueryRowContext(ctx, `SELECT `+profileColumns+` FROM config_profiles WHERE id = ? AND deleted_at = 0`, id))
		if err != nil {
			return err
		}
		mark, resign := false, false
		if ch.Name != nil {
			p.Name = *ch.Name
		}
		if ch.Platforms != nil && strings.Join(*ch.Platforms, ",") != strings.Join(p.Platforms, ",") {
			p.Platforms, mark = *ch.Platforms, true
		}
		if ch.MinOS != nil && *ch.MinOS != p.MinOS {
			p.MinOS, mark = *ch.MinOS, true
		}
		if ch.Sign != nil && *ch.Sign != p.Sign {
			p.Sign, mark, resign = *ch.Sign, true, true
		}
		p.UpdatedAt = now
		if _, err := tx.ExecContext(ctx, `UPDATE config_profiles SET name = ?, platforms = ?, min_os = ?, sign = ?, updated_at = ? WHERE id = ?`,
			p.Name, strings.Join(p.Platforms, ","), p.MinOS, boolInt(p.Sign), toMicros(now), id); err != nil {
			return s.constraint(err)
		}
		if resign {
			// The delivered bytes change (signed or not) while the rendered
			// content's hash does not: a cleared hash makes the reconciler
			// install it again on every device that has it.
			if _, err := tx.ExecContext(ctx, `UPDATE profile_items SET hash = '', updated_at = ? WHERE profile_id = ? AND state <> 'removing'`, toMicros(now), id); err != nil {
				return err
			}
		}
		out = p
		if mark {
			return s.markLarge(ctx, tx, expandProfile, id, now)
		}
		return nil
	})
	return out, err
}

// Revocation (CRL and OCSP). revoked_certs is filled by triggers
// (migration 0019) whenever a certificate is revoked or deleted and when
// an enrollment ends, in the transaction that does it; revocation_count
// (migration 0026) counts them, so RevokedCount is one primary-key read.

func (s *Store) RevokedCount(ctx context.Context) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT n FROM revocation_count WHERE id = 1`).Scan(&n)
	return n, err
}

func scanRevoked(sc scanner) (*store.RevokedCert, error) {
	var r store.RevokedCert
	var na, ra int64
	err := sc.Scan(&r.Serial, &r.Kind, &na, &ra, &r.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("revoked certificate %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	r.NotAfter, r.RevokedAt = fromMicros(na), fromMicros(ra)
	return &r, nil
}

func (s *Store) RevokedCerts(ctx context.Context, notAfter time.Time) ([]store.RevokedCert, error) {
	return collect(ctx, s.r, scanRevoked, `SELECT serial, kind, not_after, revoked_at, reason FROM revoked_certs WHERE not_after > ? ORDER BY serial`, toMicros(notAfter))
}

func (s *Store) CertStatus(ctx context.Context, serial string) (string, *store.RevokedCert, error) {
	r, err := scanRevoked(s.r.QueryRowContext(ctx, `SELECT serial, kind, not_after, revoked_at, reason FROM revoked_certs WHERE serial = ?`, serial))
	if err == nil {
		return store.CertRevoked, r, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return "", nil, err
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM profile_certs WHERE serial = ?) + (SELECT COUNT(*) FROM identity_certs WHERE serial = ?)`,
		serial, serial).Scan(&n); err != nil {
		return "", nil, err
	}
	if n > 0 {
		return store.CertGood, nil, nil
	}
	return store.CertUnknown, nil, nil
}

func (s *Store) CRL(ctx context.Context) (*store.CRLState, error) {
	var c store.CRLState
	var tu, nu int64
	err := s.r.QueryRowContext(ctx, `SELECT number, revoked, this_update, next_update, der FROM crl_state WHERE id = 1`).Scan(&c.Number, &c.Revoked, &tu, &nu, &c.DER)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("CRL %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	c.ThisUpdate, c.NextUpdate = fromMicros(tu), fromMicros(nu)
	return &c, nil
}

func (s *Store) PutCRL(ctx context.Context, c *store.CRLState, prev int64) error {
	var res sql.Result
	var err error
	if prev == 0 {
		res, err = s.w.ExecContext(ctx, `INSERT INTO crl_state (id, number, revoked, this_update, next_update, der) VALUES (1, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING`, c.Number, c.Revoked, toMicros(c.ThisUpdate), toMicros(c.NextUpdate), c.DER)
	} else {
		res, err = s.w.ExecContext(ctx, `UPDATE crl_state SET number = ?, revoked = ?, this_update = ?, next_update = ?, der = ? WHERE id = 1 AND number = ?`,
			c.Number, c.Revoked, toMicros(c.ThisUpdate), toMicros(c.NextUpdate), c.DER, prev)
	}
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: another instance stored CRL number %d first", store.ErrConflict, c.Number)
	}
	return nil
}
