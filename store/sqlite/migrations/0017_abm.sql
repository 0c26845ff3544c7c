-- Apple Business Manager (ABM/ASM) server tokens, several per tenant (one
-- per ABM "MDM server"). Pomona makes the key pair: the public-key
-- certificate is what the admin uploads to ABM, the sealed private key
-- decrypts the downloaded server token (.p7m) and signs the com.apple.maid
-- JWTs of GetToken. A row without token_sealed is waiting for its upload.
CREATE TABLE abm_server_tokens (
	id                    TEXT PRIMARY KEY,
	tenant_id             TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	name                  TEXT NOT NULL,
	certificate           BLOB NOT NULL,
	key_sealed            BLOB NOT NULL,
	token_sealed          BLOB,
	org_name              TEXT NOT NULL DEFAULT '',
	org_id                TEXT NOT NULL DEFAULT '',
	server_name           TEXT NOT NULL DEFAULT '',
	server_uuid           TEXT NOT NULL DEFAULT '',
	access_token_expiry   INTEGER NOT NULL DEFAULT 0,
	discovery_url         TEXT NOT NULL DEFAULT '',
	discovery_asserted_at INTEGER NOT NULL DEFAULT 0,
	discovery_error       TEXT NOT NULL DEFAULT '',
	imported_at           INTEGER NOT NULL DEFAULT 0,
	created_at            INTEGER NOT NULL,
	updated_at            INTEGER NOT NULL
);
CREATE INDEX abm_server_tokens_tenant ON abm_server_tokens(tenant_id);

-- Whether the enrollment profile last delivered to an enrollment advertises
-- com.apple.mdm.token in ServerCapabilities (the capability may be added on
-- re-delivery; only per-user-connections is fixed). Profiles delivered
-- without it are re-delivered once the tenant has a server token.
ALTER TABLE enrollment_profiles ADD COLUMN get_token INTEGER NOT NULL DEFAULT 0;
