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

-- Bans (operators): since when, why and by whom; NULL when the account is not banned.
ALTER TABLE users ADD COLUMN banned_at TEXT;
ALTER TABLE users ADD COLUMN ban_reason TEXT;
ALTER TABLE users ADD COLUMN banned_by BLOB;

-- Every operator action, append-only. Ids are time-ordered (UUIDv7).
CREATE TABLE admin_audit (
    id BLOB PRIMARY KEY NOT NULL,
    at TEXT NOT NULL,
    operator_id BLOB NOT NULL,
    action TEXT NOT NULL,
    target_id BLOB NOT NULL,
    detail TEXT NOT NULL
);
