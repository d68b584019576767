-- Accounts with their profile and default matching preferences.
CREATE TABLE users (
    id BLOB PRIMARY KEY NOT NULL,
    -- Always stored lower-case, so the unique constraint makes names case-insensitive.
    username TEXT NOT NULL CONSTRAINT users_username_key UNIQUE,
    password_hash TEXT NOT NULL,
    display_name TEXT NOT NULL,
    gender TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    interests TEXT NOT NULL,
    pref_genders TEXT NOT NULL,
    pref_min_age INTEGER NOT NULL,
    pref_max_age INTEGER NOT NULL,
    pref_interests TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Refresh-token sessions ("families"): one per log in, rotated on every refresh.
-- Times are milliseconds since the Unix epoch.
CREATE TABLE refresh_sessions (
    id BLOB PRIMARY KEY NOT NULL,
    user_id BLOB NOT NULL,
    current_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE INDEX refresh_sessions_user_id ON refresh_sessions (user_id);

-- Every refresh token ever issued (by SHA-256 hash), so that a rotated one presented
-- again is recognised as reuse of its family.
CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    session_id BLOB NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
