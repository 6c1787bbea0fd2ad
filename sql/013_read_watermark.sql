-- Mark all read in O(1): a user's read_before is a watermark, every
-- notification of theirs with an id up to it that has no read_at of its
-- own is read, at read_all_at. Rewriting 100,000 rows and their unread
-- index entries took 230-300 ms. A background task (notifications.c,
-- settle) then writes read_at into those rows in small transactions,
-- newest first, lowering read_before as it goes, and sets it to 0 when
-- done, so the watermark only ever covers rows it has not reached.
ALTER TABLE users ADD COLUMN read_before INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN read_all_at INTEGER;
CREATE INDEX users_settling ON users (read_before) WHERE read_before > 0;
