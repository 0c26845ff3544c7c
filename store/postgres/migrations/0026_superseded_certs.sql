-- Session 6 (lane gaps): superseded user certificates, the CRL's change
-- counter. The SQLite migration of the same number has the comments.

ALTER TABLE scep_challenges ADD COLUMN command_uuid TEXT NOT NULL DEFAULT '';
ALTER TABLE profile_certs ADD COLUMN command_uuid TEXT NOT NULL DEFAULT '';

CREATE TABLE revocation_count (
	id BIGINT PRIMARY KEY CHECK (id = 1),
	n  BIGINT NOT NULL
);
INSERT INTO revocation_count (id, n) SELECT 1, COUNT(*) FROM revoked_certs;

-- dialect: postgres
-- Concurrent revoking transactions update this one row: under
-- SERIALIZABLE the later one is retried (sqlstore's transactions retry
-- 40001), under READ COMMITTED it waits for the first to commit — either
-- way no count is lost.
CREATE FUNCTION pomona_revocation_counted() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
	UPDATE revocation_count SET n = n + 1 WHERE id = 1;
	RETURN NEW;
END
$fn$;
CREATE TRIGGER revoked_certs_counted AFTER INSERT ON revoked_certs
	FOR EACH ROW EXECUTE FUNCTION pomona_revocation_counted();

CREATE OR REPLACE FUNCTION pomona_cert_revoked() RETURNS trigger LANGUAGE plpgsql AS $fn$
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
			CASE WHEN TG_ARGV[0] = 'identity' OR NEW.revoked_by = 'the enrollment ended' THEN 5
				WHEN NEW.revoked_by = 'superseded by a new delivery of the profile' THEN 4 ELSE 0 END)
		ON CONFLICT (serial) DO NOTHING;
	END IF;
	RETURN NEW;
END
$fn$;
-- end dialect
