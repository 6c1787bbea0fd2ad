-- Two more channels through the same outbox: Web Push to a user's browsers,
-- and webhooks to the application's own endpoints.

-- A browser's PushSubscription (endpoint, keys.p256dh, keys.auth), one per
-- endpoint: subscribing again from the same browser updates its keys.
CREATE TABLE push_subscriptions (
	id		INTEGER PRIMARY KEY,
	user_id		TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	endpoint	TEXT NOT NULL UNIQUE,
	p256dh		TEXT NOT NULL,		-- base64url, 65 bytes decoded
	auth		TEXT NOT NULL,		-- base64url, 16 bytes decoded
	created_at	INTEGER NOT NULL,
	last_sent_at	INTEGER,
	last_error	TEXT
) STRICT;
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);

-- The application's endpoints. types and users are JSON arrays of what the
-- endpoint wants (NULL: everything). failing_since is the first failure of
-- the current run of them; disabled_at is set once that run is too long.
CREATE TABLE webhooks (
	id		INTEGER PRIMARY KEY,
	url		TEXT NOT NULL,
	secret		TEXT NOT NULL,
	format		TEXT NOT NULL CHECK (format = 'json' OR format = 'slack'),
	types		TEXT,
	users		TEXT,
	created_at	INTEGER NOT NULL,
	disabled_at	INTEGER,
	failing_since	INTEGER,
	failures	INTEGER NOT NULL DEFAULT 0,
	last_status	INTEGER,
	last_error	TEXT,
	last_attempt_at	INTEGER
) STRICT;

-- A delivery names its target when its channel has many per notification:
-- the push subscription or the webhook (0 for in_app and email).
CREATE TABLE deliveries_new (
	id		INTEGER PRIMARY KEY,
	notification_id	INTEGER REFERENCES notifications(id) ON DELETE CASCADE,
	channel		TEXT NOT NULL CHECK (channel = 'in_app' OR channel = 'email' OR
			    channel = 'push' OR channel = 'webhook'),
	target		INTEGER NOT NULL DEFAULT 0,
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
	UNIQUE (notification_id, channel, target)
) STRICT;
INSERT INTO deliveries_new (id, notification_id, channel, status, attempts, next_attempt_at,
	last_error, created_at, updated_at, sent_at, claimed, digest_id)
    SELECT id, notification_id, channel, status, attempts, next_attempt_at,
	last_error, created_at, updated_at, sent_at, claimed, digest_id FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
	WHERE status IN ('pending', 'deferred');
CREATE INDEX deliveries_parked ON deliveries (notification_id) WHERE status = 'digest';
CREATE INDEX deliveries_of_digest ON deliveries (digest_id) WHERE digest_id IS NOT NULL;

CREATE TABLE preferences_new (
	user_id		TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	type		TEXT NOT NULL,
	channel		TEXT NOT NULL CHECK (channel = 'in_app' OR channel = 'email' OR
			    channel = 'push'),
	enabled		INTEGER NOT NULL CHECK (enabled IN (0, 1)),
	PRIMARY KEY (user_id, type, channel)
) STRICT, WITHOUT ROWID;
INSERT INTO preferences_new SELECT user_id, type, channel, enabled FROM preferences;
DROP TABLE preferences;
ALTER TABLE preferences_new RENAME TO preferences;
