-- Hot lists on the device: one row per list with its applied version, entries keyed by
-- (list, plate, state, category), plate reads kept for retro-hits, and the alerts raised.

CREATE TABLE lists (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,
    source          TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    -- Unix seconds when this device last confirmed the list is current (snapshot, delta or
    -- a "no change" check).
    received_at     INTEGER NOT NULL,
    -- Unix seconds the publisher stamped on the version, when known.
    published_at    INTEGER,
    max_age_secs    INTEGER NOT NULL CHECK (max_age_secs > 0)
);

CREATE TABLE entries (
    id              INTEGER PRIMARY KEY,
    list_id         INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    plate           TEXT    NOT NULL,
    -- '' when the entry has no state, so the natural key can be UNIQUE.
    state           TEXT    NOT NULL DEFAULT '',
    category        TEXT    NOT NULL,
    priority        INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 100),
    source          TEXT    NOT NULL,
    make            TEXT,
    model           TEXT,
    colour          TEXT,
    year            INTEGER,
    incident_date   TEXT,
    expires_at      INTEGER,
    note            TEXT,
    added_version   INTEGER NOT NULL,
    UNIQUE (list_id, plate, state, category)
);

CREATE INDEX entries_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE reads (
    id                  INTEGER PRIMARY KEY,
    plate               TEXT    NOT NULL,
    -- One little-endian f32 per character.
    confidences         BLOB    NOT NULL,
    state               TEXT,
    state_confidence    REAL    NOT NULL DEFAULT 0,
    seen_at             INTEGER NOT NULL
);

CREATE INDEX reads_seen_at ON reads (seen_at);

CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY,
    read_id     INTEGER NOT NULL REFERENCES reads(id) ON DELETE CASCADE,
    entry_id    INTEGER NOT NULL,
    list_id     INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    score       REAL    NOT NULL,
    -- 1 when a new entry matched a read stored earlier.
    retro       INTEGER NOT NULL,
    raised_at   INTEGER NOT NULL,
    UNIQUE (read_id, entry_id)
);
