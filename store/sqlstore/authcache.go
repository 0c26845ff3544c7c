package sqlstore

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// authCacheGeneration bounds the remembered sender reads: two
// generations of this many (when the current one is full it becomes the
// old one and the old one is dropped; a hit in the old one moves the
// entry back), plus one last-seen time per channel this store touched
// (at most twice this many). A sender costs ~700 B with its key and its
// channel's last-seen time (TestAuthCacheEntrySize measures it, with
// strings of real lengths), so the cache holds at most ~50 MB: 500 B per
// device at 100,000 enrolled (issue 17 bounds the server at 2 KiB per
// device for everything). A device whose last request was among the
// last 32,768–65,536 distinct senders is answered from it (a command's
// answers come right after its poll); an older one costs the read it
// cost before.
const authCacheGeneration = 1 << 15

// authCache remembers what a command-channel request's sender read
// (DeviceRequest with DeviceRequestQuery.Idle, deviceRequestIdleSQL) —
// the identity certificate, its enrollment and user, the bearer's token,
// the channel — by the query's serial, token hash, channel kind and
// EnrollmentUserID, so that the next request of the same sender is
// answered without that read. It is used only where every write that can
// change such a read is seen at once:
//
//   - SQLite (Dialect.AuthGeneration): triggers count those writes in
//     auth_generation (migration 0032), whoever makes them; an entry
//     remembers the count read in the same statement as its row, and is
//     used only when the count read with the request (one row, in the
//     statement of the Idle poll's queue look, or alone for a result) is
//     still that count. A revocation committed by any connection or
//     process is seen by the next request.
//   - PostgreSQL (not OneProcess): only while the backend's change
//     listener hears the notices of the same writes (SetAuthWatched,
//     migration 0032's triggers on channel pomona_auth); every notice,
//     and every such write through this store (changed, after its
//     commit), forgets every entry. Another instance's revocation takes
//     this one's requests once its notice arrived (it is sent at the
//     revoking commit; on one host well under a millisecond): a request
//     answered in that moment is answered as if it had come a moment
//     before the revocation.
//
// What is remembered is exactly what deviceRequestIdleSQL reads except
// CommandWaiting (the queue changes with every command: an Idle poll
// still reads it, one statement on the channel's queue rows — on
// PostgreSQL not when the channel's queue was read empty since the last
// notice or own write that may have filled it: empty) and the
// channel's last-seen time, which this store's TouchChannel records
// (seen) so that a channel is touched once a minute, as without the
// cache. Only found senders are remembered, revoked ones too (the caller
// decides on RevokedAt and Status).
type authCache struct {
	mu sync.Mutex
	// heard is when the backend's change listener last heard from the
	// database (ListenerHeard; ns since monoStart, monotonic): what is
	// remembered is used only within ListenerFreshFor of it.
	heard atomic.Int64
	// gen counts the changes this store heard of (PostgreSQL): an entry
	// read under another count is not used, and a read during a change
	// is not kept.
	gen     uint64
	watched bool
	cur     map[string]*authEntry
	old     map[string]*authEntry
	// seen is the last-seen time (µs) this store last wrote per channel
	// id (TouchChannel).
	seen map[string]int64
	// empty holds the ids of channels whose queue this store read with
	// no command an Idle poll would be handed (PostgreSQL, while
	// watched; at most 2*authCacheGeneration ids, ~100 B each): a
	// remembered sender's Idle poll on such a channel is answered with
	// no statement. A channel leaves it when its queue may have gained
	// such a command: a notice of migration 0033's triggers (any
	// instance's write; QueueChanged) or this store's own enqueue, after
	// its commit (queueWritten). qgen counts those, so that a read made
	// while one happened is not kept.
	empty map[string]struct{}
	qgen  uint64
}

