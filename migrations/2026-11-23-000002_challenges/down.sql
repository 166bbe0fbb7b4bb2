DROP TABLE outbox;
DROP TABLE challenges;
DROP TABLE templates;
DROP TABLE users;
ALTER TABLE channels DROP COLUMN message_budget;
ALTER TABLE channels DROP COLUMN may_receive_otp;
ALTER TABLE audit_log DROP COLUMN challenge_id;
