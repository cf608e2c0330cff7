-- Batched ingest (SQLite).
--
-- The partial-plate index (`plates`, `plate_grams`, migration 0002) was kept by a trigger run
-- for every inserted encounter (one `plates` probe each, grams for a plate's first encounter).
-- Ingest now inserts encounters with multi-row statements and then indexes the distinct plates
-- of the whole batch in two statements (`bulk::sqlite_insert`), so the trigger goes. Every
-- encounter insert goes through `Repo::insert_encounters`; a writer that inserts encounters
-- any other way must index their plates the same way, or partial queries will miss them.

DROP TRIGGER encounters_plates_insert;
