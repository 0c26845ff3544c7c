-- Issue 17 (bulk): a queue row's channel and command are checked once per
-- statement, not once per row.
--
-- The foreign keys queue → channels and queue → commands ran two
-- row-level triggers per queued row, each a SELECT … FOR KEY SHARE
-- through SPI: for one command to 100,000 devices, 200,000 executor
-- starts, a third of the INSERT … SELECT's CPU (docs/benchmarks.md,
-- "Session 7 — bulk"). PostgreSQL replaces them with one statement-level
-- trigger that does the same checks as two joins of the statement's new
-- rows; the guarantees stay those of the foreign keys, enforced by the
-- database whatever writes the queue (a delete of a channel or command at
-- REPEATABLE READ is refused, see pomona_queue_cascade):
--   - an inserted queue row's channel and command exist, and are locked
--     FOR KEY SHARE until the inserting transaction ends (as the foreign
--     key's check locks them), so a concurrent delete of either waits for
--     it, or the insert fails (foreign_key_violation, SQLSTATE 23503, with
--     the old constraint's name; or a serialization failure);
--   - deleting a channel or a command deletes its queue rows (ON DELETE
--     CASCADE), from a row-level trigger, as the foreign key's action did;
--   - a queue row's channel_id and command_uuid, and the referenced
--     channels.id and commands.uuid, never change (nothing updates them;
--     the foreign keys allowed re-pointing a row, which no code did).
-- SQLite keeps its foreign keys (each check there is a B-tree probe in
-- the same VDBE program, not a separate query): its part is empty.
-- dialect: postgres
ALTER TABLE queue DROP CONSTRAINT queue_channel_id_fkey;
ALTER TABLE queue DROP CONSTRAINT queue_command_uuid_fkey;

CREATE FUNCTION pomona_queue_refs() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
	total bigint;
	found bigint;
BEGIN
	SELECT count(*) INTO total FROM new_rows;
	IF total <= 64 THEN
		-- Small statements (a single enqueue): a probe of each parent's
		-- primary key per row, a plan cached with the function.
		SELECT count(*) INTO found FROM (SELECT 1 FROM new_rows n JOIN commands c ON c.uuid = n.command_uuid FOR KEY SHARE OF c) l;
		IF found = total THEN
			SELECT count(*) INTO found FROM (SELECT 1 FROM new_rows n JOIN channels c ON c.id = n.channel_id FOR KEY SHARE OF c) l;
			IF found <> total THEN
				RAISE EXCEPTION 'insert or update on table "queue" violates foreign key constraint "queue_channel_id_fkey"'
					USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'queue_channel_id_fkey', TABLE = 'queue';
			END IF;
		ELSE
			RAISE EXCEPTION 'insert or update on table "queue" violates foreign key constraint "queue_command_uuid_fkey"'
				USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'queue_command_uuid_fkey', TABLE = 'queue';
		END IF;
		RETURN NULL;
	END IF;
	-- Large statements (a bulk command): planned now, with the real row
	-- count (a cached plan could be the small one's nested loop): the
	-- commands grouped first (a bulk names one), each locked once; the
	-- channels in one hash join, each locked once per row naming it.
	EXECUTE 'SELECT COALESCE(sum(l.n), 0) FROM (SELECT g.n FROM (SELECT command_uuid, count(*) AS n FROM new_rows GROUP BY command_uuid) g
		JOIN commands c ON c.uuid = g.command_uuid FOR KEY SHARE OF c) l' INTO found;
	IF found <> total THEN
		RAISE EXCEPTION 'insert or update on table "queue" violates foreign key constraint "queue_command_uuid_fkey"'
			USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'queue_command_uuid_fkey', TABLE = 'queue';
	END IF;
	EXECUTE 'SELECT count(*) FROM (SELECT 1 FROM new_rows n JOIN channels c ON c.id = n.channel_id FOR KEY SHARE OF c) l' INTO found;
	IF found <> total THEN
		RAISE EXCEPTION 'insert or update on table "queue" violates foreign key constraint "queue_channel_id_fkey"'
			USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'queue_channel_id_fkey', TABLE = 'queue';
	END IF;
	RETURN NULL;
END
$fn$;
CREATE TRIGGER queue_refs AFTER INSERT ON queue REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION pomona_queue_refs();

-- ON DELETE CASCADE, as the foreign keys' actions: TG_ARGV[0] is the
-- queue column that names the deleted row.
-- At REPEATABLE READ the trigger's DELETE runs on the transaction's
-- snapshot and would miss queue rows a concurrent transaction committed
-- after it (orphans; a foreign key's cascade checks with a fresh snapshot
-- and fails with a serialization error instead): such a delete is
-- refused. READ COMMITTED (a fresh snapshot per statement, after the
-- wait for the inserter's key-share lock) and SERIALIZABLE (the
-- conflict is detected) are safe; Pomona deletes at SERIALIZABLE.
CREATE FUNCTION pomona_queue_cascade() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
	IF current_setting('transaction_isolation') = 'repeatable read' THEN
		RAISE EXCEPTION 'deleting from % at REPEATABLE READ is refused: its cascade to queue could miss rows of concurrent inserts', TG_TABLE_NAME
			USING ERRCODE = 'feature_not_supported', HINT = 'delete at READ COMMITTED or SERIALIZABLE';
	END IF;
	IF TG_ARGV[0] = 'channel_id' THEN
		DELETE FROM queue WHERE channel_id = OLD.id;
	ELSE
		DELETE FROM queue WHERE command_uuid = OLD.uuid;
	END IF;
	RETURN NULL;
END
$fn$;
CREATE TRIGGER queue_channel_cascade AFTER DELETE ON channels FOR EACH ROW EXECUTE FUNCTION pomona_queue_cascade('channel_id');
CREATE TRIGGER queue_command_cascade AFTER DELETE ON commands FOR EACH ROW EXECUTE FUNCTION pomona_queue_cascade('command_uuid');

CREATE FUNCTION pomona_queue_keys_fixed() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
	RAISE EXCEPTION 'the key columns of % never change (they were foreign keys of queue)', TG_TABLE_NAME
		USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME;
END
$fn$;
CREATE TRIGGER queue_keys_fixed BEFORE UPDATE OF channel_id, command_uuid ON queue FOR EACH ROW
	WHEN (OLD.channel_id IS DISTINCT FROM NEW.channel_id OR OLD.command_uuid IS DISTINCT FROM NEW.command_uuid)
	EXECUTE FUNCTION pomona_queue_keys_fixed();
CREATE TRIGGER channels_id_fixed BEFORE UPDATE OF id ON channels FOR EACH ROW
	WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION pomona_queue_keys_fixed();
CREATE TRIGGER commands_uuid_fixed BEFORE UPDATE OF uuid ON commands FOR EACH ROW
	WHEN (OLD.uuid IS DISTINCT FROM NEW.uuid) EXECUTE FUNCTION pomona_queue_keys_fixed();
-- end dialect
