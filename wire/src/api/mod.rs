//! Request and response bodies of the public REST API and the internal endpoints, and the
//! endpoints themselves (see [`crate::endpoint`]): public ones under `/v1`, internal ones
//! under `/internal` (the gateway never exposes those; they need the service credential).
//!
//! Timestamps are RFC 3339 strings; dates are `YYYY-MM-DD`; ids are UUIDs.

pub mod auth;
pub mod matching;
pub mod message;
pub mod wsmanager;
