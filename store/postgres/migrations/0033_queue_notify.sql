-- Session 15 (lane idle7, issue 17): every committed write that gives a
-- channel a command an Idle poll would be handed — a queue row inserted,
-- or updated, with status queued, sent or NotNow where it had none of
-- those before (or another channel) — notifies the channel pomona_queue,
-- so each instance's change listener (store/postgres/listen.go) forgets
-- that it saw that channel's queue empty (sqlstore's authCache, the
-- empty set). The payload is the channel's id when the statement gave
-- one channel such a row, '' when it gave several (forget every channel:
-- a bulk enqueue sends one notice, not one per device); a statement that
-- gave none (a result, a delete, a mark as sent) notifies nobody.
-- Statement-level triggers with transition tables: they cover every
-- writer; PostgreSQL sends the notices when the transaction commits and
-- folds identical ones of one transaction into one. A queue only empties
-- by deletes and other updates, which need no notice.
-- dialect: postgres
CREATE FUNCTION pomona_queue_notify() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
	ch TEXT;
	many BOOLEAN;
BEGIN
	-- The first channel given a waiting row, then whether another one was
	-- (each query stops at its first row; the transition tables carry
	-- their row counts, so an update's NOT EXISTS is planned as a hash
	-- anti join when many rows changed).
	IF TG_OP = 'INSERT' THEN
		SELECT n.channel_id INTO ch FROM queue_new n WHERE n.status IN ('queued', 'sent', 'NotNow') LIMIT 1;
		IF ch IS NULL THEN
			RETURN NULL;
		END IF;
		many := EXISTS (SELECT 1 FROM queue_new n WHERE n.status IN ('queued', 'sent', 'NotNow') AND n.channel_id <> ch);
	ELSE
		SELECT n.channel_id INTO ch FROM queue_new n WHERE n.status IN ('queued', 'sent', 'NotNow')
			AND NOT EXISTS (SELECT 1 FROM queue_old o WHERE o.channel_id = n.channel_id AND o.command_uuid = n.command_uuid
				AND o.status IN ('queued', 'sent', 'NotNow')) LIMIT 1;
		IF ch IS NULL THEN
			RETURN NULL;
		END IF;
		many := EXISTS (SELECT 1 FROM queue_new n WHERE n.status IN ('queued', 'sent', 'NotNow') AND n.channel_id <> ch
			AND NOT EXISTS (SELECT 1 FROM queue_old o WHERE o.channel_id = n.channel_id AND o.command_uuid = n.command_uuid
				AND o.status IN ('queued', 'sent', 'NotNow')));
	END IF;
	PERFORM pg_notify('pomona_queue', CASE WHEN many THEN '' ELSE ch END);
	RETURN NULL;
END
$fn$;
CREATE TRIGGER queue_insert_notify AFTER INSERT ON queue REFERENCING NEW TABLE AS queue_new
	FOR EACH STATEMENT EXECUTE FUNCTION pomona_queue_notify();
CREATE TRIGGER queue_update_notify AFTER UPDATE ON queue REFERENCING OLD TABLE AS queue_old NEW TABLE AS queue_new
	FOR EACH STATEMENT EXECUTE FUNCTION pomona_queue_notify();
-- end dialect
