-- Saved interest strictness and widening (JSON, see `store::Widening`), and the level of
-- masking applied to what the user receives.
ALTER TABLE users ADD COLUMN pref_widening JSONB NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN content_filter TEXT NOT NULL DEFAULT 'off';

-- Bans (operators): since when, why and by whom; NULL when the account is not banned.
ALTER TABLE users ADD COLUMN banned_at TIMESTAMPTZ;
ALTER TABLE users ADD COLUMN ban_reason TEXT;
ALTER TABLE users ADD COLUMN banned_by UUID;

-- Every operator action, append-only. Ids are time-ordered (UUIDv7).
CREATE TABLE admin_audit (
    id UUID PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    operator_id UUID NOT NULL,
    action TEXT NOT NULL,
    target_id UUID NOT NULL,
    detail TEXT NOT NULL
);
