-- Issue 15, remaining gaps: deleting a profile (a tombstone until its
-- devices have removed it) and the revocation status of the certificates
-- Pomona's CA issues (CRL and OCSP, docs/security.md "Revocation").
-- The SQLite migration of the same number has the comments.

ALTER TABLE config_profiles ADD COLUMN deleted_at BIGINT NOT NULL DEFAULT 0;

CREATE TABLE revoked_certs (
	serial     TEXT PRIMARY KEY,
	kind       TEXT NOT NULL,
	not_after  BIGINT NOT NULL,
	revoked_at BIGINT NOT NULL,
	reason     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX revoked_certs_not_after ON revoked_certs(not_after);

CREATE TABLE crl_state (
	id          BIGINT PRIMARY KEY CHECK (id = 1),
	number      BIGINT NOT NULL,
	revoked     BIGINT NOT NULL,
	this_update BIGINT NOT NULL,
	next_update BIGINT NOT NULL,
	der         BYTEA NOT NULL
);

-- dialect: postgres
CREATE FUNCTION pomona_cert_revoked() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
	IF TG_OP = 'DELETE' THEN
		IF OLD.revoked_at = 0 THEN
			INSERT INTO revoked_certs (serial, kind, not_after, revoked_at, reason)
			VALUES (OLD.serial, TG_ARGV[0], OLD.not_after, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, 5)
			ON CONFLICT (serial) DO NOTHING;
		END IF;
		RETURN OLD;
	END IF;
	IF NEW.revoked_at <> 0 AND OLD.revoked_at = 0 THEN
		INSERT INTO revoked_certs (serial, kind, not_after, revoked_at, reason)
		VALUES (NEW.serial, TG_ARGV[0], NEW.not_after, NEW.revoked_at,
			CASE WHEN TG_ARGV[0] = 'identity' OR NEW.revoked_by = 'the enrollment ended' THEN 5 ELSE 0 END)
		ON CONFLICT (serial) DO NOTHING;
	END IF;
	RETURN NEW;
END
$fn$;

-- identity_certs has no revoked_by: a separate function keeps NEW's
-- fields known to plpgsql.
CREATE FUNCTION pomona_identity_revoked() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
	IF TG_OP = 'DELETE' THEN
		IF OLD.revoked_at = 0 THEN
			INSERT INTO revoked_certs (serial, kind, not_after, revoked_at, reason)
			VALUES (OLD.serial, 'identity', OLD.not_after, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, 5)
			ON CONFLICT (serial) DO NOTHING;
		END IF;
		RETURN OLD;
	END IF;
	IF NEW.revoked_at <> 0 AND OLD.revoked_at = 0 THEN
		INSERT INTO revoked_certs (serial, kind, not_after, revoked_at, reason)
		VALUES (NEW.serial, 'identity', NEW.not_after, NEW.revoked_at, 5)
		ON CONFLICT (serial) DO NOTHING;
	END IF;
	RETURN NEW;
END
$fn$;

CREATE TRIGGER profile_certs_revoked AFTER UPDATE OF revoked_at OR DELETE ON profile_certs
	FOR EACH ROW EXECUTE FUNCTION pomona_cert_revoked('user');
CREATE TRIGGER identity_certs_revoked AFTER UPDATE OF revoked_at OR DELETE ON identity_certs
	FOR EACH ROW EXECUTE FUNCTION pomona_identity_revoked();

CREATE FUNCTION pomona_enrollment_ended() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
	IF NEW.status = 'unenrolled' AND OLD.status <> 'unenrolled' THEN
		UPDATE profile_certs SET revoked_at = CASE WHEN NEW.unenrolled_at <> 0 THEN NEW.unenrolled_at ELSE NEW.updated_at END,
			revoked_by = 'the enrollment ended'
		WHERE enrollment_id = NEW.id AND revoked_at = 0;
	END IF;
	RETURN NEW;
END
$fn$;
CREATE TRIGGER enrollments_ended AFTER UPDATE OF status ON enrollments
	FOR EACH ROW EXECUTE FUNCTION pomona_enrollment_ended();
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
