//! API tests of auth-service through `app(state).oneshot(..)`.

mod helpers;

mod accounts;
mod admin;
mod internal;
mod me;
mod outage;
mod real_backends;
mod tokens;
