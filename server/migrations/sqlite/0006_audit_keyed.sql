-- Keyed audit chain and signed checkpoints (SQLite).
--
-- Rows from `audit_head.keyed_from` on are hashed with HMAC-SHA256 under a key kept outside the
-- database (`hash = HMAC(key, prev_hash || canonical row)`); rows before it keep the unkeyed
-- SHA-256 chain they were written with. The boundary is the next row at the time of this
-- migration (1 on a new database). `keyed_seal` is an HMAC of the boundary under the same key,
-- written by the server that holds the key (on an empty log's first append, or when `serve`
-- starts), so moving the boundary to pass keyed rows off as unkeyed ones is detected.
ALTER TABLE audit_head ADD COLUMN keyed_from INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_head ADD COLUMN keyed_seal TEXT;
UPDATE audit_head SET keyed_from = seq + 1;

-- Signed checkpoints of the chain's head (ed25519, see `audit::Checkpoint`). Auditors keep
-- copies outside the server; these are the server's own.
CREATE TABLE audit_checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    keyed_from INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX audit_checkpoints_at ON audit_checkpoints (at_ms);
