-- Retention finds the newest mail_max messages by walking ids. The table's
-- own b-tree holds whole messages (a leaf page or more each), so walking it
-- read every stored message; this index holds only the ids.
CREATE INDEX mail_order ON mail (id);
