-- As SQLite's 015_key_index_partial.sql: a notification's idempotency key
-- is unique per user, but most sends have none, and the table's
-- UNIQUE (user_id, dedupe_key) still put each of those in its index. Only
-- keyed rows need the check. PostgreSQL drops a constraint in place; the
-- new index is built under the migration's lock, before any node serves.
ALTER TABLE notifications DROP CONSTRAINT notifications_user_id_dedupe_key_key;
CREATE UNIQUE INDEX notifications_key ON notifications (user_id, dedupe_key)
	WHERE dedupe_key IS NOT NULL;
