-- Digests: one email per user and period that carries the email deliveries
-- parked for it (status 'digest'). The digest's own email is a delivery of
-- the outbox like any other, but of no one notification: notification_id
-- is NULL and digest_id names the digest. Parked deliveries it covers
-- become 'digested' and point at it too.

CREATE TABLE digests (
	id		INTEGER PRIMARY KEY,
	user_id		TEXT NOT NULL REFERENCES users(id),
	period		TEXT NOT NULL CHECK (period = 'daily' OR period = 'weekly'),
	-- The user's local day (2026-11-30) or ISO week (2026-W48) it was made
	-- in: one digest per user, period and slot, however often cron runs.
	slot		TEXT NOT NULL,
	window_start	INTEGER NOT NULL,	-- ms: the slot's bounds, in the user's zone
	window_end	INTEGER NOT NULL,
	items		INTEGER NOT NULL,	-- notifications it lists
	read_skipped	INTEGER NOT NULL,	-- parked ones left out: read in the app already
	created_at	INTEGER NOT NULL,
	delivery_id	INTEGER,		-- its email in the outbox; NULL: nothing to send
	UNIQUE (user_id, period, slot)
) STRICT;

-- A delivery now belongs to a notification, or (its email) to a digest.
CREATE TABLE deliveries_new (
	id		INTEGER PRIMARY KEY,
	notification_id	INTEGER REFERENCES notifications(id) ON DELETE CASCADE,
	channel		TEXT NOT NULL CHECK (channel = 'in_app' OR channel = 'email'),
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
	digest_id	INTEGER,		-- digests(id)
	CHECK (notification_id IS NOT NULL OR digest_id IS NOT NULL),
	UNIQUE (notification_id, channel)
) STRICT;
INSERT INTO deliveries_new (id, notification_id, channel, status, attempts, next_attempt_at,
	last_error, created_at, updated_at, sent_at, claimed, digest_id)
    SELECT id, notification_id, channel, status, attempts, next_attempt_at,
	last_error, created_at, updated_at, sent_at, claimed, NULL FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
	WHERE status IN ('pending', 'deferred');
-- The parked: who has any, for a digest run.
CREATE INDEX deliveries_parked ON deliveries (notification_id) WHERE status = 'digest';
-- What a digest carries.
CREATE INDEX deliveries_of_digest ON deliveries (digest_id) WHERE digest_id IS NOT NULL;
