-- Out-of-band challenges: a user directory, one-time codes sent to a phone or mailbox, and
-- the outbox that delivers them.

ALTER TABLE audit_log ADD COLUMN challenge_id UUID;
ALTER TABLE channels ADD COLUMN may_receive_otp BOOLEAN NOT NULL DEFAULT FALSE;
-- Messages this channel may still send; NULL: no budget.
ALTER TABLE channels ADD COLUMN message_budget BIGINT CHECK (message_budget >= 0);

CREATE TABLE users (
    channel_id UUID NOT NULL REFERENCES channels (id),
    user_id TEXT NOT NULL,
    phone TEXT CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    email TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX users_phone ON users (channel_id, phone);

-- Per-channel message templates (built-in ones live in the binary).
CREATE TABLE templates (
    ref_id TEXT PRIMARY KEY,
    channel_id UUID NOT NULL REFERENCES channels (id),
    lang TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A challenge stores only an HMAC, under an HSM key, over (challenge id, code): promise 3.
CREATE TABLE challenges (
    id UUID PRIMARY KEY,
    channel_id UUID NOT NULL REFERENCES channels (id),
    user_id TEXT,
    destination TEXT NOT NULL,
    delivery TEXT NOT NULL CHECK (delivery IN ('sms', 'email', 'voice', 'response')),
    app TEXT,
    code_mac BYTEA NOT NULL,
    mac_version INTEGER NOT NULL,
    digits SMALLINT NOT NULL CHECK (digits BETWEEN 4 AND 10),
    expires_at TIMESTAMPTZ NOT NULL,
    failure_count INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'used', 'locked')),
    delivery_status TEXT NOT NULL
        CHECK (delivery_status IN ('pending', 'sent', 'failed', 'expired', 'returned')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX challenges_destination ON challenges (channel_id, destination, created_at DESC);
CREATE INDEX challenges_user ON challenges (channel_id, user_id, created_at DESC);
CREATE INDEX challenges_channel_time ON challenges (channel_id, created_at);

-- Messages to deliver. The text contains the code, so it is stored encrypted under an HSM
-- key (AES-GCM) and erased once sent, failed for good, or expired.
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    challenge_id UUID NOT NULL REFERENCES challenges (id),
    kind TEXT NOT NULL CHECK (kind IN ('sms', 'email', 'voice')),
    destination TEXT NOT NULL,
    sealed_message BYTEA,
    key_version INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'expired')),
    gateway_index INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    last_error TEXT,
    sent_via TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ,
    CONSTRAINT erased_when_done CHECK (status = 'pending' OR sealed_message IS NULL)
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';
