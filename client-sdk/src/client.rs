//! The REST client: accounts, profile, chats, blocks, reports and the matching queue, with
//! access tokens refreshed by themselves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use url::Url;
use uuid::Uuid;
use wire::api::auth::{
    ChangePassword, ChangePasswordRequest, EndSession, GetMe, GetPreferences, ListSessions, Login,
    LoginRequest, Logout, Preferences, Profile, Refresh, RefreshRequest, SessionInfo,
    SetPreferences, Signup, SignupRequest, SignupResponse, TokenPair, UpdateMe,
    UpdateProfileRequest,
};
use wire::api::matching::{GetQueue, JoinQueue, JoinQueueRequest, LeaveQueue, QueueStatus};
use wire::api::message::{
    Block, BlockRequest, BlockedUser, ChatListQuery, ChatPage, ChatSummary, EndChat, FileReport,
    GetChat, History, HistoryPage, HistoryQuery, ListBlocks, ListChats, Report, ReportRequest,
    Unblock,
};
use wire::endpoint::{Endpoint, PathParams};
use wire::error::{ErrorBody, ErrorCode};

use crate::error::{Error, Result};

/// Refresh the access token when it has less than this left.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// The tokens of the logged-in session.
#[derive(Clone)]
struct Session {
    tokens: TokenPair,
    /// When the access token stops being accepted (by our clock, with the margin).
    refresh_at: Instant,
}

impl Session {
    fn new(tokens: TokenPair) -> Self {
        let ttl = Duration::from_secs(tokens.expires_in).saturating_sub(REFRESH_MARGIN);
        Self {
            refresh_at: Instant::now() + ttl,
            tokens,
        }
    }
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    session: Mutex<Option<Session>>,
}

