-- Operators' resolution of a report: the outcome (`dismissed` or `actioned`), a note, who
-- and when (milliseconds since the Unix epoch); NULL while the report is open.
ALTER TABLE reports ADD COLUMN outcome TEXT;
ALTER TABLE reports ADD COLUMN note TEXT;
ALTER TABLE reports ADD COLUMN resolved_by BLOB;
ALTER TABLE reports ADD COLUMN resolved_at INTEGER;

CREATE INDEX reports_open ON reports (resolved_at, created_at);
