-- Saved interest strictness and widening (JSON, see `store::Widening`), and the level of
-- masking applied to what the user receives.
ALTER TABLE users ADD COLUMN pref_widening JSONB NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN content_filter TEXT NOT NULL DEFAULT 'off';
