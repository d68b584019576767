-- Chats, messages, watermarks, blocks and reports. Times are milliseconds since the Unix
-- epoch; ids are UUIDs as 16-byte blobs.

CREATE TABLE chats (
    id BLOB PRIMARY KEY NOT NULL,
    -- Chat creation is idempotent per match.
    match_id BLOB NOT NULL CONSTRAINT chats_match_id_key UNIQUE,
    created_at INTEGER NOT NULL,
    ended_at INTEGER,
    ended_by BLOB,
    -- The per-chat counter: the highest sequence number assigned.
    last_seq INTEGER NOT NULL DEFAULT 0
);

-- One row per participant: the profile at match time and the watermarks.
CREATE TABLE chat_participants (
    chat_id BLOB NOT NULL REFERENCES chats (id),
    user_id BLOB NOT NULL,
    position INTEGER NOT NULL,
    profile TEXT NOT NULL,
    -- Copied from the chat so a user's chats list newest first from one index.
    chat_created_at INTEGER NOT NULL,
    delivered_seq INTEGER NOT NULL DEFAULT 0,
    delivered_at INTEGER,
    read_seq INTEGER NOT NULL DEFAULT 0,
    read_at INTEGER,
    PRIMARY KEY (chat_id, user_id)
) WITHOUT ROWID;

CREATE INDEX chat_participants_user ON chat_participants (user_id, chat_created_at DESC);

CREATE TABLE messages (
    id BLOB PRIMARY KEY NOT NULL,
    chat_id BLOB NOT NULL REFERENCES chats (id),
    seq INTEGER NOT NULL,
    sender_id BLOB NOT NULL,
    client_msg_id TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    CONSTRAINT messages_chat_seq_key UNIQUE (chat_id, seq),
    CONSTRAINT messages_client_msg_id_key UNIQUE (chat_id, sender_id, client_msg_id)
);

-- Every forward move of a watermark, to tell when each message became delivered / read.
CREATE TABLE watermark_marks (
    chat_id BLOB NOT NULL,
    user_id BLOB NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (chat_id, user_id, kind, seq)
) WITHOUT ROWID;

CREATE INDEX watermark_marks_chat_seq ON watermark_marks (chat_id, seq);

CREATE TABLE blocks (
    blocker_id BLOB NOT NULL,
    blocked_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
) WITHOUT ROWID;

CREATE INDEX blocks_blocked ON blocks (blocked_id);

CREATE TABLE reports (
    id BLOB PRIMARY KEY NOT NULL,
    reporter_id BLOB NOT NULL,
    reported_id BLOB NOT NULL,
    chat_id BLOB NOT NULL,
    message_ids TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX reports_reporter ON reports (reporter_id, created_at);
