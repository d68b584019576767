-- Saved interest strictness and widening (JSON, see `store::Widening`), and the level of
-- masking applied to what the user receives.
ALTER TABLE users ADD COLUMN pref_widening TEXT NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN content_filter TEXT NOT NULL DEFAULT 'off';

-- The last rotation of a refresh session, for the retry grace window: the hash of the
-- token it replaced, when, and the new token sealed under the replaced one (only a client
-- holding the replaced token can open it). See `store::Rotation`.
ALTER TABLE refresh_sessions ADD COLUMN previous_hash BLOB;
ALTER TABLE refresh_sessions ADD COLUMN rotated_at INTEGER;
ALTER TABLE refresh_sessions ADD COLUMN sealed_successor BLOB;