// authEntry is one remembered read: the fields store.DeviceRequest lists
// for Idle, less what the query names.
type authEntry struct {
	// gen is the store's count (PostgreSQL) or auth_generation (SQLite)
	// the row was read under.
	gen                                                   uint64
	deviceID, tenantID, userID, platform, status, appleID string
	revoked, notBefore                                    int64
	enabled                                               bool
	// The bearer's token (tok: found): its owner, tenant and device
	// share the enrollment's strings when equal (they are, for a token
	// the device's own sign-in issued).
	tok                                bool
	tokUser, tokTenant, tokDevice      string
	tokCreated, tokExpires, tokRevoked int64
	// chID is the channel's id ("": none); chSeen its last_seen_at as
	// read (µs).
	chID   string
	chSeen int64
}

// authKey is q's key: the fields deviceRequestIdleSQL's parameters are
// made of, unambiguously — the serial (hex) and the channel kind (one of
// mdm's constants) hold no NUL, the EnrollmentUserID (from the device's
// plist) is length-prefixed, and the token hash is the rest.
func authKey(q store.DeviceRequestQuery) string {
	return q.Serial + "\x00" + q.ChannelKind + "\x00" + strconv.Itoa(len(q.EnrollmentUserID)) + "\x00" + q.EnrollmentUserID + string(q.TokenHash)
}

// changed forgets every entry: call it after every write through this
// store that can change a remembered read (after its commit, whether it
// succeeded or not); the backend's change listener calls it for the
// notices of every instance's writes (AuthChanged).
func (c *authCache) changed() {
	c.mu.Lock()
	c.gen++
	c.cur, c.old, c.seen = nil, nil, nil
	c.mu.Unlock()
}

// get returns key's entry (nil: none) and the current count; mu held.
func (c *authCache) get(key string) *authEntry {
	if e := c.cur[key]; e != nil {
		return e
	}
	e := c.old[key]
	if e != nil {
		c.putLocked(key, e)
		delete(c.old, key)
	}
	return e
}

// putLocked remembers e under key, starting a new generation when the
// current one is full; mu held.
func (c *authCache) putLocked(key string, e *authEntry) {
	if len(c.cur) >= authCacheGeneration {
		c.old, c.cur = c.cur, nil
	}
	if c.cur == nil {
		c.cur = make(map[string]*authEntry)
	}
	c.cur[key] = e
}

// queueWritten forgets that channel ch's queue was seen empty (every
// channel's when ch is ""): call it after the commit of every write
// through this store that can give a channel a command an Idle poll
// would be handed (whether it succeeded or not); the change listener
// calls it for every instance's such writes (QueueChanged).
func (c *authCache) queueWritten(ch string) {
	c.mu.Lock()
	c.qgen++
	if ch == "" {
		c.empty = nil
	} else {
		delete(c.empty, ch)
	}
	c.mu.Unlock()
}

// sawEmpty records that channel ch's queue was read empty by a read
// begun when qgen was the count: kept only if nothing was written to a
// queue since and the listener still listens.
func (c *authCache) sawEmpty(ch string, qgen uint64) {
	c.mu.Lock()
	if c.watched && c.qgen == qgen {
		if len(c.empty) >= 2*authCacheGeneration {
			c.empty = nil // those channels' next Idle polls read their queue: harmless
		}
		if c.empty == nil {
			c.empty = make(map[string]struct{})
		}
		c.empty[ch] = struct{}{}
	}
	c.mu.Unlock()
}

// touched records that this store wrote channel id's last-seen time.
func (c *authCache) touched(id string, at int64) {
	c.mu.Lock()
	if len(c.seen) >= 2*authCacheGeneration {
		c.seen = nil // a channel then is touched once more: harmless
	}
	if c.seen == nil {
		c.seen = make(map[string]int64)
	}
	c.seen[id] = at
	c.mu.Unlock()
}