/// A Random Chats client for one user. Cheap to clone; clones share the session.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the gateway at `base_url` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base_url: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Transport(e.to_string()))?;
        Self::with_http(base_url, http)
    }

    /// A client using a `reqwest::Client` of the caller's.
    pub fn with_http(base_url: &str, http: reqwest::Client) -> Result<Self> {
        let mut base = Url::parse(base_url).map_err(|e| Error::Decode(format!("base url: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::Decode("base url: must be http or https".to_owned()));
        }
        base.set_path("/");
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                session: Mutex::new(None),
            }),
        })
    }

    /// The gateway's base URL.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The logged-in user, if any.
    pub async fn user_id(&self) -> Option<Uuid> {
        self.inner
            .session
            .lock()
            .await
            .as_ref()
            .map(|s| s.tokens.user_id)
    }

    /// The current tokens (to persist a login), if logged in.
    pub async fn tokens(&self) -> Option<TokenPair> {
        self.inner
            .session
            .lock()
            .await
            .as_ref()
            .map(|s| s.tokens.clone())
    }

    /// Resumes a session from tokens persisted earlier; the access token is refreshed
    /// when it has expired.
    pub async fn set_tokens(&self, tokens: TokenPair) {
        *self.inner.session.lock().await = Some(Session::new(tokens));
    }

    // ---- accounts -----------------------------------------------------------------

    /// Creates an account and logs in as it.
    pub async fn signup(&self, request: &SignupRequest) -> Result<SignupResponse> {
        let response = self.anonymous::<Signup>(request).await?;
        self.set_tokens(response.tokens.clone()).await;
        Ok(response)
    }

    /// Logs in.
    pub async fn login(&self, username: &str, password: &str) -> Result<TokenPair> {
        let request = LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        let tokens = self.anonymous::<Login>(&request).await?;
        self.set_tokens(tokens.clone()).await;
        Ok(tokens)
    }

    /// Rotates the refresh token and gets a new access token now (normally done by
    /// itself when the access token is about to expire).
    pub async fn refresh(&self) -> Result<TokenPair> {
        let mut guard = self.inner.session.lock().await;
        self.refresh_locked(&mut guard).await
    }

    /// Logs out: the session ends on the server and here.
    pub async fn logout(&self) -> Result<()> {
        let result = self.authed::<Logout>((), &()).await;
        *self.inner.session.lock().await = None;
        result
    }

    /// My profile.
    pub async fn me(&self) -> Result<Profile> {
        self.authed::<GetMe>((), &()).await
    }

    /// Edits my profile (absent fields stay). A new content filter level travels in the
    /// access token, so the token is refreshed at once when the level changes; connections
    /// opened from then on use it (reconnect to apply it to an open one).
    pub async fn update_profile(&self, request: &UpdateProfileRequest) -> Result<Profile> {
        let profile = self.authed::<UpdateMe>((), request).await?;
        if request.content_filter.is_some() {
            self.refresh().await?;
        }
        Ok(profile)
    }

    /// My saved matching preferences.
    pub async fn preferences(&self) -> Result<Preferences> {
        self.authed::<GetPreferences>((), &()).await
    }

    /// Replaces my saved matching preferences.
    pub async fn set_preferences(&self, preferences: &Preferences) -> Result<Preferences> {
        self.authed::<SetPreferences>((), preferences).await
    }

    /// Changes my password; every other session ends.
    pub async fn change_password(&self, current: &str, new: &str) -> Result<()> {
        let request = ChangePasswordRequest {
            current_password: current.to_owned(),
            new_password: new.to_owned(),
        };
        self.authed::<ChangePassword>((), &request).await
    }

    /// My active sessions.
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>> {
        self.authed::<ListSessions>((), &()).await
    }

    /// Ends one of my sessions.
    pub async fn end_session(&self, session_id: Uuid) -> Result<()> {
        self.authed::<EndSession>(session_id, &()).await
    }

    // ---- matching -----------------------------------------------------------------

    /// Joins the matching queue (ends my current chat first, if any).
    pub async fn join_queue(&self, request: &JoinQueueRequest) -> Result<QueueStatus> {
        self.authed::<JoinQueue>((), request).await
    }

    /// Where I stand in the queue, and my latest match.
    pub async fn queue_status(&self) -> Result<QueueStatus> {
        self.authed::<GetQueue>((), &()).await
    }

    /// Leaves the queue.
    pub async fn leave_queue(&self) -> Result<()> {
        self.authed::<LeaveQueue>((), &()).await
    }

    // ---- chats --------------------------------------------------------------------

    /// My newest chats, newest first (the first page of [`Client::chats_page`]).
    pub async fn chats(&self) -> Result<Vec<ChatSummary>> {
        Ok(self.chats_page(&ChatListQuery::default()).await?.chats)
    }

    /// A page of my chats, newest first; pass the page's `next_before` as `before` for
    /// the next (older) one.
    pub async fn chats_page(&self, query: &ChatListQuery) -> Result<ChatPage> {
        self.authed::<ListChats>((), query).await
    }

    /// One of my chats.
    pub async fn chat(&self, chat_id: Uuid) -> Result<ChatSummary> {
        self.authed::<GetChat>(chat_id, &()).await
    }

    /// A page of a chat's history, with each message's status as I see it.
    pub async fn history(&self, chat_id: Uuid, query: &HistoryQuery) -> Result<HistoryPage> {
        self.authed::<History>(chat_id, query).await
    }

    /// Ends a chat (*Next*); the partner is told.
    pub async fn end_chat(&self, chat_id: Uuid) -> Result<ChatSummary> {
        self.authed::<EndChat>(chat_id, &()).await
    }

    /// Blocks a user: we are never matched again, and an active chat with them ends.
    pub async fn block(&self, user_id: Uuid) -> Result<BlockedUser> {
        self.authed::<Block>((), &BlockRequest { user_id }).await
    }

    /// Unblocks a user.
    pub async fn unblock(&self, user_id: Uuid) -> Result<()> {
        self.authed::<Unblock>(user_id, &()).await
    }

    /// The users I blocked.
    pub async fn blocked(&self) -> Result<Vec<BlockedUser>> {
        self.authed::<ListBlocks>((), &()).await
    }

    /// Reports a user I have a chat with.
    pub async fn report(&self, request: &ReportRequest) -> Result<Report> {
        self.authed::<FileReport>((), request).await
    }

    /// A valid access token, refreshed first when it is about to expire.
    pub async fn access_token(&self) -> Result<String> {
        let mut guard = self.inner.session.lock().await;
        let session = guard.as_ref().ok_or(Error::NotLoggedIn)?;
        if Instant::now() < session.refresh_at {
            return Ok(session.tokens.access_token.clone());
        }
        Ok(self.refresh_locked(&mut guard).await?.access_token)
    }

    /// Refreshes after the server refused `rejected` (unless another task already did).
    pub(crate) async fn refresh_after_rejection(&self, rejected: &str) -> Result<String> {
        let mut guard = self.inner.session.lock().await;
        let session = guard.as_ref().ok_or(Error::NotLoggedIn)?;
        if session.tokens.access_token != rejected {
            return Ok(session.tokens.access_token.clone());
        }
        Ok(self.refresh_locked(&mut guard).await?.access_token)
    }

    async fn refresh_locked(&self, guard: &mut Option<Session>) -> Result<TokenPair> {
        let session = guard.as_ref().ok_or(Error::NotLoggedIn)?;
        let request = RefreshRequest {
            refresh_token: session.tokens.refresh_token.clone(),
        };
        match self.anonymous::<Refresh>(&request).await {
            Ok(tokens) => {
                *guard = Some(Session::new(tokens.clone()));
                Ok(tokens)
            }
            Err(Error::Api { status, .. }) if status == StatusCode::UNAUTHORIZED => {
                *guard = None;
                Err(Error::SessionEnded)
            }
            Err(other) => Err(other),
        }
    }

    pub(crate) fn url(&self, path: &str) -> Result<Url> {
        self.inner
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| Error::Decode(format!("url: {e}")))
    }

    async fn anonymous<E: Endpoint<Path = ()>>(&self, request: &E::Request) -> Result<E::Response> {
        let response = self.send::<E>(&(), request, None).await?;
        decode(response).await
    }

    /// Calls `E` with the access token; on a 401 refreshes once and retries.
    async fn authed<E: Endpoint>(
        &self,
        path: E::Path,
        request: &E::Request,
    ) -> Result<E::Response> {
        let token = self.access_token().await?;
        let mut response = self.send::<E>(&path, request, Some(&token)).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let token = self.refresh_after_rejection(&token).await?;
            response = self.send::<E>(&path, request, Some(&token)).await?;
        }
        decode(response).await
    }

    async fn send<E: Endpoint>(
        &self,
        path: &E::Path,
        request: &E::Request,
        token: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut url = self.url(&path.render(E::ROUTE))?;
        let body = if E::request_in_query() {
            let query = serde_urlencoded::to_string(request)
                .map_err(|e| Error::Decode(format!("query: {e}")))?;
            url.set_query((!query.is_empty()).then_some(query.as_str()));
            None
        } else {
            let json = serde_json::to_vec(request).map_err(|e| Error::Decode(e.to_string()))?;
            // A request of `()` serialises to `null`: no body at all.
            (json != b"null").then_some(json)
        };
        let mut builder = self.inner.http.request(E::METHOD, url);
        if let Some(token) = token {
            builder = builder.bearer_auth(token);
        }
        if let Some(json) = body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json);
        }
        Ok(builder.send().await?)
    }
}

/// Turns an error status into [`Error::Api`].
async fn check(response: reqwest::Response) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let bytes = response.bytes().await?;
    let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| {
        let code = if status.is_server_error() {
            ErrorCode::Internal
        } else {
            ErrorCode::BadRequest
        };
        ErrorBody::new(
            code,
            format!("the server answered {status} without an error body"),
        )
    });
    Err(Error::Api {
        status,
        body,
        retry_after,
    })
}

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    let response = check(response).await?;
    let bytes = response.bytes().await?;
    // An empty body (204) decodes as `null`, which is what `()` expects.
    let bytes = if bytes.is_empty() {
        &b"null"[..]
    } else {
        &bytes[..]
    };
    serde_json::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))
}
