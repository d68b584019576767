//! The Random Chats desktop client, built on `client-sdk` alone.
//!
//! - [`model`] — the state of the client and how actions and SDK updates change it.
//! - [`bridge`] — the commands the model gives and the updates the worker reports.
//! - [`worker`] — the SDK work on a tokio runtime off the UI thread.
//! - [`controller`] — the model and the worker joined.
//! - [`config`] — the configuration directory and the remembered session.
//! - [`words`] — errors in plain sentences.
//! - [`theme`] — light or dark, as chosen or as the system says.
//! - [`ui`] — the egui views, drawn from the model.

pub mod bridge;
pub mod config;
pub mod controller;
pub mod model;
pub mod theme;
pub mod ui;
pub mod words;
pub mod worker;

pub use controller::Controller;
pub use model::{Action, App};
