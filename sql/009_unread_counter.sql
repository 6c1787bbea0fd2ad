-- Each user's unread count, kept by every write that changes it, in the
-- same transaction: counting the unread rows was O(unread) on every page,
-- count, WebSocket greeting, and create to a connected user.
-- Unread means visible (a held scheduled notification has deliver_at
-- raised by 2^52 until its release), not read, not archived.
ALTER TABLE users ADD COLUMN unread INTEGER NOT NULL DEFAULT 0 CHECK (unread >= 0);
UPDATE users SET unread = (SELECT count(*) FROM notifications n WHERE n.user_id = users.id
	AND n.read_at IS NULL AND n.archived_at IS NULL
	AND (n.deliver_at IS NULL OR n.deliver_at < 4503599627370496));
