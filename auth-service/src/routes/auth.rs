//! Sign up, log in, refresh and log out.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use secrecy::SecretString;
use service_kit::auth::AuthUser;
use service_kit::error::ErrorBody;
use service_kit::extract::Json;
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::auth::{
    Login, LoginRequest, Logout, Refresh, RefreshRequest, Signup, SignupRequest, SignupResponse,
    TokenPair,
};
use wire::domain::today_utc;
use wire::endpoint::Endpoint;

use super::{ClientIp, begin_session, profile_of, token_pair};
use crate::domain::{
    BirthDate, DisplayName, Password, Username, default_preferences, parse_interests,
};
use crate::error::AuthError;
use crate::refresh::{self, RefreshToken, hash_token};
use crate::state::AppState;
use crate::store::{Rotation, User};

/// Longest username kept as a throttling key: longer ones cannot exist anyway, and this
/// bounds the memory an attacker can make the throttle hold per attempt.
const MAX_ACCOUNT_KEY: usize = 64;

/// `/v1/auth/*`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(Signup::ROUTE, post(signup))
        .route(Login::ROUTE, post(login))
        .route(Refresh::ROUTE, post(refresh))
        .route(Logout::ROUTE, post(logout))
}

/// POST /v1/auth/signup
///
/// Creates an account and its first session.
#[utoipa::path(
    post,
    path = "/v1/auth/signup",
    tag = "auth",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "Account created; tokens of its first session", body = SignupResponse),
        (status = 409, description = "`username_taken`", body = ErrorBody),
        (status = 422, description = "`invalid_username`, `invalid_password`, `invalid_display_name`, `invalid_birth_date`, `too_young`, `invalid_interest`, `too_many_interests` or `invalid_field`; the error names the field", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many sign-ups from this address (see `Retry-After`)", body = ErrorBody),
        (status = 503, description = "`backend_unavailable`, or `overloaded` when too much password hashing is queued", body = ErrorBody),
    )
)]
pub async fn signup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<SignupRequest>,
) -> Result<(StatusCode, Json<SignupResponse>), AuthError> {
    let username = Username::parse(&body.username)?;
    let password = Password::parse(&body.password, &username, "password")?;
    let display_name = DisplayName::parse(&body.display_name)?;
    let today = today_utc();
    let birth_date = BirthDate::parse(body.birth_date, today)?;
    let interests = parse_interests(&body.interests, "interests")?;
    // Everything cheap comes before the one expensive step, the password hash: the
    // per-IP limit, then whether the name is free (the unique constraint still decides
    // a race between two sign-ups for one name).
    state
        .signups()
        .check(ip)
        .map_err(|retry_after| AuthError::TooManySignups { retry_after })?;
    if state
        .users()
        .user_by_username(username.as_str())
        .await?
        .is_some()
    {
        return Err(AuthError::UsernameTaken);
    }
    let password_hash = state.hasher().hash(password.into_secret()).await?;
    let now = crate::store::now();
    let user = User {
        id: Uuid::now_v7(),
        username: username.as_str().to_owned(),
        password_hash,
        display_name: display_name.into_inner(),
        gender: body.gender,
        birth_date: birth_date.date(),
        preferences: default_preferences(&interests),
        interests,
        content_filter: Default::default(),
        created_at: now,
        updated_at: now,
    };
    state.users().create_user(&user).await?;
    tracing::info!(user_id = %user.id, "account created");
    let tokens = begin_session(&state, &user).await?;
    Ok((
        StatusCode::CREATED,
        Json(SignupResponse {
            user: profile_of(&user, today),
            tokens,
        }),
    ))
}

/// POST /v1/auth/login
///
/// Checks the username and password and begins a new session. An unknown username and a
/// wrong password get the same answer in about the same time.
#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Tokens of a new session", body = TokenPair),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = ErrorBody),
        (status = 503, description = "`backend_unavailable`", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<LoginRequest>,
) -> Result<Json<TokenPair>, AuthError> {
    let account: String = body
        .username
        .to_ascii_lowercase()
        .chars()
        .take(MAX_ACCOUNT_KEY)
        .collect();
    let attempt = state
        .throttle()
        .begin(&account, ip)
        .map_err(|retry_after| AuthError::TooManyAttempts { retry_after })?;
    let user = match Username::parse(&body.username) {
        Ok(username) => match state.users().user_by_username(username.as_str()).await {
            Ok(user) => user,
            Err(err) => {
                state.throttle().abandoned(attempt);
                return Err(err.into());
            }
        },
        // A name that cannot exist is answered exactly like an unknown one.
        Err(_) => None,
    };
    let password = SecretString::from(body.password);
    let matched = match state
        .hasher()
        .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
        .await
    {
        Ok(matched) => matched,
        Err(err) => {
            state.throttle().abandoned(attempt);
            return Err(err);
        }
    };
    let Some(user) = user.filter(|_| matched) else {
        state.throttle().failed(attempt);
        return Err(AuthError::InvalidCredentials);
    };
    // Said only to whoever knows the password.
    match state.users().ban_of(user.id).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            state.throttle().succeeded(attempt);
            return Err(AuthError::AccountBanned);
        }
        Err(err) => {
            state.throttle().abandoned(attempt);
            return Err(err.into());
        }
    }
    match begin_session(&state, &user).await {
        Ok(tokens) => {
            state.throttle().succeeded(attempt);
            Ok(Json(tokens))
        }
        Err(err) => {
            state.throttle().abandoned(attempt);
            Err(err)
        }
    }
}

