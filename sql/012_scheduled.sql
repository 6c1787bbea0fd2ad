-- A notification sent for later waits here, not in notifications, until
-- the worker releases it when due: it is then written to notifications
-- with a new id, so ids keep the order in which notifications became
-- visible and since=ID replay misses none, and with scheduled_id set to
-- this id. This id is taken from notifications' own sequence, so the id
-- a send returned names one notification, before and after its release.
-- What routing decided at the send waits with it: in_app 'sent' (shown
-- when due) or 'skipped' (stored archived), and the email delivery to
-- write when due (email NULL: none, and nothing to show as skipped).
CREATE TABLE scheduled (
	id		INTEGER PRIMARY KEY,
	user_id		TEXT NOT NULL REFERENCES users(id),
	type		TEXT NOT NULL,
	category	TEXT,
	priority	TEXT NOT NULL DEFAULT 'normal',
	title		TEXT,
	body		TEXT,
	data		TEXT,
	action_url	TEXT,
	dedupe_key	TEXT,
	created_at	INTEGER NOT NULL,
	deliver_at	INTEGER NOT NULL,
	in_app		TEXT NOT NULL,
	in_app_why	TEXT,
	email		TEXT,
	email_next_at	INTEGER,
	email_why	TEXT,
	UNIQUE (user_id, dedupe_key)
);
CREATE INDEX scheduled_due ON scheduled (deliver_at);

-- Those waiting the old way: a notifications row whose deliver_at held the
-- due time plus 2^52, with a pending in-app delivery and its email one.
INSERT INTO scheduled (id, user_id, type, category, priority, title, body, data, action_url,
	dedupe_key, created_at, deliver_at, in_app, email, email_next_at, email_why)
SELECT n.id, n.user_id, n.type, n.category, n.priority, n.title, n.body, n.data,
	n.action_url, n.dedupe_key, n.created_at, n.deliver_at - 4503599627370496, 'sent',
	coalesce(e.status, CASE WHEN n.email_skipped IS NOT NULL THEN 'skipped' END),
	e.next_attempt_at, coalesce(e.last_error, n.email_skipped)
FROM notifications n LEFT JOIN deliveries e ON e.notification_id = n.id AND e.channel = 'email'
WHERE n.deliver_at >= 4503599627370496;
DELETE FROM deliveries WHERE notification_id IN (SELECT id FROM scheduled);
DELETE FROM notifications WHERE id IN (SELECT id FROM scheduled);