// request is the store.DeviceRequest of e for q (CommandWaiting as
// given; the channel's last-seen time this store's last write of it,
// seen, else the one read: another instance's later touch is not seen,
// so each instance touches a channel at most once a minute).
func (e *authEntry) request(q store.DeviceRequestQuery, waiting bool, seen int64) *store.DeviceRequest {
	r := &store.DeviceRequest{CommandWaiting: waiting}
	r.IdentityCert.Serial, r.IdentityCert.DeviceID, r.IdentityCert.RevokedAt = q.Serial, e.deviceID, fromMicros(e.revoked)
	r.Enrollment.ID, r.Enrollment.TenantID, r.Enrollment.UserID = e.deviceID, e.tenantID, e.userID
	r.Enrollment.Platform, r.Enrollment.Status, r.Enrollment.AppleEnrollmentID = e.platform, e.status, e.appleID
	r.User.ID, r.User.Enabled, r.User.TokensNotBefore = e.userID, e.enabled, fromMicros(e.notBefore)
	if e.tok {
		r.AccessToken = &store.AccessToken{Hash: q.TokenHash, UserID: e.tokUser, TenantID: e.tokTenant, DeviceID: e.tokDevice,
			CreatedAt: fromMicros(e.tokCreated), ExpiresAt: fromMicros(e.tokExpires), RevokedAt: fromMicros(e.tokRevoked)}
	}
	if e.chID != "" {
		r.Channel = &store.Channel{ID: e.chID, DeviceID: e.deviceID, Kind: q.ChannelKind, EnrollmentUserID: q.EnrollmentUserID,
			LastSeenAt: fromMicros(e.chSeen)}
		if seen != 0 {
			r.Channel.LastSeenAt = fromMicros(seen)
		}
	}
	return r
}

// authGenSQL reads auth_generation (SQLite) for a remembered sender whose
// request does not look at the queue; authGenWaitingSQL with the
// channel's commandWaitingSQL, one statement for an Idle poll.
const (
	authGenSQL        = `SELECT gen AS a FROM auth_generation WHERE id = 1`
	authGenWaitingSQL = `SELECT g.gen AS a, ` + commandWaitingSQL + ` AS b FROM auth_generation g, (SELECT ? AS id) c WHERE g.id = 1`
	// commandWaitingOnlySQL is commandWaitingSQL for a channel id alone
	// (PostgreSQL's remembered sender's Idle poll).
	commandWaitingOnlySQL = `SELECT ` + commandWaitingSQL + ` AS a FROM (SELECT CAST(? AS TEXT) AS id) c`
)

// SetAuthWatched tells the store whether its backend's change listener
// hears every committed write that can change a sender's read (true only
// once it listens), so that DeviceRequest may answer from what it
// remembers (authCache). Either way every entry is forgotten: a notice may
// have been missed while the listener was away. For backends whose
// instances share the database (not Dialect.AuthGeneration).
func (s *Store) SetAuthWatched(on bool) {
	c := &s.auth
	c.mu.Lock()
	c.gen++
	c.qgen++
	c.cur, c.old, c.seen, c.empty, c.watched = nil, nil, nil, nil, on
	c.mu.Unlock()
}

// ListenerFreshFor is how long after the change listener last heard
// from the database (a notice, or its own probe's answer: ListenerHeard)
// a remembered sender, a queue seen empty or the remembered webhook list
// may still be used. A listener
// whose connection died without a word hears nothing — notices of
// commits meanwhile are lost — and is only found out when its probe
// times out; until then the store would answer Idle polls from what it
// saw (a command enqueued through another instance told "none waits",
// the device left asleep until the re-push, 15 minutes on), and accept a
// sender revoked through another instance. The listener probes when it
// has heard nothing for a third of this.
const ListenerFreshFor = 3 * time.Second

// ListenerHeard tells the store that its backend's change listener heard
// from the database at at (a notice, a probe's answer): what the store
// remembers may be used until ListenerFreshFor after it.
func (s *Store) ListenerHeard(at time.Time) { s.auth.heard.Store(int64(at.Sub(monoStart))) }