/// POST /v1/auth/refresh
///
/// Rotates a refresh token: answers new tokens and makes the presented one unusable.
/// Presenting an already rotated token ends its whole session.
#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens of the same session", body = TokenPair),
        (status = 401, description = "`invalid_refresh_token`, or `refresh_token_reused` (the session was ended)", body = ErrorBody),
        (status = 503, description = "`backend_unavailable`", body = ErrorBody),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<TokenPair>, AuthError> {
    // 32 bytes in unpadded base64url are 43 characters; anything else was never issued.
    if body.refresh_token.len() != 43 {
        return Err(AuthError::InvalidRefreshToken);
    }
    let presented = hash_token(&body.refresh_token);
    let now = crate::store::now();
    let Some(found) = state.sessions().find_by_token(&presented).await? else {
        return Err(AuthError::InvalidRefreshToken);
    };
    let session = found.session;
    if !session.is_active(now) {
        return Err(AuthError::InvalidRefreshToken);
    }
    // The account's current role and settings go into the new access token.
    let Some(user) = state.users().user_by_id(session.user_id).await? else {
        return Err(AuthError::InvalidRefreshToken);
    };
    if state.users().ban_of(user.id).await?.is_some() {
        return Err(AuthError::AccountBanned);
    }
    let extras = super::grant_of(&state, &user);
    if !found.is_current {
        if let Some(successor) = grace_successor(&state, &session, &body.refresh_token, now) {
            return Ok(Json(token_pair(&state, &session, successor, extras)));
        }
        return Err(end_reused_family(&state, session.user_id, session.id, now).await);
    }
    let next = RefreshToken::generate();
    let rotation = Rotation {
        replaced: presented,
        at: now,
        sealed_successor: refresh::seal(&next, &body.refresh_token),
    };
    if state
        .sessions()
        .rotate(&session, &next.hash, &rotation)
        .await?
    {
        let rotated = crate::store::Session {
            current_hash: next.hash,
            last_used_at: now,
            last_rotation: Some(rotation),
            ..session
        };
        return Ok(Json(token_pair(&state, &rotated, next, extras)));
    }
    // The conditional write lost: either the session ended meanwhile, or another request
    // rotated this very token first — a concurrent refresh (same answer as the winner's,
    // within the grace window) or a reuse.
    match state.sessions().session(session.id).await? {
        Some(current) if current.is_active(now) => {
            match grace_successor(&state, &current, &body.refresh_token, now) {
                Some(successor) => Ok(Json(token_pair(&state, &current, successor, extras))),
                None => Err(end_reused_family(&state, session.user_id, session.id, now).await),
            }
        }
        _ => Err(AuthError::InvalidRefreshToken),
    }
}

/// The current token of `session` when `presented` is the one its last refresh replaced,
/// less than the grace window ago: a retried or concurrent refresh gets the same answer as
/// the one that won instead of ending the session. Anything older is reuse.
fn grace_successor(
    state: &AppState,
    session: &crate::store::Session,
    presented: &str,
    now: OffsetDateTime,
) -> Option<RefreshToken> {
    let rotation = session.last_rotation.as_ref()?;
    let within = now - rotation.at < state.config().refresh_grace;
    if !within || rotation.replaced != hash_token(presented) {
        return None;
    }
    let successor = refresh::open(&rotation.sealed_successor, presented);
    // Only the current token is handed out again, never one rotated since.
    (successor.hash == session.current_hash).then_some(successor)
}

async fn end_reused_family(
    state: &AppState,
    user_id: Uuid,
    session_id: Uuid,
    now: OffsetDateTime,
) -> AuthError {
    tracing::warn!(%user_id, %session_id, "a rotated refresh token was reused; ending its session");
    match state.sessions().revoke(user_id, session_id, now).await {
        Ok(_) => {
            state.announce_ended(&[session_id]).await;
            AuthError::RefreshTokenReused
        }
        Err(err) => err.into(),
    }
}

/// POST /v1/auth/logout
///
/// Ends the session of the calling access token; its refresh token stops working.
#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session was ended (or had already ended)"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 503, description = "`backend_unavailable`", body = ErrorBody),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<StatusCode, AuthError> {
    state
        .sessions()
        .revoke(auth.user_id, auth.session_id, crate::store::now())
        .await?;
    // Announced even when the store says it had already ended: the announcement may be
    // what was lost the first time.
    state.announce_ended(&[auth.session_id]).await;
    Ok(StatusCode::NO_CONTENT)
}
