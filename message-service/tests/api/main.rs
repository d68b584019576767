//! message-service's HTTP API driven through `app(state).oneshot(..)` on a fresh SQLite
//! file: who may see and do what, input validation, and what participants get back.

mod authorization;
mod chats;
mod helpers;
mod validation;
