//! Request and response bodies of the public REST API and the internal endpoints.
//!
//! Timestamps are RFC 3339 strings; dates are `YYYY-MM-DD`; ids are UUIDs.

pub mod auth;
pub mod matching;
pub mod message;
pub mod wsmanager;
