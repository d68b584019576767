//! The shared state of every handler, and building it from settings.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::FromRef;
use service_kit::auth::ServiceCredential;
use service_kit::client::{ClientError, ServiceClient};
use service_kit::limit::UserLimiter;
use service_kit::token::TokenVerifier;
use uuid::Uuid;
use wire::api::auth::{AuditEntry, RecordAudit};
use wire::api::message::Chat;

use crate::config::{MessageConfig, Settings};
use crate::store::commit::GroupCommitter;
use crate::store::memory::MemoryMessageStore;
use crate::store::mongo::MongoMessageStore;
use crate::store::sqlite::SqliteMessageStore;
use crate::store::{MessageStore, StoreError};

/// Opens the store named by `settings`: SQLite (the embedded default), this process's
/// memory (`sqlite::memory:`, lost on exit) or MongoDB. For
/// MongoDB it waits, retrying, until the server answers and the indexes exist, so that
/// the service can start before its backend.
pub async fn store_from_settings(settings: &Settings) -> anyhow::Result<Arc<dyn MessageStore>> {
    if settings.on_mongodb() {
        let store = MongoMessageStore::connect(&settings.database_url, &settings.mongodb_database)
            .await
            .context("configuring the MongoDB client")?
            .with_operation_timeout(Duration::from_secs(settings.mongodb_timeout_secs.max(1)));
        service_kit::telemetry::retry_until_ok("MongoDB indexes", || store.ensure_indexes()).await;
        Ok(Arc::new(store))
    } else if crate::store::sqlite::is_in_memory(&settings.database_url) {
        Ok(Arc::new(MemoryMessageStore::new()))
    } else {
        let store = SqliteMessageStore::open(&settings.database_url)
            .await
            .with_context(|| format!("opening {}", settings.database_url))?;
        Ok(Arc::new(store))
    }
}

/// Everything a handler needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn MessageStore>,
    /// Every append goes through it, so that concurrent ones share a commit.
    committer: GroupCommitter,
    verifier: TokenVerifier,
    credential: ServiceCredential,
    notifier: Option<ServiceClient>,
    /// auth-service, where operator actions go into the one audit log (`None`: logged only).
    auditor: Option<ServiceClient>,
    config: MessageConfig,
    /// Serialises the limit check and the insert of one reporter's reports (striped by
    /// reporter id), so that concurrent reports cannot all pass a limit of one.
    report_locks: Vec<tokio::sync::Mutex<()>>,
    /// Per-user limit on ending chats ("Next").
    ends: UserLimiter,
    /// Per-user limit on blocking.
    blocks: UserLimiter,
    /// Participants by chat, for the answers of appends: they are fixed when a chat is
    /// created, so an entry never goes stale. Bounded; least recently used first out.
    participants: moka::sync::Cache<Uuid, Arc<[Uuid]>>,
}

/// Chats whose participants [`AppState::participants`] keeps in memory.
const PARTICIPANTS_CACHED: u64 = 100_000;

/// Stripes of [`AppState::report_lock`].
const REPORT_LOCK_STRIPES: usize = 64;

