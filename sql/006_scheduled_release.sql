-- A scheduled notification is released with a new id when it falls due,
-- so ids stay in the order notifications became visible and since=ID
-- replay never misses one. scheduled_id is the id it had while it waited
-- (the one its sender was given).
ALTER TABLE notifications ADD COLUMN scheduled_id INTEGER;
CREATE INDEX notifications_scheduled ON notifications (scheduled_id)
	WHERE scheduled_id IS NOT NULL;
