CREATE INDEX challenges_channel_time ON challenges (channel_id, created_at);
DROP TABLE challenge_counts;
