//! The messages between the model and the SDK worker: commands going out, updates coming back.

use client_sdk::Event;
use client_sdk::api::auth::{
    Preferences, Profile, SessionInfo, SignupRequest, UpdateProfileRequest,
};
use client_sdk::api::matching::{JoinQueueRequest, QueueStatus};
use client_sdk::api::message::{ChatPage, ChatSummary, HistoryPage, MessageView, ReportRequest};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::words::UiError;

/// Work for the SDK worker. None of it blocks the caller.
#[derive(Debug, Clone)]
pub enum Command {
    /// Resume the remembered session, if there is one.
    Restore,
    /// Log in to `server`.
    LogIn {
        /// The gateway's URL.
        server: String,
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// Create an account on `server` and log in as it.
    SignUp {
        /// The gateway's URL.
        server: String,
        /// Every field the API takes.
        request: Box<SignupRequest>,
    },
    /// End the session here and on the server, and forget it.
    LogOut,
    /// Join the queue.
    Join(Box<JoinQueueRequest>),
    /// Leave the queue.
    Leave,
    /// Ask where I stand in the queue (the criteria widen while waiting).
    PollQueue,
    /// Send a message; resent with the same id until acknowledged.
    Send {
        /// The chat.
        chat_id: Uuid,
        /// The id that keeps a resend from becoming a second message.
        client_msg_id: String,
        /// The text.
        text: String,
    },
    /// Everything up to `seq` was seen.
    MarkRead {
        /// The chat.
        chat_id: Uuid,
        /// Up to this seq.
        seq: u64,
    },
    /// Typing started or stopped.
    Typing {
        /// The chat.
        chat_id: Uuid,
        /// Whether typing.
        typing: bool,
    },
    /// End a chat (*Next*), and queue again when `then_join` is given.
    EndChat {
        /// The chat.
        chat_id: Uuid,
        /// Queue again afterwards with this request.
        then_join: Option<Box<JoinQueueRequest>>,
    },
    /// Block a user (ends the chat with them).
    Block {
        /// Whom.
        user_id: Uuid,
    },
    /// Report a user.
    Report(Box<ReportRequest>),
    /// A page of my chats, newest first.
    LoadChats {
        /// Older than this cursor (None: the newest page).
        before: Option<String>,
    },
    /// A page of a chat's history, older than `before`.
    LoadHistory {
        /// The chat.
        chat_id: Uuid,
        /// Older than this seq (None: the newest page).
        before: Option<u64>,
    },
    /// Save profile changes.
    UpdateProfile(Box<UpdateProfileRequest>),
    /// Save matching preferences.
    SetPreferences(Box<Preferences>),
    /// Change the password.
    ChangePassword {
        /// The current password.
        current: String,
        /// The new password.
        new: String,
    },
    /// List my sessions.
    LoadSessions,
    /// End one of my other sessions.
    EndSession(Uuid),
    /// Try the real-time connection again now (after it gave up).
    Reconnect,
}

/// The state of the real-time connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkUpdate {
    /// Connecting for the first time.
    Connecting,
    /// The first connection failed; the next attempt is at `retry_at`.
    RetryingAt {
        /// When the next attempt starts.
        retry_at: OffsetDateTime,
        /// Why the last one failed.
        reason: String,
    },
    /// An SDK event (connected, disconnected, a message, ...).
    Event(Box<Event>),
    /// The connection is closed for good (replaced by another window, or the session ended).
    Closed {
        /// Why.
        reason: String,
    },
}

/// What the worker reports back.
#[derive(Debug, Clone)]
pub enum Update {
    /// No session was remembered.
    NoSession,
    /// Logged in (or signed up, or restored); what the home screen needs.
    LoggedIn(Box<Welcome>),
    /// Log in, sign up or restore failed.
    LogInFailed {
        /// Which of the three.
        attempt: Attempt,
        /// Why.
        error: UiError,
    },
    /// Logged out.
    LoggedOut,
    /// The real-time connection changed or carried an event.
    Link(LinkUpdate),
    /// A send was stored by the server.
    Acked {
        /// The chat.
        chat_id: Uuid,
        /// The client message id.
        client_msg_id: String,
        /// Its seq.
        seq: u64,
        /// When it was stored.
        created_at: OffsetDateTime,
    },
    /// A send was refused for good.
    SendFailed {
        /// The chat.
        chat_id: Uuid,
        /// The client message id.
        client_msg_id: String,
        /// Why.
        error: UiError,
    },
    /// Where I stand in the queue.
    Queue(Box<QueueStatus>),
    /// I left the queue.
    LeftQueue,
    /// A page of my chats.
    Chats {
        /// Whether this was the newest page (replaces the list).
        first: bool,
        /// The page.
        page: ChatPage,
    },
    /// A page of a chat's history.
    History {
        /// The chat.
        chat_id: Uuid,
        /// Whether this was the newest page.
        first: bool,
        /// The page.
        page: HistoryPage,
    },
    /// My profile (after saving it).
    Profile(Box<Profile>),
    /// My saved preferences (after saving them).
    Preferences(Box<Preferences>),
    /// The password was changed.
    PasswordChanged,
    /// My sessions.
    Sessions(Vec<SessionInfo>),
    /// A session was ended.
    SessionClosed(Uuid),
    /// The chat was ended by me.
    ChatClosed(Uuid),
    /// A user was blocked.
    Blocked(Uuid),
    /// A report was filed.
    Reported,
    /// A request failed.
    Failed {
        /// Which request.
        what: Request,
        /// Why.
        error: UiError,
    },
}

/// Which way into an account failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Restoring the remembered session.
    Restore,
    /// Logging in.
    LogIn,
    /// Signing up.
    SignUp,
}

/// Which request failed (so that its form shows the error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Joining or leaving the queue.
    Queue,
    /// Ending a chat, blocking, reporting.
    Chat,
    /// Block.
    Block,
    /// Report.
    Report,
    /// The chat list or history.
    History,
    /// Saving the profile.
    Profile,
    /// Saving preferences.
    Preferences,
    /// Changing the password.
    Password,
    /// Listing or ending sessions.
    Sessions,
}

/// What a fresh session starts with.
#[derive(Debug, Clone)]
pub struct Welcome {
    /// The gateway's URL.
    pub server: String,
    /// My profile (with my saved preferences).
    pub profile: Profile,
    /// Where I stand in the queue.
    pub queue: QueueStatus,
    /// My chat that has not ended, with its newest messages (oldest first).
    pub active: Option<(ChatSummary, Vec<MessageView>)>,
}
