-- How many challenges each channel created in each short interval ending at `ends_at`. The
-- per-channel rate limit sums these rows instead of counting the challenges in its window:
-- a count costs as much as the window holds challenges, so a busy channel's creations
-- slowed as the window filled (about 300/s at most with a 60-second window). An interval is
-- a 600th of the window (at least a second), so a challenge counts against the limit for
-- the window and at most that much longer, never for less.
CREATE TABLE challenge_counts (
    channel_id UUID NOT NULL REFERENCES channels (id),
    ends_at TIMESTAMPTZ NOT NULL,
    created INTEGER NOT NULL CHECK (created > 0),
    PRIMARY KEY (channel_id, ends_at)
);

-- The challenges of the longest window allowed (a day), so that limits hold across the
-- upgrade.
INSERT INTO challenge_counts (channel_id, ends_at, created)
SELECT channel_id, date_trunc('second', created_at) + interval '1 second', count(*)
FROM challenges
WHERE created_at > now() - interval '1 day'
GROUP BY 1, 2;

-- Only the per-channel count read this index.
DROP INDEX challenges_channel_time;
