//! Gateway routes.

pub mod health;
pub mod openapi;
pub mod proxy;
pub mod ws;
