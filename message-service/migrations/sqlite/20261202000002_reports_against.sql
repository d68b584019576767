-- Reports against a user, for the matcher's reputation (`reporters_of`).
CREATE INDEX reports_reported ON reports (reported_id, created_at);
