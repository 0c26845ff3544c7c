-- Session 13 (lane pgwave5, issue 17): every committed write of webhooks
-- notifies the channel pomona_webhooks, so each instance's change
-- listener (store/postgres/listen.go) forgets the webhook list it
-- remembers for QueueEvent (sqlstore's webhookCache) instead of reading
-- it for every event. A statement-level trigger: it covers every writer
-- (Pomona's CreateWebhook and DeleteWebhook, a store copy, a hand-written
-- statement, an older binary). PostgreSQL sends a NOTIFY when its
-- transaction commits and folds identical ones of one transaction into
-- one.
-- dialect: postgres
CREATE FUNCTION pomona_webhooks_notify() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
	PERFORM pg_notify('pomona_webhooks', '');
	RETURN NULL;
END
$fn$;
CREATE TRIGGER webhooks_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON webhooks
	FOR EACH STATEMENT EXECUTE FUNCTION pomona_webhooks_notify();
-- end dialect
