-- Issue 15, remaining gaps: deleting a profile (a tombstone until its
-- devices have removed it) and the revocation status of the certificates
-- Pomona's CA issues (CRL and OCSP, docs/security.md "Revocation").

-- A deleted profile keeps its row (and its items) until the reconciler has
-- removed it from every device: profile_items cascade from this row, and
-- the items are what tells the reconciler to send RemoveProfile.
ALTER TABLE config_profiles ADD COLUMN deleted_at INTEGER NOT NULL DEFAULT 0;

-- Every revoked certificate of Pomona's CA: the source of the CRL and of
-- OCSP answers. Rows are never deleted (a certificate whose enrollment or
-- user is deleted stays revoked here); expired ones are left out of the
-- CRL. reason is the RFC 5280 §5.3.1 CRLReason code.
CREATE TABLE revoked_certs (
	serial     TEXT PRIMARY KEY,
	kind       TEXT NOT NULL,
	not_after  INTEGER NOT NULL,
	revoked_at INTEGER NOT NULL,
	reason     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX revoked_certs_not_after ON revoked_certs(not_after);

-- The current CRL, shared by every instance: number is the CRL number
-- (RFC 5280 §5.2.3), revoked the count of revoked_certs it reflects.
CREATE TABLE crl_state (
	id          INTEGER PRIMARY KEY CHECK (id = 1),
	number      INTEGER NOT NULL,
	revoked     INTEGER NOT NULL,
	this_update INTEGER NOT NULL,
	next_update INTEGER NOT NULL,
	der         BLOB NOT NULL
);

-- dialect: sqlite
-- Triggers, so that every path that revokes or deletes a certificate
-- (revocation by an admin, the end of an enrollment, deleting a user or a
-- tenant, replacing an enrollment's identity) shows in the CRL and OCSP in
-- the same transaction, whatever code made the change.
CREATE TRIGGER profile_certs_revoked AFTER UPDATE OF revoked_at ON profile_certs
WHEN NEW.revoked_at <> 0 AND OLD.revoked_at = 0
BEGIN
	INSERT INTO revoked_certs (serial, kind, not_after, revoked_at, reason)
	VALUES (NEW.serial, 'user', NEW.not_after, NEW.revoked_at, CASE WHEN NEW.revoked_by = 'the enrollment ended' THEN 5 ELSE 0 END)
	ON CONFLICT (serial) DO NOTHING;
END;

CREATE TRIGGER profile_certs_deleted AFTER DELETE ON profile_certs
WHEN OLD.revoked_at = 0
BEGIN
	INSERT INTO revoked_certs (serial, kind, not_after, revoked_at, reason)
	VALUES (OLD.serial, 'user', OLD.not_after, CAST(strftime('%s', 'now') AS INTEGER) * 1000000, 5)
	ON CONFLICT (serial) DO NOTHING;
END;

CREATE TRIGGER identity_certs_revoked AFTER UPDATE OF revoked_at ON identity_certs
WHEN NEW.revoked_at <> 0 AND OLD.revoked_at = 0
BEGIN
	INSERT INTO revoked_certs (serial, kind, not_after, revoked_at, reason)
	VALUES (NEW.serial, 'identity', NEW.not_after, NEW.revoked_at, 5)
	ON CONFLICT (serial) DO NOTHING;
END;

CREATE TRIGGER identity_certs_deleted AFTER DELETE ON identity_certs
WHEN OLD.revoked_at = 0
BEGIN
	INSERT INTO revoked_certs (serial, kind, not_after, revoked_at, reason)
	VALUES (OLD.serial, 'identity', OLD.not_after, CAST(strftime('%s', 'now') AS INTEGER) * 1000000, 5)
	ON CONFLICT (serial) DO NOTHING;
END;

-- Ending an enrollment revokes the user certificates of its profiles.
CREATE TRIGGER enrollments_ended AFTER UPDATE OF status ON enrollments
WHEN NEW.status = 'unenrolled' AND OLD.status <> 'unenrolled'
BEGIN
	UPDATE profile_certs SET revoked_at = CASE WHEN NEW.unenrolled_at <> 0 THEN NEW.unenrolled_at ELSE NEW.updated_at END,
		revoked_by = 'the enrollment ended'
	WHERE enrollment_id = NEW.id AND revoked_at = 0;
END;
-- end dialect

-- What was revoked before this migration.
UPDATE profile_certs SET revoked_at = (SELECT CASE WHEN e.unenrolled_at <> 0 THEN e.unenrolled_at ELSE e.updated_at END FROM enrollments e WHERE e.id = profile_certs.enrollment_id),
	revoked_by = 'the enrollment ended'
WHERE revoked_at = 0 AND enrollment_id IN (SELECT id FROM enrollments WHERE status = 'unenrolled');
INSERT INTO revoked_certs (serial, kind, not_after, revoked_at, reason)
	SELECT serial, 'user', not_after, revoked_at, 0 FROM profile_certs WHERE revoked_at <> 0
	ON CONFLICT (serial) DO NOTHING;
INSERT INTO revoked_certs (serial, kind, not_after, revoked_at, reason)
	SELECT serial, 'identity', not_after, revoked_at, 5 FROM identity_certs WHERE revoked_at <> 0
	ON CONFLICT (serial) DO NOTHING;
