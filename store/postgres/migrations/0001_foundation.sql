-- PostgreSQL translation of ../../sqlite/migrations/0001_foundation.sql: BIGINT for the
-- integer columns (times are Unix microseconds), BYTEA for blobs. Keep the two in step.
-- Tenants, their domains, users, admin API keys and sealed secrets.
-- Times are Unix microseconds; 0 means "never".
CREATE TABLE tenants (
	id                    TEXT PRIMARY KEY,
	name                  TEXT NOT NULL,
	require_second_factor BIGINT NOT NULL DEFAULT 1,
	created_at            BIGINT NOT NULL,
	updated_at            BIGINT NOT NULL
);

CREATE TABLE tenant_domains (
	domain    TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	UNIQUE (tenant_id, domain)
);

-- A user's email domain must be one of its tenant's domains: the composite
-- foreign key makes the database enforce it, and stops a domain in use
-- from being removed.
CREATE TABLE users (
	id                TEXT PRIMARY KEY,
	tenant_id         TEXT NOT NULL REFERENCES tenants(id),
	email             TEXT NOT NULL UNIQUE,
	domain            TEXT NOT NULL,
	managed_apple_id  TEXT NOT NULL,
	name              TEXT NOT NULL DEFAULT '',
	password_hash     TEXT NOT NULL DEFAULT '',
	totp_secret       BYTEA,
	totp_confirmed_at BIGINT NOT NULL DEFAULT 0,
	enabled           BIGINT NOT NULL DEFAULT 1,
	tokens_not_before BIGINT NOT NULL DEFAULT 0,
	created_at        BIGINT NOT NULL,
	updated_at        BIGINT NOT NULL,
	last_sign_in_at   BIGINT NOT NULL DEFAULT 0,
	FOREIGN KEY (tenant_id, domain) REFERENCES tenant_domains(tenant_id, domain)
);
CREATE INDEX users_tenant_email ON users(tenant_id, email);
CREATE INDEX users_domain ON users(domain);

CREATE TABLE api_keys (
	id           TEXT PRIMARY KEY,
	name         TEXT NOT NULL,
	secret_hash  BYTEA NOT NULL,
	created_at   BIGINT NOT NULL,
	last_used_at BIGINT NOT NULL DEFAULT 0,
	revoked_at   BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE secrets (
	name       TEXT PRIMARY KEY,
	value      BYTEA NOT NULL,
	updated_at BIGINT NOT NULL
);
