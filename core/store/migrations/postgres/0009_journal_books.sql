-- The journal keeps more than the desk's sessions: each entry names its
-- book (`desk`: a paper session's; `workflow`: a workflow run's history),
-- and each book is read alone. Existing entries are the desk's. Row-level
-- security is the table's, unchanged.
ALTER TABLE desk_journal ADD COLUMN book text NOT NULL DEFAULT 'desk';
CREATE INDEX desk_journal_book ON desk_journal (book, session, seq);
