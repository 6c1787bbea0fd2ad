-- The inbox: users and their notifications.
-- Times are integer milliseconds since the Unix epoch, UTC.

CREATE TABLE users (
	id		TEXT PRIMARY KEY,
	email		TEXT,
	name		TEXT,
	tz		TEXT,
	locale		TEXT,
	created_at	INTEGER NOT NULL
) STRICT;

-- AUTOINCREMENT: ids never go back, even after deletes, because they are
-- the pagination cursor and the WebSocket replay cursor.
CREATE TABLE notifications (
	id		INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id		TEXT NOT NULL REFERENCES users(id),
	type		TEXT NOT NULL,
	category	TEXT,
	priority	TEXT NOT NULL DEFAULT 'normal'
			CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
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
	UNIQUE (user_id, dedupe_key)
) STRICT;

CREATE INDEX notifications_by_user ON notifications (user_id, id);
CREATE INDEX notifications_unread ON notifications (user_id, id)
	WHERE read_at IS NULL AND archived_at IS NULL;
