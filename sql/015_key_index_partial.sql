-- A notification's idempotency key is unique per user, but most sends have
-- no key, and UNIQUE (user_id, dedupe_key) still gave each of those an
-- entry in its index. That index is ordered by user, so a topic send of
-- 10,000 wrote into as many scattered leaf pages of it as of the inbox
-- indexes: in a 10,000-member topic on a table of 100,000 rows, the
-- statement inserting the rows took 30-35% less time and its commit a
-- quarter less without it (bench/RESULTS.md). Only keyed rows need the
-- check, so the constraint becomes a partial unique index.
--
-- A table constraint can only go by rebuilding the table (SQLite's
-- documented twelve steps, as in 007_check_or.sql): migrate() runs this
-- with foreign keys off and checks them before it commits. Column order,
-- the other indexes and the id sequence (ids never go back) are kept.

CREATE TABLE notifications_new (
	id		INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id		TEXT NOT NULL REFERENCES users(id),
	type		TEXT NOT NULL,
	category	TEXT,
	priority	TEXT NOT NULL DEFAULT 'normal'
			CHECK (priority = 'low' OR priority = 'normal' OR
			    priority = 'high' OR priority = 'urgent'),
	title		TEXT,
	body		TEXT,
	data		TEXT CHECK (data IS NULL OR json_valid(data)),
	action_url	TEXT,
	dedupe_key	TEXT,
	created_at	INTEGER NOT NULL,
	deliver_at	INTEGER,
	read_at		INTEGER,
	seen_at		INTEGER,
	archived_at	INTEGER,
	scheduled_id	INTEGER,
	email_skipped	TEXT
) STRICT;
INSERT INTO notifications_new (id, user_id, type, category, priority, title, body, data,
	action_url, dedupe_key, created_at, deliver_at, read_at, seen_at, archived_at,
	scheduled_id, email_skipped)
    SELECT id, user_id, type, category, priority, title, body, data,
	action_url, dedupe_key, created_at, deliver_at, read_at, seen_at, archived_at,
	scheduled_id, email_skipped FROM notifications;
-- The copy's sequence stops at the largest id left; the old one may be past it.
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'notifications_new', 0 WHERE NOT EXISTS
	(SELECT 1 FROM sqlite_sequence WHERE name = 'notifications_new');
UPDATE sqlite_sequence SET seq = (SELECT max(seq) FROM sqlite_sequence
	WHERE name IN ('notifications', 'notifications_new'))
    WHERE name = 'notifications_new';
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE UNIQUE INDEX notifications_key ON notifications (user_id, dedupe_key)
	WHERE dedupe_key IS NOT NULL;
CREATE INDEX notifications_by_user ON notifications (user_id, id, archived_at, deliver_at);
CREATE INDEX notifications_unread ON notifications (user_id, id, deliver_at)
	WHERE read_at IS NULL AND archived_at IS NULL;
CREATE INDEX notifications_archived ON notifications (user_id, id)
	WHERE archived_at IS NOT NULL;
CREATE INDEX notifications_scheduled ON notifications (scheduled_id)
	WHERE scheduled_id IS NOT NULL;
