//! API tests of auth-service through `app(state).oneshot(..)`.

mod helpers;

mod accounts;
mod internal;
mod me;
mod real_backends;
mod tokens;
