-- Accounts with their profile and default matching preferences.
CREATE TABLE users (
    id UUID PRIMARY KEY,
    -- Always stored lower-case, so the unique constraint makes names case-insensitive.
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    display_name TEXT NOT NULL,
    gender TEXT NOT NULL,
    birth_date DATE NOT NULL,
    interests JSONB NOT NULL,
    pref_genders JSONB NOT NULL,
    pref_min_age INTEGER NOT NULL,
    pref_max_age INTEGER NOT NULL,
    pref_interests JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_username_key UNIQUE (username)
);
