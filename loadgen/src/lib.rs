//! Load generator for Random Chats: drives the gateway over loopback exactly as real clients
//! do (sign up, log in, WebSocket, queue, match) and measures what the server sustains.
//!
//! - [`schedule`] — the open-loop send schedule (intended send times, who sends).
//! - [`stats`] — latency histograms and percentiles that count missing samples as infinite.
//! - [`procfs`] — CPU time and resident memory of a process from `/proc`.
//! - [`findmax`] — the pass/fail rule of a step and the search for the highest rate held.
//! - [`profiles`] — a deterministic, realistic mix of genders, ages and interests.
//! - [`client`] — accounts, source addresses, the WebSocket handshake and incoming frames.
//! - [`conversation`] — pairs chatting at a fixed aggregate rate.
//! - [`idle`] — many authenticated idle connections over several processes; server RSS.
//! - [`matching`] — many waiting tickets; pairs per second and time to match.
//! - [`report`] — human-readable output.

pub mod client;
pub mod conversation;
pub mod findmax;
pub mod idle;
pub mod matching;
pub mod procfs;
pub mod profiles;
pub mod report;
pub mod schedule;
pub mod stats;
