-- Desired state (issue 15): groups of users, the configuration-profile
-- library, assignments, the state of each profile on each enrollment and
-- the reconciler's queue of enrollments to look at.

-- source: 'static' (members managed in Pomona), 'all' (the tenant's
-- implicit all-users group, no member rows); an identity-provider sync
-- will add its own source with read-only membership.
CREATE TABLE user_groups (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	source     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	UNIQUE (tenant_id, name)
);
-- One all-users group per tenant.
CREATE UNIQUE INDEX user_groups_all ON user_groups(tenant_id) WHERE source = 'all';

CREATE TABLE user_group_members (
	group_id TEXT NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
	user_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	PRIMARY KEY (group_id, user_id)
);
CREATE INDEX user_group_members_user ON user_group_members(user_id);

-- platforms: comma-separated (iOS, macOS), '' for both.
CREATE TABLE config_profiles (
	id            TEXT PRIMARY KEY,
	tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	identifier    TEXT NOT NULL,
	name          TEXT NOT NULL,
	platforms     TEXT NOT NULL DEFAULT '',
	min_os        TEXT NOT NULL DEFAULT '',
	sign          INTEGER NOT NULL DEFAULT 0,
	version       INTEGER NOT NULL,
	hash          TEXT NOT NULL,
	payload_types TEXT NOT NULL DEFAULT '',
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	UNIQUE (tenant_id, identifier)
);

CREATE TABLE config_profile_versions (
	profile_id TEXT NOT NULL REFERENCES config_profiles(id) ON DELETE CASCADE,
	version    INTEGER NOT NULL,
	plist      BLOB NOT NULL,
	hash       TEXT NOT NULL,
	signed     INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (profile_id, version)
);

CREATE TABLE profile_assignments (
	profile_id TEXT NOT NULL REFERENCES config_profiles(id) ON DELETE CASCADE,
	group_id   TEXT NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
	exclude    INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (profile_id, group_id)
);
CREATE INDEX profile_assignments_group ON profile_assignments(group_id);

-- One row per enrollment and profile Pomona manages on it.
CREATE TABLE profile_items (
	enrollment_id TEXT NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
	profile_id    TEXT NOT NULL REFERENCES config_profiles(id) ON DELETE CASCADE,
	identifier    TEXT NOT NULL,
	state         TEXT NOT NULL,
	version       INTEGER NOT NULL DEFAULT 0,
	hash          TEXT NOT NULL DEFAULT '',
	command_uuid  TEXT NOT NULL DEFAULT '',
	acknowledged  INTEGER NOT NULL DEFAULT 0,
	attempts      INTEGER NOT NULL DEFAULT 0,
	error         TEXT NOT NULL DEFAULT '',
	next_retry    INTEGER NOT NULL DEFAULT 0,
	updated_at    INTEGER NOT NULL,
	PRIMARY KEY (enrollment_id, profile_id)
);
CREATE INDEX profile_items_profile ON profile_items(profile_id, state, enrollment_id);
CREATE INDEX profile_items_command ON profile_items(command_uuid);

-- The reconciler's queue: enrollments whose desired or installed set may
-- have changed (or whose retry or verification is due). gen counts
-- markings, so a claim's holder can tell a marking made while it worked.
CREATE TABLE reconcile_queue (
	enrollment_id TEXT PRIMARY KEY REFERENCES enrollments(id) ON DELETE CASCADE,
	due_at        INTEGER NOT NULL,
	verify        INTEGER NOT NULL DEFAULT 0,
	gen           INTEGER NOT NULL DEFAULT 1,
	claimed_by    TEXT NOT NULL DEFAULT '',
	claimed_until INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX reconcile_queue_due ON reconcile_queue(due_at);

-- Per-user certificates inside profiles: a com.apple.security.scep payload
-- pointing at Pomona's SCEP service gets a one-time challenge (kind
-- 'profile') bound to the enrollment and the profile at delivery. What it
-- issues is a user certificate, never an MDM identity: it is recorded
-- here, not in identity_certs, so it can never authenticate on the MDM
-- channel.
ALTER TABLE scep_challenges ADD COLUMN profile_id TEXT NOT NULL DEFAULT '';

CREATE TABLE profile_certs (
	serial        TEXT PRIMARY KEY,
	enrollment_id TEXT NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
	profile_id    TEXT NOT NULL,
	subject       TEXT NOT NULL,
	email         TEXT NOT NULL DEFAULT '',
	sha256        BLOB NOT NULL,
	not_before    INTEGER NOT NULL,
	not_after     INTEGER NOT NULL,
	issued_at     INTEGER NOT NULL,
	revoked_at    INTEGER NOT NULL DEFAULT 0,
	revoked_by    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX profile_certs_enrollment ON profile_certs(enrollment_id);
