-- What the seed-compatible surfaces need beyond the native API.

-- UnityVox identifies the caller's account by number beside the API key.
ALTER TABLE channels ADD COLUMN account_number TEXT UNIQUE;

-- MOSIP freezes a key (a user id or address) after too many wrong codes, for a while.
CREATE TABLE freezes (
    channel_id UUID NOT NULL REFERENCES channels (id),
    destination TEXT NOT NULL,
    frozen_until TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel_id, destination)
);
