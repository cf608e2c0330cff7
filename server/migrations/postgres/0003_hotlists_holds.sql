-- Hot list publishing (lists and their entries, with the version each entry last changed at and
-- tombstones for removed ones, so deltas can be computed) and case holds that exempt encounters
-- from retention.

CREATE TABLE hotlists (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    version BIGINT NOT NULL,
    max_age_secs BIGINT NOT NULL,
    published_at_ms BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- One row per entry key ever published in a list; `removed` rows are tombstones.
CREATE TABLE hotlist_entries (
    list_id BIGINT NOT NULL REFERENCES hotlists (id),
    plate TEXT NOT NULL,
    state TEXT NOT NULL,
    category TEXT NOT NULL,
    body TEXT NOT NULL,
    changed_version BIGINT NOT NULL,
    removed BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (list_id, plate, state, category)
);
CREATE INDEX hotlist_entries_changed ON hotlist_entries (list_id, changed_version);

CREATE TABLE case_holds (
    id BIGSERIAL PRIMARY KEY,
    case_number TEXT NOT NULL,
    justification TEXT NOT NULL,
    created_by BIGINT NOT NULL REFERENCES users (id),
    created_at_ms BIGINT NOT NULL,
    released_by BIGINT REFERENCES users (id),
    released_at_ms BIGINT,
    release_reason TEXT
);
-- At most one open hold per case.
CREATE UNIQUE INDEX case_holds_open ON case_holds (case_number) WHERE released_at_ms IS NULL;
CREATE INDEX encounters_case_number ON encounters (case_number) WHERE case_number IS NOT NULL;
