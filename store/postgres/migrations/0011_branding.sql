-- Per-tenant branding of the device sign-in pages: accent colour,
-- "contact IT" line, privacy-statement link ('' = none), and a logo kept
-- apart so that reading a tenant does not read its image.
ALTER TABLE tenants ADD COLUMN accent_color TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN contact TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN privacy_url TEXT NOT NULL DEFAULT '';

CREATE TABLE tenant_logos (
	tenant_id    TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
	content_type TEXT NOT NULL,
	data         BYTEA NOT NULL,
	updated_at   BIGINT NOT NULL
);
