-- Session 14 (lane identcache6, issue 17): the store remembers what every
-- MDM command-channel request reads to authenticate its sender (the
-- identity certificate, its enrollment and user, the bearer's token, the
-- channel: sqlstore's authCache). auth_generation counts the writes that
-- can change such a read, bumped by the triggers below whoever writes
-- (Pomona, a store copy, a hand-written statement): a remembered read is
-- used only while the count read with the request (one row, in the same
-- statement as the request's queue look) is the one it was read under.
-- Only the columns the read returns are watched: last_seen_at, inventory,
-- push results and the like change without a bump. The PostgreSQL
-- migration of the same number notifies the change listeners instead.
-- dialect: sqlite
CREATE TABLE auth_generation (id INTEGER PRIMARY KEY CHECK (id = 1), gen INTEGER NOT NULL);
INSERT INTO auth_generation (id, gen) VALUES (1, 0);

CREATE TRIGGER identity_certs_auth_upd AFTER UPDATE OF serial, enrollment_id, revoked_at ON identity_certs
BEGIN UPDATE auth_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER identity_certs_auth_del AFTER DELETE ON identity_certs
BEGIN UPDATE auth_generation SET gen = gen + 1 WHERE id = 1; END;

CREATE TRIGGER enrollments_auth_upd AFTER UPDATE OF id, tenant_id, user_id, platform, status, apple_enrollment_id ON enrollments
BEGIN UPDATE auth_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER enrollments_auth_del AFTER DELETE ON enrollments
BEGIN UPDATE auth_generation SET gen = gen + 1 WHERE id = 1; END;

CREATE TRIGGER users_auth_upd AFTER UPDATE OF id, enabled, tokens_not_before ON users
BEGIN UPDATE auth_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER users_auth_del AFTER DELETE ON users
BEGIN UPDATE auth_generation SET gen = gen + 1 WHERE id = 1; END;

-- A token or a channel inserted changes a read that found none.
CREATE TRIGGER access_tokens_auth_ins AFTER INSERT ON access_tokens
BEGIN UPDATE auth_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER access_tokens_auth_upd AFTER UPDATE ON access_tokens
BEGIN UPDATE auth_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER access_tokens_auth_del AFTER DELETE ON access_tokens
BEGIN UPDATE auth_generation SET gen = gen + 1 WHERE id = 1; END;

CREATE TRIGGER channels_auth_ins AFTER INSERT ON channels
BEGIN UPDATE auth_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER channels_auth_upd AFTER UPDATE OF id, enrollment_ref, kind, enrollment_user_id ON channels
BEGIN UPDATE auth_generation SET gen = gen + 1 WHERE id = 1; END;
CREATE TRIGGER channels_auth_del AFTER DELETE ON channels
BEGIN UPDATE auth_generation SET gen = gen + 1 WHERE id = 1; END;
-- end dialect
