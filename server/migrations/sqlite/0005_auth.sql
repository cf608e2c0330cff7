-- Token scopes and lifetimes (SQLite): users can be disabled; device tokens expire and rotate
-- (the previous token stays valid for a short grace after a renewal, so an answer lost on the
-- way does not strand the device); usernames are unique regardless of case.

ALTER TABLE users ADD COLUMN disabled_at_ms INTEGER;
CREATE UNIQUE INDEX users_username_nocase ON users (lower(username));

ALTER TABLE devices ADD COLUMN expires_at_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN prev_token_hash TEXT;
ALTER TABLE devices ADD COLUMN prev_valid_until_ms INTEGER;
-- Tokens issued before lifetimes existed get the default lifetime (30 days) from now on.
UPDATE devices SET expires_at_ms = CAST(strftime('%s', 'now') AS INTEGER) * 1000 + 2592000000;
CREATE INDEX devices_prev_token ON devices (prev_token_hash);
