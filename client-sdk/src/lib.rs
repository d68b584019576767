//! client-sdk: a typed async Rust client for Random Chats.
//!
//! A [`Client`] talks to the gateway: accounts and profile, the matching queue, chats,
//! blocks and reports. It keeps the session's tokens and refreshes the access token by
//! itself before it expires (and once more if the server refuses it). [`Client::connect`]
//! opens the real-time [`Connection`]: an event stream ([`Event`]) plus sending with client
//! message ids retried until acknowledged, delivery acks sent by itself, read marks,
//! typing, and reconnection with jittered backoff and resume, so that no message is lost
//! or handed over twice.
//!
//! ```no_run
//! # async fn demo() -> Result<(), client_sdk::Error> {
//! use client_sdk::{Client, Event};
//!
//! let client = Client::new("http://127.0.0.1:8080")?;
//! client.login("alice", "correct horse battery").await?;
//! let mut live = client.connect().await?;
//! client.join_queue(&Default::default()).await?;
//! while let Some(event) = live.next_event().await {
//!     if let Event::Matched(info) = event {
//!         live.send(info.chat_id, "hi!").await?;
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! - [`client`] — the REST client and token handling.
//! - [`realtime`] — the real-time connection.
//! - [`error`] — the error type callers match on.

pub mod client;
pub mod error;
pub mod realtime;

pub use client::Client;
pub use error::{Error, Result};
pub use realtime::{Ack, ConnectOptions, Connection, Event};
pub use wire::api;
pub use wire::domain::Gender;
pub use wire::error::ErrorCode;
pub use wire::protocol::ResumePoint;
