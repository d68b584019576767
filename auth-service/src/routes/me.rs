//! The caller's own account: profile, default preferences, password and sessions.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post, put};
use secrecy::SecretString;
use service_kit::auth::AuthUser;
use service_kit::error::ErrorBody;
use service_kit::extract::{Json, Path};
use uuid::Uuid;
use wire::api::auth::{
    ChangePassword, ChangePasswordRequest, EndSession, GetMe, GetPreferences, ListSessions,
    Preferences, Profile, SessionInfo, SetPreferences, UpdateMe, UpdateProfileRequest,
};
use wire::domain::today_utc;
use wire::endpoint::Endpoint;

use super::{ClientIp, profile_of};
use crate::domain::{
    BirthDate, DisplayName, Password, Username, parse_interests, parse_preferences,
};
use crate::error::AuthError;
use crate::state::AppState;
use crate::store::{ProfileUpdate, User};

/// `/v1/me*`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(GetMe::ROUTE, get(get_profile))
        .route(UpdateMe::ROUTE, patch(update_profile))
        .route(GetPreferences::ROUTE, get(get_preferences))
        .route(SetPreferences::ROUTE, put(put_preferences))
        .route(ChangePassword::ROUTE, post(change_password))
        .route(ListSessions::ROUTE, get(list_sessions))
        .route(EndSession::ROUTE, delete(end_session))
}

async fn current_user(state: &AppState, auth: &AuthUser) -> Result<User, AuthError> {
    state
        .users()
        .user_by_id(auth.user_id)
        .await?
        .ok_or(AuthError::NotFound("the account no longer exists"))
}

/// GET /v1/me
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's profile", body = Profile),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
    )
)]
pub async fn get_profile(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Profile>, AuthError> {
    let user = current_user(&state, &auth).await?;
    Ok(Json(profile_of(&user, today_utc())))
}

/// PATCH /v1/me
///
/// Changes the given profile fields; absent ones stay as they are.
#[utoipa::path(
    patch,
    path = "/v1/me",
    tag = "me",
    security(("bearer" = [])),
    request_body = UpdateProfileRequest,
    responses(
        (status = 200, description = "The updated profile", body = Profile),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 422, description = "`invalid_display_name`, `invalid_interest`, `too_many_interests` or `invalid_field`; the error names the field", body = ErrorBody),
    )
)]
pub async fn update_profile(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<UpdateProfileRequest>,
) -> Result<Json<Profile>, AuthError> {
    let today = today_utc();
    let update = ProfileUpdate {
        display_name: body
            .display_name
            .as_deref()
            .map(DisplayName::parse)
            .transpose()?
            .map(DisplayName::into_inner),
        gender: body.gender,
        birth_date: body
            .birth_date
            .map(|d| BirthDate::parse(d, today))
            .transpose()?
            .map(BirthDate::date),
        interests: body
            .interests
            .as_deref()
            .map(|tags| parse_interests(tags, "interests"))
            .transpose()?,
        content_filter: body.content_filter,
    };
    let user = state
        .users()
        .update_profile(auth.user_id, &update, crate::store::now())
        .await?
        .ok_or(AuthError::NotFound("the account no longer exists"))?;
    Ok(Json(profile_of(&user, today)))
}

/// GET /v1/me/preferences
#[utoipa::path(
    get,
    path = "/v1/me/preferences",
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's default matching preferences", body = Preferences),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
    )
)]
pub async fn get_preferences(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Preferences>, AuthError> {
    Ok(Json(current_user(&state, &auth).await?.preferences))
}

/// PUT /v1/me/preferences
///
/// Replaces the default matching preferences.
#[utoipa::path(
    put,
    path = "/v1/me/preferences",
    tag = "me",
    security(("bearer" = [])),
    request_body = Preferences,
    responses(
        (status = 200, description = "The stored (normalised) preferences", body = Preferences),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 422, description = "`invalid_age_range`, `invalid_age_widen`, `invalid_widen_every`, `invalid_fallback`, `interests_required`, `invalid_interest`, `too_many_interests` or `invalid_field`; the error names the field", body = ErrorBody),
    )
)]
pub async fn put_preferences(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(body): Json<Preferences>,
) -> Result<Json<Preferences>, AuthError> {
    let preferences = parse_preferences(body)?;
    if !state
        .users()
        .set_preferences(auth.user_id, &preferences, crate::store::now())
        .await?
    {
        return Err(AuthError::NotFound("the account no longer exists"));
    }
    Ok(Json(preferences))
}

/// POST /v1/me/password
///
/// Changes the password and ends every other session of the account.
#[utoipa::path(
    post,
    path = "/v1/me/password",
    tag = "me",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; every other session was ended"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 403, description = "`wrong_password`: the current password is wrong", body = ErrorBody),
        (status = 422, description = "`invalid_password`: the new password is invalid", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = ErrorBody),
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    ClientIp(ip): ClientIp,
    Json(body): Json<ChangePasswordRequest>,
) -> Result<StatusCode, AuthError> {
    let user = current_user(&state, &auth).await?;
    let username = Username::parse(&user.username)?;
    let new_password = Password::parse(&body.new_password, &username, "new_password")?;
    // Guessing the current password with a stolen access token is throttled like log ins.
    let attempt = state
        .throttle()
        .begin(&user.username, ip)
        .map_err(|retry_after| AuthError::TooManyAttempts { retry_after })?;
    let current = SecretString::from(body.current_password);
    match state
        .hasher()
        .verify(current, Some(user.password_hash))
        .await
    {
        Ok(true) => state.throttle().succeeded(attempt),
        Ok(false) => {
            state.throttle().failed(attempt);
            return Err(AuthError::WrongPassword);
        }
        Err(err) => {
            state.throttle().abandoned(attempt);
            return Err(err);
        }
    }
    let hash = state.hasher().hash(new_password.into_secret()).await?;
    let now = crate::store::now();
    if !state.users().set_password_hash(user.id, &hash, now).await? {
        return Err(AuthError::NotFound("the account no longer exists"));
    }
    let ended = state
        .sessions()
        .revoke_all(user.id, Some(auth.session_id), now)
        .await?;
    state.announce_ended(&ended).await;
    tracing::info!(user_id = %user.id, ended = ended.len(), "password changed; other sessions ended");
    Ok(StatusCode::NO_CONTENT)
}

/// GET /v1/me/sessions
///
/// The caller's active sessions, oldest first.
#[utoipa::path(
    get,
    path = "/v1/me/sessions",
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Active sessions", body = [SessionInfo]),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
    )
)]
pub async fn list_sessions(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<SessionInfo>>, AuthError> {
    let sessions = state
        .sessions()
        .active_sessions(auth.user_id, crate::store::now())
        .await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionInfo {
                id: s.id,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
                current: s.id == auth.session_id,
            })
            .collect(),
    ))
}

/// DELETE /v1/me/sessions/{id}
///
/// Ends one of the caller's sessions (the current one too, like logging out).
#[utoipa::path(
    delete,
    path = "/v1/me/sessions/{id}",
    tag = "me",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "The session was ended"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_ended`: no valid access token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such active session of the caller", body = ErrorBody),
    )
)]
pub async fn end_session(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, AuthError> {
    if state
        .sessions()
        .revoke(auth.user_id, id, crate::store::now())
        .await?
    {
        state.announce_ended(&[id]).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AuthError::NotFound("no such session"))
    }
}
