-- Counting a user's unread notifications must not touch the table: the
-- visibility test needs deliver_at, so the unread index carries it.
-- (With the old index each count read one table page per unread row.)
DROP INDEX notifications_unread;
CREATE INDEX notifications_unread ON notifications (user_id, deliver_at)
	WHERE read_at IS NULL AND archived_at IS NULL;
