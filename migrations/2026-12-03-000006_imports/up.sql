-- Seed files imported into a channel, known by an HSM MAC of the file's SHA-256 (never the
-- file or a seed), with how many of their tokens are in. A file imported already is
-- refused, and a run that stopped midway is resumed where it stopped (`--resume`), so that
-- no token is enrolled twice: two tokens with one seed would each accept the same code.
CREATE TABLE imports (
    channel_id UUID NOT NULL REFERENCES channels (id),
    file_mac BYTEA NOT NULL,
    total BIGINT NOT NULL CHECK (total > 0),
    imported BIGINT NOT NULL CHECK (imported BETWEEN 0 AND total),
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, file_mac)
);
