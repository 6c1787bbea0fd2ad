-- As SQLite's 015_key_index_partial.sql: a notification's idempotency key
-- is unique per user, but most sends have none, and the table's
-- UNIQUE (user_id, dedupe_key) still put each of those in its index. Only
-- keyed rows need the check. PostgreSQL drops a constraint in place.
--
-- The index is built first: CREATE INDEX takes a SHARE lock, under which
-- nodes still on the old version go on reading (their writes wait); the
-- ACCESS EXCLUSIVE lock of DROP CONSTRAINT, which stops reads too, is then
-- held only from the drop to the commit. (CONCURRENTLY cannot run inside
-- the migration's transaction.)
CREATE UNIQUE INDEX notifications_key ON notifications (user_id, dedupe_key)
	WHERE dedupe_key IS NOT NULL;
ALTER TABLE notifications DROP CONSTRAINT notifications_user_id_dedupe_key_key;
