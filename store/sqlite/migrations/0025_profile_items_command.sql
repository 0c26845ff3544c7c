-- Session 9 (lane wave, issue 17): the item an acknowledged InstallProfile
-- answers is found by (enrollment_id, command_uuid). Since profiles are
-- rendered at delivery (0021) a batch of up to 1,000 devices shares ONE
-- template command, so command_uuid alone matches up to 1,000 items, and
-- SQLite (no statistics) picked profile_items_command(command_uuid) over
-- the primary key: every acknowledged install walked its batch's items and
-- their rows to find its own (~0.4 ms of the wave's ~1.5 ms per answer at
-- 20,000 devices). With the enrollment in the index the lookup is one
-- entry; lookups by command_uuid alone use its first column as before.
DROP INDEX profile_items_command;
CREATE INDEX profile_items_command ON profile_items(command_uuid, enrollment_id);