// listenerFresh says whether the change listener heard from the
// database within ListenerFreshFor (ListenerHeard).
func (s *Store) listenerFresh() bool {
	return int64(time.Since(monoStart))-s.auth.heard.Load() <= int64(ListenerFreshFor)
}

// monoStart is the origin of authCache.heard (a clock set back must not
// make an old hearing look recent).
var monoStart = time.Now()

// QueueChanged forgets that channel id's queue was seen empty (every
// channel's when id is ""): the backend's change listener calls it for
// each notice of a committed write that may have given a channel a
// command an Idle poll would be handed (migration 0033), by any instance.
func (s *Store) QueueChanged(id string) { s.auth.queueWritten(id) }

// AuthChanged forgets every remembered sender: the backend's change
// listener calls it for each notice of a committed write that can change
// one, by any instance.
func (s *Store) AuthChanged() { s.auth.changed() }

// cachedDeviceRequest answers q (Idle) from what the store remembers; ok
// false when it cannot (nothing remembered, the count moved on, or no
// way to know). A remembered sender costs no statement when q.NoWaiting,
// else the queue look (with auth_generation on SQLite).
func (s *Store) cachedDeviceRequest(ctx context.Context, q store.DeviceRequestQuery, key string) (r *store.DeviceRequest, ok bool, err error) {
	c := &s.auth
	if !s.d.AuthGeneration && !s.listenerFresh() {
		// The listener has not heard from the database lately: its
		// connection may be dead without a word (a failover, a firewall
		// dropping an idle connection), and the notices of other
		// instances' writes lost with it, until its probe times out.
		return nil, false, nil
	}
	c.mu.Lock()
	if !s.d.AuthGeneration && !c.watched {
		c.mu.Unlock()
		return nil, false, nil
	}
	e := c.get(key)
	gen, qgen := c.gen, c.qgen
	var seen int64
	var empty bool
	if e != nil && e.chID != "" {
		seen = c.seen[e.chID]
		_, empty = c.empty[e.chID]
	}
	c.mu.Unlock()
	if e == nil {
		return nil, false, nil
	}
	var waiting int64
	if s.d.AuthGeneration {
		var dbGen int64
		if q.NoWaiting || e.chID == "" {
			err = s.r.QueryRowContext(ctx, authGenSQL).Scan(&dbGen)
		} else {
			err = s.r.QueryRowContext(ctx, authGenWaitingSQL, e.chID).Scan(&dbGen, &waiting)
		}
		if err != nil || uint64(dbGen) != e.gen {
			return nil, false, err
		}
	} else {
		if e.gen != gen {
			return nil, false, nil
		}
		if !q.NoWaiting && e.chID != "" && !empty {
			if err := s.r.QueryRowContext(ctx, commandWaitingOnlySQL, e.chID).Scan(&waiting); err != nil {
				return nil, false, err
			}
			if waiting == 0 {
				c.sawEmpty(e.chID, qgen)
			}
		}
	}
	return e.request(q, waiting != 0, seen), true, nil
}

// authBegin returns the count to remember a read under (PostgreSQL),
// the count of queue writes (sawEmpty) and whether reads are remembered
// at all.
func (s *Store) authBegin() (gen, qgen uint64, on bool) {
	c := &s.auth
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen, c.qgen, s.d.AuthGeneration || c.watched
}

// authRemember keeps e (read after authBegin returned gen) unless a
// change was heard meanwhile (PostgreSQL; on SQLite e.gen is the
// database's count, read with the row).
func (s *Store) authRemember(key string, e *authEntry, gen uint64) {
	c := &s.auth
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.d.AuthGeneration {
		c.putLocked(key, e)
		return
	}
	if c.watched && c.gen == gen {
		e.gen = gen
		c.putLocked(key, e)
	}
}

// same returns b, or a when they are equal: one string kept, not two.
func same(a, b string) string {
	if a == b {
		return a
	}
	return b
}
