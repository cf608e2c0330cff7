-- Query indexes and scanning sessions (SQLite).
--
-- Partial plates: `plates` lists every distinct plate and `plate_grams` holds the trigrams of
-- each with at least two plate characters, padded as '^^' || plate || '$$' so anchored patterns
-- give grams too ('AB*' → '^AB'). A query intersects the postings of the grams its pattern must
-- contain (or, for a pattern without any, scans `plates`), checks the candidates with GLOB and
-- reads their encounters through `encounters_plate_time`. Only a plate's first
-- encounter writes grams; later ones cost one primary-key probe. Grams are a prefilter: a plate
-- whose encounters were all deleted keeps its grams and costs one index probe.
--
-- Polygons: `encounters_cell_time` indexes a grid cell of 0.01 degree (about 1.1 km) with the
-- capture time. A query lists the cells under each polygon's bounding box (`cell IN (…) AND
-- captured_at_ms BETWEEN …`, one index range per cell) and tests the candidates exactly
-- (point in polygon) in the server. An expression index needs no trigger and keeps ingest fast:
-- an R-tree kept by triggers (tried first) cut bulk inserts from ~34k to ~7k rows/s.
-- The expression must stay identical to `queries::SQLITE_CELL`.

CREATE TABLE plates (
    plate TEXT PRIMARY KEY
) WITHOUT ROWID;

CREATE TABLE plate_gram_positions (n INTEGER PRIMARY KEY);
INSERT INTO plate_gram_positions (n)
VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10), (11), (12), (13), (14), (15), (16), (17);

CREATE TABLE plate_grams (
    gram TEXT NOT NULL,
    plate TEXT NOT NULL,
    PRIMARY KEY (gram, plate)
) WITHOUT ROWID;

CREATE TRIGGER encounters_plates_insert AFTER INSERT ON encounters
WHEN NOT EXISTS (SELECT 1 FROM plates WHERE plate = NEW.plate)
BEGIN
    INSERT OR IGNORE INTO plates (plate) VALUES (NEW.plate);
    INSERT OR IGNORE INTO plate_grams (gram, plate)
    SELECT substr('^^' || NEW.plate || '$$', n, 3), NEW.plate
    FROM plate_gram_positions
    WHERE n BETWEEN 2 AND length(NEW.plate) + 1;
END;

CREATE TRIGGER encounters_plates_update AFTER UPDATE OF plate ON encounters
WHEN NOT EXISTS (SELECT 1 FROM plates WHERE plate = NEW.plate)
BEGIN
    INSERT OR IGNORE INTO plates (plate) VALUES (NEW.plate);
    INSERT OR IGNORE INTO plate_grams (gram, plate)
    SELECT substr('^^' || NEW.plate || '$$', n, 3), NEW.plate
    FROM plate_gram_positions
    WHERE n BETWEEN 2 AND length(NEW.plate) + 1;
END;

-- Encounters stored before this migration.
INSERT OR IGNORE INTO plates (plate) SELECT DISTINCT plate FROM encounters;
INSERT OR IGNORE INTO plate_grams (gram, plate)
SELECT substr('^^' || p.plate || '$$', g.n, 3), p.plate
FROM plates p
JOIN plate_gram_positions g ON g.n BETWEEN 2 AND length(p.plate) + 1;

CREATE INDEX encounters_cell_time ON encounters (
    (CAST((lat + 90.0) * 100.0 AS INTEGER) * 36001 + CAST((lon + 180.0) * 100.0 AS INTEGER)),
    captured_at_ms
);

-- Scanning sessions: who scanned, on whose behalf, why, from when to when.
CREATE TABLE scan_sessions (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    device_id INTEGER REFERENCES devices (id),
    on_behalf_of_user_id INTEGER REFERENCES users (id),
    reason_code TEXT NOT NULL,
    case_number TEXT,
    justification TEXT,
    started_at_ms INTEGER NOT NULL,
    ended_at_ms INTEGER
);
CREATE INDEX scan_sessions_user ON scan_sessions (user_id, started_at_ms);
