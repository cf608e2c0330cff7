-- Query indexes and scanning sessions (PostgreSQL).
--
-- Partial plates: a pg_trgm GIN index on `encounters.plate` answers `plate LIKE 'AB%123'` (the
-- wildcard pattern translated); the planner combines it with `encounters_time` when the
-- timeframe is the more selective. (A table of distinct plates kept by a trigger was tried
-- first: concurrent uploads inserting the same new plates in different orders deadlocked.)
--
-- Polygons: a GiST index over (point(lon, lat), captured_at_ms) — btree_gist supplies the
-- bigint operator class — answers "inside this box during this timeframe"; the exact
-- point-in-polygon test runs in the server. pg_trgm and btree_gist ship with PostgreSQL's
-- contrib (Debian's postgresql package) and are trusted extensions: a database owner may create
-- them. PostGIS is not needed.

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE INDEX encounters_plate_trgm ON encounters USING gin (plate gin_trgm_ops);
CREATE INDEX encounters_geo ON encounters USING gist (point(lon, lat), captured_at_ms);

-- Scanning sessions: who scanned, on whose behalf, why, from when to when.
CREATE TABLE scan_sessions (
    id TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    device_id BIGINT REFERENCES devices (id),
    on_behalf_of_user_id BIGINT REFERENCES users (id),
    reason_code TEXT NOT NULL,
    case_number TEXT,
    justification TEXT,
    started_at_ms BIGINT NOT NULL,
    ended_at_ms BIGINT
);
CREATE INDEX scan_sessions_user ON scan_sessions (user_id, started_at_ms);
