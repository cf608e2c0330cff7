-- Batched ingest (PostgreSQL).
--
-- Ingest inserts a whole batch with one `INSERT … SELECT FROM UNNEST(…)` statement
-- (`bulk::pg_insert`). The trigram GIN index then takes the batch's entries through its pending
-- list (merged in bulk by autovacuum or `VACUUM`) instead of one index insertion per trigram and
-- row: that is `fastupdate`, PostgreSQL's default, stated here because ingest speed relies on
-- it. The GiST and B-tree indexes need nothing.

ALTER INDEX encounters_plate_trgm SET (fastupdate = on);
