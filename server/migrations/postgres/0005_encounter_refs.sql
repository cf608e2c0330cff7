-- Encounter references checked once per statement (PostgreSQL).
--
-- `encounters.device_id`, `user_id` and `on_behalf_of_user_id` were foreign keys. Their
-- row-level triggers made two or three index lookups for every ingested row, for ids that are
-- the same across a whole batch: about a third of the database's insert cost (100,000 rows:
-- 2.8 s with the foreign keys, 1.8 s without).
--
-- The same integrity now holds with:
-- * one statement-level check after each INSERT or UPDATE of encounters, over the distinct ids
--   the statement wrote (the batch's transition table);
-- * users and devices are never deleted (revoking is a flag) and never change id: both are
--   refused by triggers, so an id that existed when its encounter was written keeps existing.
-- The checks raise foreign_key_violation (23503), as the foreign keys did.

ALTER TABLE encounters
    DROP CONSTRAINT encounters_device_id_fkey,
    DROP CONSTRAINT encounters_user_id_fkey,
    DROP CONSTRAINT encounters_on_behalf_of_user_id_fkey;

CREATE FUNCTION encounters_check_refs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM (SELECT DISTINCT device_id FROM new_rows) AS n
               WHERE NOT EXISTS (SELECT 1 FROM devices AS d WHERE d.id = n.device_id)) THEN
        RAISE EXCEPTION 'an encounter references no device' USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF EXISTS (SELECT 1 FROM (SELECT user_id AS id FROM new_rows
                              UNION
                              SELECT on_behalf_of_user_id FROM new_rows
                              WHERE on_behalf_of_user_id IS NOT NULL) AS n
               WHERE NOT EXISTS (SELECT 1 FROM users AS u WHERE u.id = n.id)) THEN
        RAISE EXCEPTION 'an encounter references no user' USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER encounters_refs_insert AFTER INSERT ON encounters
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION encounters_check_refs();
CREATE TRIGGER encounters_refs_update AFTER UPDATE ON encounters
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION encounters_check_refs();

CREATE FUNCTION refuse_identity_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% rows are never deleted and never change id', TG_TABLE_NAME
        USING ERRCODE = 'foreign_key_violation';
END
$$;

CREATE TRIGGER users_keep_identity BEFORE DELETE OR UPDATE OF id ON users
    FOR EACH ROW EXECUTE FUNCTION refuse_identity_change();
CREATE TRIGGER devices_keep_identity BEFORE DELETE OR UPDATE OF id ON devices
    FOR EACH ROW EXECUTE FUNCTION refuse_identity_change();
CREATE FUNCTION refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted', TG_TABLE_NAME USING ERRCODE = 'foreign_key_violation';
END
$$;
CREATE TRIGGER users_no_truncate BEFORE TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();
CREATE TRIGGER devices_no_truncate BEFORE TRUNCATE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate();
