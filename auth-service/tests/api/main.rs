//! API tests of auth-service through `app(state).oneshot(..)`.

mod helpers;

mod accounts;
mod internal;
mod me;
mod outage;
mod real_backends;
mod tokens;
