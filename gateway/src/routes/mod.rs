//! Gateway routes and the middleware in front of them.

pub mod guard;
pub mod health;
pub mod openapi;
pub mod proxy;
pub mod ws;
