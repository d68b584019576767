//! HTTP routes, one module per resource, plus helpers they share.
//!
//! - [`auth`] — sign up, log in, refresh, log out (`/v1/auth/*`).
//! - [`me`] — the caller's profile, preferences, password and sessions (`/v1/me*`).
//! - [`keys`] — the published token keys (`/.well-known/jwks.json`).
//! - [`internal`] — profiles for other services (`/internal/*`, service credential).
//! - [`admin`] — moderation: bans and the audit log (`/v1/admin/*`, operators only).

pub mod admin;
pub mod auth;
pub mod internal;
pub mod keys;
pub mod me;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use service_kit::token::Grant;
use time::Date;
use uuid::Uuid;
use wire::api::auth::{ContentFilter, Profile, PublicProfile, Role, TokenPair};
use wire::domain::age_on;

use crate::error::AuthError;
use crate::refresh::RefreshToken;
use crate::state::AppState;
use crate::store::{Session, User};

/// Every route of the service (without the health routes and layers, see [`crate::app`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(me::router())
        .merge(keys::router())
        .merge(internal::router())
        .merge(admin::router())
}

use service_kit::telemetry::CLIENT_IP_HEADER;

/// The client's IP: the gateway's `x-rc-client-ip`, else the peer address, else (no
/// socket, as in in-process calls) the unspecified address.
///
/// The header is trusted because auth-service is reachable only through the gateway,
/// which replaces any value a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let from_header = parts
            .headers
            .get(&CLIENT_IP_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        let from_peer = || {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip())
        };
        Ok(ClientIp(
            from_header
                .or_else(from_peer)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ))
    }
}

/// The caller's own view of an account.
pub(crate) fn profile_of(user: &User, today: Date) -> Profile {
    Profile {
        id: user.id,
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        gender: user.gender,
        birth_date: user.birth_date,
        age: age_on(user.birth_date, today),
        interests: user.interests.clone(),
        preferences: user.preferences.clone(),
        content_filter: user.content_filter,
        created_at: user.created_at,
    }
}

/// What others may know of an account.
pub(crate) fn public_profile_of(user: &User, today: Date) -> PublicProfile {
    PublicProfile {
        id: user.id,
        display_name: user.display_name.clone(),
        gender: user.gender,
        age: age_on(user.birth_date, today),
        interests: user.interests.clone(),
    }
}

/// Begins a refresh session for `user` and issues its first tokens.
pub(crate) async fn begin_session(state: &AppState, user: &User) -> Result<TokenPair, AuthError> {
    let refresh = RefreshToken::generate();
    let session = Session::begin(
        user.id,
        refresh.hash,
        crate::store::now(),
        state.config().refresh_token_ttl,
    );
    state.sessions().create_session(&session).await?;
    end_sessions_beyond_the_cap(state, user.id, session.id).await?;
    Ok(token_pair(state, &session, refresh, grant_of(state, user)))
}

/// What a token of `user` carries beyond the session: the role and the content filter.
pub(crate) fn grant_of(state: &AppState, user: &User) -> TokenExtras {
    TokenExtras {
        role: if state.config().admins.contains(&user.username) {
            Role::Admin
        } else {
            Role::User
        },
        content_filter: user.content_filter,
    }
}

/// The per-account claims of an access token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenExtras {
    role: Role,
    content_filter: ContentFilter,
}

/// Ends the account's oldest sessions (never `keep`) while it has more than
/// [`crate::AuthConfig::max_sessions`], so that sessions cannot pile up without bound.
async fn end_sessions_beyond_the_cap(
    state: &AppState,
    user_id: Uuid,
    keep: Uuid,
) -> Result<(), AuthError> {
    let now = crate::store::now();
    let active = state.sessions().active_sessions(user_id, now).await?;
    let excess = active.len().saturating_sub(state.config().max_sessions);
    let mut ended = Vec::new();
    // Oldest first.
    for session in active.iter().filter(|s| s.id != keep).take(excess) {
        if state.sessions().revoke(user_id, session.id, now).await? {
            ended.push(session.id);
        }
    }
    if !ended.is_empty() {
        tracing::info!(%user_id, ended = ended.len(), "sessions beyond the cap ended");
        state.announce_ended(&ended).await;
    }
    Ok(())
}

/// An access token for `session` plus the given refresh token.
pub(crate) fn token_pair(
    state: &AppState,
    session: &Session,
    refresh: RefreshToken,
    extras: TokenExtras,
) -> TokenPair {
    let ttl = state.config().access_token_ttl;
    let grant = Grant {
        role: extras.role,
        content_filter: extras.content_filter,
        ..Grant::user(session.user_id, session.id)
    };
    let (access_token, _) = state.signer().sign_grant(&grant, ttl);
    TokenPair {
        user_id: session.user_id,
        session_id: session.id,
        access_token,
        token_type: "Bearer".to_owned(),
        expires_in: ttl.as_secs(),
        refresh_token: refresh.token,
        refresh_expires_at: session.expires_at,
    }
}
