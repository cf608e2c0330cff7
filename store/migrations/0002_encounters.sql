-- Encounters on the device: scanning sessions (who, on behalf of whom, why, case or
-- justification, device, start/end, GPS track), one row per read with those fields copied and
-- its outbox state, its images (plate crop and a context image trimmed to the vehicle; the
-- bytes optionally encrypted), and the officer's disposition of its alert. A row leaves the
-- device only after the server acknowledged it and a grace period passed.

CREATE TABLE sessions (
    id              TEXT    PRIMARY KEY,          -- UUID, hyphenated
    user_name       TEXT    NOT NULL,
    on_behalf_of    TEXT,
    reason_code     TEXT    NOT NULL,
    case_number     TEXT,
    justification   TEXT,
    device_id       TEXT    NOT NULL,
    started_at_ms   INTEGER NOT NULL,
    ended_at_ms     INTEGER,
    -- JSON of the bounded GPS track.
    track           TEXT    NOT NULL,
    CHECK (case_number IS NOT NULL OR justification IS NOT NULL)
);

CREATE TABLE encounters (
    -- AUTOINCREMENT: sqlite_sequence keeps the count of encounters ever recorded, even after
    -- acknowledged rows are purged.
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT    NOT NULL UNIQUE,  -- client UUID, the upload's idempotency key
    session_id          TEXT    NOT NULL REFERENCES sessions(id),
    -- The read kept for retro-hits (0001's reads/alerts); removed with the encounter.
    read_id             INTEGER REFERENCES reads(id) ON DELETE SET NULL,
    user_name           TEXT    NOT NULL,
    on_behalf_of        TEXT,
    reason_code         TEXT    NOT NULL,
    case_number         TEXT,
    justification       TEXT,
    device_id           TEXT    NOT NULL,
    camera_id           TEXT    NOT NULL,
    plate               TEXT    NOT NULL,
    state               TEXT,
    state_confidence    REAL    NOT NULL,
    confidence          REAL    NOT NULL,
    -- One little-endian f32 per character.
    char_confidences    BLOB    NOT NULL,
    captured_at_ms      INTEGER NOT NULL,
    lat                 REAL    NOT NULL,
    lon                 REAL    NOT NULL,
    accuracy_m          REAL,
    fix_at_ms           INTEGER NOT NULL,
    box_x               REAL    NOT NULL,
    box_y               REAL    NOT NULL,
    box_w               REAL    NOT NULL,
    box_h               REAL    NOT NULL,
    -- JSON array of strings.
    match_tags          TEXT    NOT NULL,
    -- 1 when a hot list match raised an alert.
    alert               INTEGER NOT NULL,
    created_at_ms       INTEGER NOT NULL,
    -- Outbox: pending until the server answers stored/duplicate (acked) or rejected.
    status              TEXT    NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'acked', 'rejected')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms  INTEGER NOT NULL,
    last_error          TEXT,
    -- 'stored' or 'duplicate', and when.
    server_status       TEXT,
    acked_at_ms         INTEGER,
    reject_reason       TEXT,
    rejected_at_ms      INTEGER
);

CREATE INDEX encounters_pending ON encounters (seq) WHERE status = 'pending';
CREATE INDEX encounters_acked ON encounters (acked_at_ms) WHERE status = 'acked';
CREATE INDEX encounters_session ON encounters (session_id);

CREATE TABLE encounter_images (
    encounter_seq   INTEGER NOT NULL REFERENCES encounters(seq) ON DELETE CASCADE,
    kind            TEXT    NOT NULL CHECK (kind IN ('crop', 'context')),
    format          TEXT    NOT NULL CHECK (format IN ('png', 'jpeg')),
    -- 1: bytes are nonce (12) || ChaCha20-Poly1305 ciphertext, bound to the encounter and kind.
    encrypted       INTEGER NOT NULL,
    bytes           BLOB    NOT NULL,
    PRIMARY KEY (encounter_seq, kind)
);

CREATE TABLE dispositions (
    encounter_seq   INTEGER PRIMARY KEY REFERENCES encounters(seq) ON DELETE CASCADE,
    decision        TEXT    NOT NULL CHECK (decision IN ('accepted', 'rejected')),
    reason          TEXT,
    -- The officer's reading of the plate when the engine misread it.
    corrected_plate TEXT,
    decided_at_ms   INTEGER NOT NULL,
    CHECK (decision = 'accepted' OR reason IS NOT NULL)
);
