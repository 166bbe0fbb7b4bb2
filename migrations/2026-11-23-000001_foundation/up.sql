-- Channels: the calling applications. The channel key itself is never stored, only its HMAC
-- under an HSM key (promise 2).
CREATE TABLE channels (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    key_mac BYTEA NOT NULL UNIQUE,
    key_mac_version INTEGER NOT NULL,
    client_cert_sha256 TEXT[] NOT NULL DEFAULT '{}',
    allowed_networks TEXT[] NOT NULL DEFAULT '{}',
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- OATH tokens. `next_factor` is the lowest HOTP counter / TOTP time step not yet used: an
-- accept moves it past the matched factor with one conditional UPDATE (promise 4).
CREATE TABLE tokens (
    id UUID PRIMARY KEY,
    channel_id UUID NOT NULL REFERENCES channels (id),
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('hotp', 'totp')),
    algorithm TEXT NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
    digits SMALLINT NOT NULL CHECK (digits BETWEEN 6 AND 8),
    period INTEGER NOT NULL CHECK (period > 0),
    next_factor BIGINT NOT NULL CHECK (next_factor >= 0),
    drift INTEGER NOT NULL DEFAULT 0,
    wrapped_seed BYTEA,
    kek_version INTEGER,
    hsm_label TEXT UNIQUE,
    issuer TEXT,
    failure_count INTEGER NOT NULL DEFAULT 0,
    locked_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Exactly one seed reference: a wrapped blob with its KEK version, or an HSM object label.
    CONSTRAINT one_seed_reference CHECK (
        (wrapped_seed IS NOT NULL AND kek_version IS NOT NULL AND hsm_label IS NULL)
        OR (wrapped_seed IS NULL AND kek_version IS NULL AND hsm_label IS NOT NULL)
    )
);
CREATE INDEX tokens_channel_user ON tokens (channel_id, user_id);

-- The audit trail: one row per verification and per change, written in the same transaction
-- as the state it records (promise 7). Append-only: updates, deletes and truncation fail.
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    channel_id UUID,
    token_id UUID,
    user_id TEXT,
    action TEXT NOT NULL,
    result TEXT NOT NULL,
    moving_factor BIGINT,
    request_id TEXT
);
CREATE INDEX audit_log_token ON audit_log (token_id, at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
