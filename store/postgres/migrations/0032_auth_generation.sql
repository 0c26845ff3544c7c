-- Session 14 (lane identcache6, issue 17): every committed write that can
-- change what an MDM command-channel request reads to authenticate its
-- sender (identity certificate, enrollment, user, bearer token, channel:
-- sqlstore's authCache) notifies the channel pomona_auth, so each
-- instance's change listener (store/postgres/listen.go, the one that
-- hears pomona_webhooks) forgets the reads it remembers. Statement-level
-- triggers: they cover every writer (Pomona, a store copy, a hand-written
-- statement, an older binary); PostgreSQL sends the notices when the
-- transaction commits and folds identical ones of one transaction into
-- one. Only the columns the read returns are watched (UPDATE OF):
-- last_seen_at, inventory, push results and the like notify nobody.
-- The SQLite migration of the same number counts the same writes in a
-- row (auth_generation).
-- dialect: postgres
CREATE FUNCTION pomona_auth_notify() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
	PERFORM pg_notify('pomona_auth', '');
	RETURN NULL;
END
$fn$;
CREATE TRIGGER identity_certs_auth_notify AFTER UPDATE OF serial, enrollment_id, revoked_at OR DELETE OR TRUNCATE ON identity_certs
	FOR EACH STATEMENT EXECUTE FUNCTION pomona_auth_notify();
CREATE TRIGGER enrollments_auth_notify AFTER UPDATE OF id, tenant_id, user_id, platform, status, apple_enrollment_id OR DELETE OR TRUNCATE ON enrollments
	FOR EACH STATEMENT EXECUTE FUNCTION pomona_auth_notify();
CREATE TRIGGER users_auth_notify AFTER UPDATE OF id, enabled, tokens_not_before OR DELETE OR TRUNCATE ON users
	FOR EACH STATEMENT EXECUTE FUNCTION pomona_auth_notify();
CREATE TRIGGER access_tokens_auth_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON access_tokens
	FOR EACH STATEMENT EXECUTE FUNCTION pomona_auth_notify();
CREATE TRIGGER channels_auth_notify AFTER INSERT OR UPDATE OF id, enrollment_ref, kind, enrollment_user_id OR DELETE OR TRUNCATE ON channels
	FOR EACH STATEMENT EXECUTE FUNCTION pomona_auth_notify();
-- end dialect
