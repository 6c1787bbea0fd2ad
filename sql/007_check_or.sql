-- The same constraints, written so that checking them costs nothing.
--
-- A CHECK (x IN (...)) of more than two constants makes SQLite build an
-- ephemeral table of the list every time a statement writing the column
-- runs: a notification insert took 4.9 µs with the priority check and
-- 1.8 µs with the same check as an OR chain, and every send runs four of
-- them (user upsert, notification, its two deliveries) inside the writer's
-- serial section. A table's CHECK can only change by rebuilding the table
-- (SQLite's documented twelve steps); migrate() runs this with foreign keys
-- off and checks them before it commits. Column order, indexes and the
-- notification id sequence (ids never go back) are kept.

CREATE TABLE users_new (
	id		TEXT PRIMARY KEY,
	email		TEXT,
	name		TEXT,
	tz		TEXT,
	locale		TEXT,
	created_at	INTEGER NOT NULL,
	quiet_start	INTEGER,
	quiet_end	INTEGER,
	quiet_days	INTEGER,
	digest		TEXT NOT NULL DEFAULT 'off'
			CHECK (digest = 'off' OR digest = 'daily' OR digest = 'weekly'),
	email_if_unread	INTEGER
) STRICT;
INSERT INTO users_new (id, email, name, tz, locale, created_at, quiet_start, quiet_end,
	quiet_days, digest, email_if_unread)
    SELECT id, email, name, tz, locale, created_at, quiet_start, quiet_end,
	quiet_days, digest, email_if_unread FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

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
	UNIQUE (user_id, dedupe_key)
) STRICT;
INSERT INTO notifications_new (id, user_id, type, category, priority, title, body, data,
	action_url, dedupe_key, created_at, deliver_at, read_at, seen_at, archived_at,
	scheduled_id)
    SELECT id, user_id, type, category, priority, title, body, data,
	action_url, dedupe_key, created_at, deliver_at, read_at, seen_at, archived_at,
	scheduled_id FROM notifications;
-- The copy's sequence stops at the largest id left; the old one may be past it.
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'notifications_new', 0 WHERE NOT EXISTS
	(SELECT 1 FROM sqlite_sequence WHERE name = 'notifications_new');
UPDATE sqlite_sequence SET seq = (SELECT max(seq) FROM sqlite_sequence
	WHERE name IN ('notifications', 'notifications_new'))
    WHERE name = 'notifications_new';
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_by_user ON notifications (user_id, id);
CREATE INDEX notifications_unread ON notifications (user_id, deliver_at)
	WHERE read_at IS NULL AND archived_at IS NULL;
CREATE INDEX notifications_scheduled ON notifications (scheduled_id)
	WHERE scheduled_id IS NOT NULL;

CREATE TABLE deliveries_new (
	id		INTEGER PRIMARY KEY,
	notification_id	INTEGER NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
	channel		TEXT NOT NULL CHECK (channel IN ('in_app', 'email')),
	status		TEXT NOT NULL CHECK (status = 'pending' OR status = 'sent' OR
			    status = 'failed' OR status = 'skipped' OR status = 'deferred' OR
			    status = 'digest' OR status = 'digested' OR status = 'cancelled'),
	attempts	INTEGER NOT NULL DEFAULT 0,
	next_attempt_at	INTEGER,
	last_error	TEXT,
	created_at	INTEGER NOT NULL,
	updated_at	INTEGER NOT NULL,
	sent_at		INTEGER,
	claimed		INTEGER NOT NULL DEFAULT 0,
	digest_id	INTEGER,
	UNIQUE (notification_id, channel)
) STRICT;
INSERT INTO deliveries_new (id, notification_id, channel, status, attempts, next_attempt_at,
	last_error, created_at, updated_at, sent_at, claimed, digest_id)
    SELECT id, notification_id, channel, status, attempts, next_attempt_at,
	last_error, created_at, updated_at, sent_at, claimed, digest_id FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
	WHERE status IN ('pending', 'deferred');