impl AppState {
    /// Assembles the state and starts the append committer on `store` (so it must be
    /// called within a Tokio runtime). `notifier` calls ws-manager (`None`: chat ends are
    /// not pushed); in one process it may be `ServiceClient::in_process`.
    pub fn new(
        store: Arc<dyn MessageStore>,
        verifier: TokenVerifier,
        credential: ServiceCredential,
        notifier: Option<ServiceClient>,
        config: MessageConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                committer: GroupCommitter::spawn(store.clone(), config.append_batch_max),
                store,
                verifier,
                credential,
                notifier,
                auditor: None,
                ends: service_kit::limit::limiter(
                    config.ends_burst,
                    config.ends_refill,
                    config.shared_limits.as_deref(),
                    "chat-end",
                ),
                blocks: service_kit::limit::limiter(
                    config.blocks_burst,
                    config.blocks_refill,
                    config.shared_limits.as_deref(),
                    "block",
                ),
                config,
                report_locks: (0..REPORT_LOCK_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
                participants: moka::sync::Cache::new(PARTICIPANTS_CACHED),
            }),
        }
    }

    /// Builds the state of the standalone binary: the store, a verifier that loads (and
    /// keeps refreshing) auth-service's published keys, and ws-manager over HTTP.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let store = store_from_settings(settings).await?;
        let verifier = settings.common.token_verifier()?;
        let http = service_kit::client::default_http_client();
        let auth = ServiceClient::http("auth-service", http.clone(), &settings.auth_url, None);
        service_kit::jwks::spawn_refresh(
            verifier.clone(),
            auth.clone(),
            std::time::Duration::from_secs(settings.jwks_refresh_secs.max(1)),
        );
        let credential = settings.common.service_token.clone();
        let notifier = (!settings.ws_manager_url.trim().is_empty()).then(|| {
            ServiceClient::http(
                "ws-manager",
                http,
                &settings.ws_manager_url,
                Some(credential.clone()),
            )
        });
        let auditor = ServiceClient::http(
            "auth-service",
            service_kit::client::default_http_client(),
            &settings.auth_url,
            Some(settings.common.service_token.clone()),
        );
        Ok(Self::new(
            store,
            verifier,
            credential,
            notifier,
            settings.message_config(),
        )
        .with_auditor(auditor))
    }

    /// Sends operator actions to auth-service's audit log (`client` carries the service
    /// credential); without it they are only logged.
    pub fn with_auditor(mut self, client: ServiceClient) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.auditor = Some(client);
        }
        self
    }

    /// Records an operator action in the one audit log at auth-service (idempotent by
    /// entry id, so a retried action records it once).
    pub async fn audit(&self, entry: AuditEntry) -> Result<(), ClientError> {
        tracing::info!(
            operator = %entry.operator_id,
            action = %entry.action,
            target = %entry.target_id,
            "operator action"
        );
        match &self.inner.auditor {
            Some(auth) => auth.call::<RecordAudit>((), entry).await,
            None => Ok(()),
        }
    }

    /// The participants of chat `chat_id` (`None`: no such chat), from memory after the
    /// first time.
    pub async fn participants(&self, chat_id: Uuid) -> Result<Option<Arc<[Uuid]>>, StoreError> {
        if let Some(participants) = self.inner.participants.get(&chat_id) {
            return Ok(Some(participants));
        }
        let Some(chat) = self.store().chat(chat_id).await? else {
            return Ok(None);
        };
        let participants: Arc<[Uuid]> = chat.chat.participants.into();
        self.inner
            .participants
            .insert(chat_id, participants.clone());
        Ok(Some(participants))
    }

    /// The store.
    pub fn store(&self) -> &dyn MessageStore {
        self.inner.store.as_ref()
    }

    /// The append committer (group commit on the store).
    pub fn committer(&self) -> &GroupCommitter {
        &self.inner.committer
    }

    /// The behaviour settings.
    pub fn config(&self) -> &MessageConfig {
        &self.inner.config
    }

    /// The per-user limit on ending chats.
    pub fn end_limiter(&self) -> &UserLimiter {
        &self.inner.ends
    }

    /// The per-user limit on blocking.
    pub fn block_limiter(&self) -> &UserLimiter {
        &self.inner.blocks
    }

    /// Held while one reporter's report limit is checked and their report stored: it
    /// serialises them within this instance (with several instances, each one enforces
    /// the limit on what it sees; see docs/SECURITY.md).
    pub async fn report_lock(&self, reporter: Uuid) -> tokio::sync::MutexGuard<'_, ()> {
        let stripe = (reporter.as_u128() % REPORT_LOCK_STRIPES as u128) as usize;
        self.inner.report_locks[stripe].lock().await
    }

    /// Pushes `chat_ended` for `chat` to its participants in the background (best effort).
    pub fn notify_chat_ended(&self, chat: &Chat) {
        if let Some(notifier) = self.inner.notifier.clone() {
            let chat = chat.clone();
            tokio::spawn(async move { crate::notify::chat_ended(Some(&notifier), &chat).await });
        }
    }
}

impl FromRef<AppState> for TokenVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.inner.verifier.clone()
    }
}

impl FromRef<AppState> for ServiceCredential {
    fn from_ref(state: &AppState) -> Self {
        state.inner.credential.clone()
    }
}
