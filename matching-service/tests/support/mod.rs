//! Fixtures shared by the matching-service tests: an empty queue on each backend (memory,
//! and Redis when `REDIS_URL` is set) as handles for one or two instances, and in-process
//! stand-ins for the peers the matcher calls (auth-service, message-service, ws-manager).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use matching_service::store::conformance::secs;
use matching_service::store::memory::MemoryQueueStore;
use matching_service::store::redis::RedisQueueStore;
use matching_service::store::{QueueStore, SearchLimits};
use matching_service::{AppState, ManualClock, MatchingConfig, Peers};
use service_kit::auth::ServiceCredential;
use service_kit::client::ServiceClient;
use service_kit::error::{ApiError, ErrorCode};
use service_kit::token::TokenVerifier;
use test_support::{Cleanup, backend_url, unique_name};
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::auth::{MatchingProfile, Preferences, PublicProfile};
use wire::api::matching::MatchInfo;
use wire::api::message::{Chat, CreateChatRequest, EndChatRequest, UserBlocks};
use wire::api::wsmanager::{DeliverRequest, DeliverResponse};
use wire::domain::{Gender, MAX_AGE, MIN_AGE};
use wire::protocol::ServerFrame;

/// Handles on one empty queue for one case, and what removes it.
pub struct Queue {
    handles: Vec<Arc<dyn QueueStore>>,
    _cleanup: Cleanup,
}

impl Deref for Queue {
    type Target = [Arc<dyn QueueStore>];

    fn deref(&self) -> &Self::Target {
        &self.handles
    }
}

/// Two handles on one fresh memory queue (one instance, two callers).
pub async fn memory() -> Option<Queue> {
    let store: Arc<dyn QueueStore> = Arc::new(MemoryQueueStore::new());
    Some(Queue {
        handles: vec![Arc::clone(&store), store],
        _cleanup: Cleanup::none(),
    })
}

/// Two separately connected handles (two instances) on one fresh Redis queue, whose keys
/// are deleted afterwards, also when the case panics.
pub async fn redis() -> Option<Queue> {
    let url = backend_url("REDIS_URL")?;
    let prefix = unique_name("rc_match_conformance");
    let limits = SearchLimits::default();
    let connect = || RedisQueueStore::connect(&url, &prefix, limits);
    let one = connect().await.expect("connect to Redis");
    let two = connect().await.expect("connect to Redis");
    let (url, prefix) = (url.clone(), prefix.clone());
    Some(Queue {
        handles: vec![Arc::new(one), Arc::new(two)],
        _cleanup: Cleanup::new(async move {
            if let Ok(store) = RedisQueueStore::connect(&url, &prefix, limits).await {
                let _ = store.purge().await;
            }
        }),
    })
}

/// In-process auth-service, message-service and ws-manager for the matcher: profiles,
/// blocks, chats (creation can be made to fail), and the events delivered.
#[derive(Debug, Clone, Default)]
pub struct PeerStandIns {
    inner: Arc<Mutex<PeerData>>,
}

#[derive(Debug, Default)]
struct PeerData {
    profiles: HashMap<Uuid, MatchingProfile>,
    /// (blocker, blocked)
    blocks: HashSet<(Uuid, Uuid)>,
    chats: HashMap<Uuid, Chat>,
    fail_chats: bool,
    chat_attempts: usize,
    delivered: Vec<(Uuid, MatchInfo)>,
}

impl PeerStandIns {
    fn lock(&self) -> std::sync::MutexGuard<'_, PeerData> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The peers as in-process clients.
    pub fn peers(&self) -> Peers {
        let auth = Router::new()
            .route("/internal/users/{id}", get(peer_profile))
            .with_state(self.clone());
        let message = Router::new()
            .route("/internal/users/{id}/chats", get(peer_user_chats))
            .route("/internal/users/{id}/blocks", get(peer_blocks))
            .route("/internal/chats", post(peer_create_chat))
            .route("/internal/chats/{id}", get(peer_chat))
            .route("/internal/chats/{id}/end", post(peer_end_chat))
            .with_state(self.clone());
        let ws = Router::new()
            .route("/internal/deliver", post(peer_deliver))
            .with_state(self.clone());
        Peers {
            auth: ServiceClient::in_process("auth-service", auth, None),
            message: ServiceClient::in_process("message-service", message, None),
            ws_manager: ServiceClient::in_process("ws-manager", ws, None),
        }
    }

    /// Registers a user who accepts anyone by default.
    pub fn add_user(&self, gender: Gender, age: u8, interests: &[&str]) -> PublicProfile {
        let profile = PublicProfile {
            id: Uuid::new_v4(),
            display_name: format!("{}-{age}", gender.as_str()),
            gender,
            age,
            interests: interests.iter().map(|s| (*s).to_owned()).collect(),
        };
        let preferences = Preferences {
            genders: vec![],
            min_age: MIN_AGE,
            max_age: MAX_AGE,
            interests: vec![],
            ..Default::default()
        };
        self.lock().profiles.insert(
            profile.id,
            MatchingProfile {
                profile: profile.clone(),
                preferences,
            },
        );
        profile
    }

    /// `blocker` blocks `blocked`.
    pub fn block(&self, blocker: Uuid, blocked: Uuid) {
        self.lock().blocks.insert((blocker, blocked));
    }

