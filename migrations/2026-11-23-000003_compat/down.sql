DROP TABLE freezes;
ALTER TABLE channels DROP COLUMN account_number;
