-- A create writes an email delivery only when email can happen. When it
-- cannot (no address, or email turned off), the reason is kept here and
-- reported as a skipped email delivery: a column, not a row and its
-- indexes, on the path of every send.
ALTER TABLE notifications ADD COLUMN email_skipped TEXT;
