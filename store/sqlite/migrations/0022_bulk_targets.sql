-- Issue 17: a bulk command to a tenant selects its enrolled enrollments
-- (store EnqueueTargets: a count per platform, then one INSERT … SELECT
-- into the queue). Without this index that is a walk of every enrolled
-- enrollment's row (enrollments_status_last_seen, then the table); with
-- it, one range of the index, which holds every column the selection
-- reads of an enrollment (its id joins the device channel).
CREATE INDEX enrollments_targets ON enrollments(tenant_id, status, platform, id);
