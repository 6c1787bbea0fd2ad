-- Inbox pages read in id order from an index that also holds what they
-- filter on, so a page reads its rows and no others, whatever the inbox
-- holds: the inbox from notifications_by_user (archived_at, deliver_at
-- tested in the index), unread ones from notifications_unread, archived
-- ones from notifications_archived. The old unread index served the
-- count, which users.unread keeps now.
DROP INDEX notifications_by_user;
CREATE INDEX notifications_by_user ON notifications (user_id, id, archived_at, deliver_at);
DROP INDEX notifications_unread;
CREATE INDEX notifications_unread ON notifications (user_id, id, deliver_at)
	WHERE read_at IS NULL AND archived_at IS NULL;
CREATE INDEX notifications_archived ON notifications (user_id, id)
	WHERE archived_at IS NOT NULL;
