-- Session 9 (lane wave, issue 17): the item an acknowledged InstallProfile
-- answers is found by (enrollment_id, command_uuid). Since profiles are
-- rendered at delivery (0021) a batch of up to 1,000 devices shares ONE
-- template command, so command_uuid alone matches up to 1,000 items.
-- SQLite (no statistics) walked them all through profile_items_command;
-- PostgreSQL's statistics steer it to the primary key, but the index is
-- the same on both stores so that neither depends on a planner's guess:
-- with the enrollment in it the lookup is one entry, and lookups by
-- command_uuid alone use its first column as before.
DROP INDEX profile_items_command;
CREATE INDEX profile_items_command ON profile_items(command_uuid, enrollment_id);
