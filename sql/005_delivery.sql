-- Delivery: preferences, and the outbox of every channel a notification goes to.

-- A channel on or off for one type of one user; type '*' is the user's default.
-- Absent rows fall back to the type's default (its template's meta).
CREATE TABLE preferences (
	user_id		TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	type		TEXT NOT NULL,
	channel		TEXT NOT NULL CHECK (channel IN ('in_app', 'email')),
	enabled		INTEGER NOT NULL CHECK (enabled IN (0, 1)),
	PRIMARY KEY (user_id, type, channel)
) STRICT, WITHOUT ROWID;

-- Quiet hours in the user's zone (users.tz): minutes after midnight, and
-- the days a quiet period starts on (bit 0 Monday .. bit 6 Sunday).
ALTER TABLE users ADD COLUMN quiet_start INTEGER;
ALTER TABLE users ADD COLUMN quiet_end INTEGER;
ALTER TABLE users ADD COLUMN quiet_days INTEGER;
ALTER TABLE users ADD COLUMN digest TEXT NOT NULL DEFAULT 'off'
	CHECK (digest IN ('off', 'daily', 'weekly'));
ALTER TABLE users ADD COLUMN email_if_unread INTEGER;	-- ms; NULL: email at once

-- The transactional outbox: written with the notification, worked by the
-- delivery worker. claimed marks a delivery being worked on; a restart
-- clears it, so nothing stays stuck.
CREATE TABLE deliveries (
	id		INTEGER PRIMARY KEY,
	notification_id	INTEGER NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
	channel		TEXT NOT NULL CHECK (channel IN ('in_app', 'email')),
	status		TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed',
			    'skipped', 'deferred', 'digest', 'digested', 'cancelled')),
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

CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
	WHERE status IN ('pending', 'deferred');
