-- Identity renewal: a renewal re-sends the enrollment profile (InstallProfile)
-- with a one-time SCEP challenge bound to the existing enrollment.

-- kind: 'enrollment' (handed out with the profile fetch) or 'renewal' (in a
-- re-sent profile); renews: serial of the certificate a renewal replaces.
ALTER TABLE scep_challenges ADD COLUMN kind TEXT NOT NULL DEFAULT 'enrollment';
ALTER TABLE scep_challenges ADD COLUMN renews TEXT NOT NULL DEFAULT '';

-- The immutable MDM-payload keys of the profile an enrollment was handed:
-- a re-sent profile repeats them even if the user's Managed Apple Account,
-- the public URL or the push topic changed since (a device refuses a change
-- with MCMDMErrorDomain 12012).
CREATE TABLE enrollment_profiles (
	enrollment_id    TEXT PRIMARY KEY REFERENCES enrollments(id) ON DELETE CASCADE,
	managed_apple_id TEXT NOT NULL,
	topic            TEXT NOT NULL,
	server_url       TEXT NOT NULL,
	checkin_url      TEXT NOT NULL,
	updated_at       INTEGER NOT NULL
);

-- The renewal job selects certificates by expiry.
CREATE INDEX identity_certs_not_after ON identity_certs(not_after);

-- One row per certificate being renewed: queued when the InstallProfile is
-- queued, done when SCEP issued its successor, failed when the device
-- answered Error or did not come for its certificate in time.
CREATE TABLE renewals (
	serial        TEXT PRIMARY KEY REFERENCES identity_certs(serial) ON DELETE CASCADE,
	enrollment_id TEXT NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
	command_uuid  TEXT NOT NULL DEFAULT '',
	status        TEXT NOT NULL,
	attempts      INTEGER NOT NULL,
	error         TEXT NOT NULL DEFAULT '',
	new_serial    TEXT NOT NULL DEFAULT '',
	queued_at     INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
);
CREATE INDEX renewals_enrollment ON renewals(enrollment_id);
CREATE INDEX renewals_command ON renewals(command_uuid);
CREATE INDEX renewals_status ON renewals(status, updated_at);
