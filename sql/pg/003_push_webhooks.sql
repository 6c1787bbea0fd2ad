-- Two more channels through the same outbox: Web Push to a user's browsers,
-- and webhooks to the application's own endpoints (sql/014_push_webhooks.sql).

CREATE TABLE push_subscriptions (
	id		bigserial PRIMARY KEY,
	user_id		text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	endpoint	text NOT NULL UNIQUE,
	p256dh		text NOT NULL,
	auth		text NOT NULL,
	created_at	bigint NOT NULL,
	last_sent_at	bigint,
	last_error	text
);
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);

CREATE TABLE webhooks (
	id		bigserial PRIMARY KEY,
	url		text NOT NULL,
	secret		text NOT NULL,
	format		text NOT NULL CHECK (format IN ('json', 'slack')),
	types		text[],
	users		text[],
	created_at	bigint NOT NULL,
	disabled_at	bigint,
	failing_since	bigint,
	failures	integer NOT NULL DEFAULT 0,
	last_status	integer,
	last_error	text,
	last_attempt_at	bigint
);

ALTER TABLE deliveries ADD COLUMN target bigint NOT NULL DEFAULT 0;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_channel_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_channel_check
	CHECK (channel IN ('in_app', 'email', 'push', 'webhook'));
ALTER TABLE deliveries DROP CONSTRAINT deliveries_notification_id_channel_key;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_notification_id_channel_target_key
	UNIQUE (notification_id, channel, target);
ALTER TABLE preferences DROP CONSTRAINT preferences_channel_check;
ALTER TABLE preferences ADD CONSTRAINT preferences_channel_check
	CHECK (channel IN ('in_app', 'email', 'push'));
