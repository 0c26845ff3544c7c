-- Re-enrollment and silence (docs/lifecycle.md).

-- The likely predecessor of an enrollment: an earlier enrollment of the same
-- user with the same platform and model that fell silent shortly before this
-- one enrolled (a device erased or re-enrolled gets a new EnrollmentID, and a
-- user enrollment reveals no hardware identifier to match). '' when none. A
-- hint for administrators, not a foreign key: both rows belong to one user
-- and go together. An enrollment is the predecessor of at most one other.
ALTER TABLE enrollments ADD COLUMN predecessor_id TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX enrollments_predecessor ON enrollments(predecessor_id) WHERE predecessor_id <> '';

-- Silent devices (enrolled, not seen since a cut-off) are counted, listed
-- and retired through this index: the cost follows the silent devices, not
-- the fleet.
CREATE INDEX enrollments_status_last_seen ON enrollments(status, last_seen_at);
