-- Session 6 (lane gaps): a new delivery of a profile supersedes the user
-- certificates issued through earlier deliveries to that device, and the
-- CRL's change check reads one row instead of counting the revocations.

-- The InstallProfile command that carried a profile's one-time SCEP
-- challenge, and so the command through which a user certificate was
-- issued. When the device acknowledges a later install of the profile
-- (which replaces the earlier one, keychain identity included), the
-- certificates issued through other commands are revoked as superseded
-- (AcknowledgeProfileItem). Rows from before this migration have '' and are
-- superseded by the next acknowledged install.
ALTER TABLE scep_challenges ADD COLUMN command_uuid TEXT NOT NULL DEFAULT '';
ALTER TABLE profile_certs ADD COLUMN command_uuid TEXT NOT NULL DEFAULT '';

-- The number of revocations ever recorded (rows of revoked_certs, never
-- deleted), kept by a trigger in the transaction that records one: a CRL
-- reflecting n revocations is current while this is n. Reading it is one
-- primary-key read, where COUNT(*) of revoked_certs grew with the list.
CREATE TABLE revocation_count (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	n  INTEGER NOT NULL
);
INSERT INTO revocation_count (id, n) SELECT 1, COUNT(*) FROM revoked_certs;

-- dialect: sqlite
CREATE TRIGGER revoked_certs_counted AFTER INSERT ON revoked_certs
BEGIN
	UPDATE revocation_count SET n = n + 1 WHERE id = 1;
END;

-- RFC 5280 §5.3.1 reason superseded (4) for a certificate replaced by a
-- new delivery of its profile.
DROP TRIGGER profile_certs_revoked;
CREATE TRIGGER profile_certs_revoked AFTER UPDATE OF revoked_at ON profile_certs
WHEN NEW.revoked_at <> 0 AND OLD.revoked_at = 0
BEGIN
	INSERT INTO revoked_certs (serial, kind, not_after, revoked_at, reason)
	VALUES (NEW.serial, 'user', NEW.not_after, NEW.revoked_at,
		CASE WHEN NEW.revoked_by = 'the enrollment ended' THEN 5 WHEN NEW.revoked_by = 'superseded by a new delivery of the profile' THEN 4 ELSE 0 END)
	ON CONFLICT (serial) DO NOTHING;
END;
-- end dialect