    /// Makes chat creation fail (503) or succeed again.
    pub fn fail_chats(&self, fail: bool) {
        self.lock().fail_chats = fail;
    }

    /// Chat creations asked for so far.
    pub fn chat_attempts(&self) -> usize {
        self.lock().chat_attempts
    }

    /// `matched` events delivered to `user`.
    pub fn delivered_to(&self, user: Uuid) -> Vec<MatchInfo> {
        self.lock()
            .delivered
            .iter()
            .filter(|(u, _)| *u == user)
            .map(|(_, i)| i.clone())
            .collect()
    }

    /// Every chat created.
    pub fn chats(&self) -> Vec<Chat> {
        self.lock().chats.values().cloned().collect()
    }

    /// The user's chats not ended.
    pub fn live_chats_of(&self, user: Uuid) -> Vec<Chat> {
        self.lock()
            .chats
            .values()
            .filter(|c| c.ended_at.is_none() && c.participants.contains(&user))
            .cloned()
            .collect()
    }
}

async fn peer_profile(
    State(p): State<PeerStandIns>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<MatchingProfile>, ApiError> {
    p.lock()
        .profiles
        .get(&id)
        .cloned()
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("no such user"))
}

async fn peer_user_chats(
    State(p): State<PeerStandIns>,
    Path(id): Path<Uuid>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::Json<Vec<Chat>> {
    let active = q.get("active").is_some_and(|v| v == "true");
    axum::Json(
        p.lock()
            .chats
            .values()
            .filter(|c| c.participants.contains(&id) && (!active || c.ended_at.is_none()))
            .cloned()
            .collect(),
    )
}

async fn peer_blocks(
    State(p): State<PeerStandIns>,
    Path(id): Path<Uuid>,
) -> axum::Json<UserBlocks> {
    let data = p.lock();
    axum::Json(UserBlocks {
        blocked: data
            .blocks
            .iter()
            .filter(|(a, _)| *a == id)
            .map(|(_, b)| *b)
            .collect(),
        blocked_by: data
            .blocks
            .iter()
            .filter(|(_, b)| *b == id)
            .map(|(a, _)| *a)
            .collect(),
        reported_by: Vec::new(),
    })
}

async fn peer_create_chat(
    State(p): State<PeerStandIns>,
    axum::Json(req): axum::Json<CreateChatRequest>,
) -> Result<(StatusCode, axum::Json<Chat>), ApiError> {
    let mut data = p.lock();
    data.chat_attempts += 1;
    if data.fail_chats {
        return Err(ApiError::unavailable("chat storage is unavailable"));
    }
    let ids: Vec<Uuid> = req.participants.iter().map(|x| x.id).collect();
    if ids
        .iter()
        .any(|a| ids.iter().any(|b| data.blocks.contains(&(*a, *b))))
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Blocked,
            "the participants blocked each other",
        ));
    }
    if let Some(chat) = data.chats.values().find(|c| c.match_id == req.match_id) {
        return Ok((StatusCode::OK, axum::Json(chat.clone())));
    }
    let chat = Chat {
        id: Uuid::new_v4(),
        match_id: req.match_id,
        participants: ids,
        created_at: OffsetDateTime::now_utc(),
        ended_at: None,
        ended_by: None,
        last_seq: 0,
    };
    data.chats.insert(chat.id, chat.clone());
    Ok((StatusCode::CREATED, axum::Json(chat)))
}

async fn peer_chat(
    State(p): State<PeerStandIns>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Chat>, ApiError> {
    p.lock()
        .chats
        .get(&id)
        .cloned()
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("no such chat"))
}

async fn peer_end_chat(
    State(p): State<PeerStandIns>,
    Path(id): Path<Uuid>,
    axum::Json(req): axum::Json<EndChatRequest>,
) -> Result<axum::Json<Chat>, ApiError> {
    let mut data = p.lock();
    let chat = data
        .chats
        .get_mut(&id)
        .ok_or_else(|| ApiError::not_found("no such chat"))?;
    if chat.ended_at.is_none() {
        chat.ended_at = Some(OffsetDateTime::now_utc());
        chat.ended_by = Some(req.user_id);
    }
    Ok(axum::Json(chat.clone()))
}

async fn peer_deliver(
    State(p): State<PeerStandIns>,
    axum::Json(req): axum::Json<DeliverRequest>,
) -> axum::Json<DeliverResponse> {
    let mut data = p.lock();
    let mut routed = 0;
    if let ServerFrame::Matched { info } = req.event {
        for u in req.user_ids {
            data.delivered.push((u, info.clone()));
            routed += 1;
        }
    }
    axum::Json(DeliverResponse { routed })
}

pub const CREDENTIAL: &str = "conformance-service-credential-0123456789";

/// A matcher on `store` with the stand-in peers, reading `clock`.
pub fn matcher_on(
    store: Arc<dyn QueueStore>,
    peers: &PeerStandIns,
    clock: &ManualClock,
) -> AppState {
    let config = MatchingConfig {
        cooldown: secs(600),
        tick: Duration::from_millis(50),
        recheck: secs(30),
        claim_timeout: secs(30),
        sweep_batch: 256,
        sweep_concurrency: 8,
        ..MatchingConfig::default()
    };
    AppState::new(
        store,
        peers.peers(),
        TokenVerifier::new("random-chats", "random-chats"),
        ServiceCredential::new(CREDENTIAL),
        config,
    )
    .with_clock(clock.clock())
}
