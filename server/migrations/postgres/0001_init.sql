-- Platewatch server schema (PostgreSQL): users and roles, rules of behaviour, sessions, devices,
-- the hash-chained audit log and its head, and uploaded encounters.

CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('officer', 'analyst', 'admin', 'auditor')),
    enhanced_queries BOOLEAN NOT NULL DEFAULT FALSE,
    rules_acked_version BIGINT,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE rules (
    version BIGSERIAL PRIMARY KEY,
    body TEXT NOT NULL,
    created_by BIGINT NOT NULL REFERENCES users (id),
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE sessions (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);

CREATE TABLE devices (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    user_id BIGINT,
    username TEXT,
    on_behalf_of TEXT,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    justification TEXT,
    criteria TEXT NOT NULL,
    result_count BIGINT,
    client TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at_ms);

-- The last appended row: deleting the tail of the chain is detected against it.
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);

CREATE TABLE encounters (
    id TEXT PRIMARY KEY,
    plate TEXT NOT NULL,
    state TEXT,
    confidence DOUBLE PRECISION NOT NULL,
    crop BYTEA NOT NULL,
    context_image BYTEA,
    lat DOUBLE PRECISION NOT NULL,
    lon DOUBLE PRECISION NOT NULL,
    captured_at_ms BIGINT NOT NULL,
    device_id BIGINT NOT NULL REFERENCES devices (id),
    camera_id TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    on_behalf_of_user_id BIGINT REFERENCES users (id),
    reason_code TEXT NOT NULL,
    case_number TEXT,
    justification TEXT,
    session_id TEXT NOT NULL,
    match_tags TEXT NOT NULL,
    alert_decision TEXT CHECK (alert_decision IN ('accepted', 'rejected')),
    alert_reason TEXT,
    received_at_ms BIGINT NOT NULL
);
CREATE INDEX encounters_plate_time ON encounters (plate, captured_at_ms);
CREATE INDEX encounters_time ON encounters (captured_at_ms);

INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
