//! The shared state of every handler, and building it from settings.

use std::sync::{Arc, OnceLock};

use anyhow::Context;
use axum::extract::FromRef;
use secrecy::ExposeSecret;
use service_kit::auth::ServiceCredential;
use service_kit::client::{ClientError, ServiceClient};
use service_kit::token::{SigningKeyPem, TokenSigner, TokenVerifier};

use uuid::Uuid;
use wire::api::matching::DropTicket;

use crate::config::{AuthConfig, SessionsBackend, Settings};
use crate::password::PasswordHasher;
use crate::store::dynamodb::{DynamoConfig, DynamoSessionStore};
use crate::store::postgres::{self, PgUserStore};
use crate::store::sqlite::{self, SqliteSessionStore, SqliteUserStore};
use crate::store::{SessionStore, UserStore};
use crate::throttle::{LoginThrottle, SignupLimiter};

/// The two stores of the service.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Accounts, profiles, preferences.
    pub users: Arc<dyn UserStore>,
    /// Refresh sessions.
    pub sessions: Arc<dyn SessionStore>,
}

impl Stores {
    /// Both stores in one SQLite database (the embedded form), e.g.
    /// `sqlite://./data/auth.db?mode=rwc` or `sqlite::memory:`.
    pub async fn sqlite(url: &str) -> anyhow::Result<Self> {
        let pool = sqlite::connect(url)
            .await
            .with_context(|| format!("opening {url}"))?;
        Ok(Self {
            users: Arc::new(SqliteUserStore::new(pool.clone())),
            sessions: Arc::new(SqliteSessionStore::new(pool)),
        })
    }

    /// The stores named by `settings`; waits (retrying) for PostgreSQL and DynamoDB to
    /// answer so that the service can start before its backends.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let users: Arc<dyn UserStore> = if settings.users_on_postgres() {
            let pool = postgres::pool(&settings.database_url, settings.database_max_connections)
                .context("configuring the PostgreSQL pool")?;
            service_kit::telemetry::retry_until_ok("PostgreSQL migrations", || {
                postgres::migrate(&pool)
            })
            .await;
            Arc::new(PgUserStore::new(pool))
        } else {
            let pool = sqlite::connect(&settings.database_url)
                .await
                .context("opening the users database")?;
            Arc::new(SqliteUserStore::new(pool))
        };
        let sessions: Arc<dyn SessionStore> = match settings.sessions_backend {
            SessionsBackend::Sqlite => {
                let url = settings.sessions_sqlite_url();
                let pool = sqlite::connect(&url)
                    .await
                    .with_context(|| format!("opening the sessions database {url}"))?;
                Arc::new(SqliteSessionStore::new(pool))
            }
            SessionsBackend::Dynamodb => {
                let store = DynamoSessionStore::connect(&DynamoConfig {
                    table: settings.dynamodb_table.clone(),
                    endpoint: settings.dynamodb_endpoint.clone(),
                    region: settings.dynamodb_region.clone(),
                    timeout: std::time::Duration::from_millis(settings.dynamodb_timeout_ms),
                })
                .await;
                service_kit::telemetry::retry_until_ok("DynamoDB sessions table", || {
                    store.ensure_table()
                })
                .await;
                Arc::new(store)
            }
        };
        Ok(Self { users, sessions })
    }
}

/// The signing key named by `settings`: `AUTH_SIGNING_KEY_PEM` if set, else the key file,
/// which is generated (mode 0600) when it does not exist.
pub fn load_signer(settings: &Settings) -> anyhow::Result<TokenSigner> {
    let issuer = &settings.common.token_issuer;
    let audience = &settings.common.token_audience;
    if let Some(pem) = &settings.signing_key_pem {
        return TokenSigner::from_pem(pem.expose_secret(), issuer, audience)
            .context("AUTH_SIGNING_KEY_PEM");
    }
    load_or_create_signer(&settings.signing_key_file, issuer, audience)
}

/// The signing key in the PEM file at `path`, generated (mode 0600) when the file does not
/// exist, so that tokens stay valid across restarts.
pub fn load_or_create_signer(
    path: &std::path::Path,
    issuer: &str,
    audience: &str,
) -> anyhow::Result<TokenSigner> {
    if !path.exists() {
        write_new_key(path)
            .with_context(|| format!("writing a new signing key to {}", path.display()))?;
        tracing::info!(path = %path.display(), "generated a new access-token signing key");
    }
    // A key others may read is refused rather than silently tightened: whoever loosened
    // it should know that it may have leaked.
    service_kit::fs::check_private_file(path)
        .with_context(|| format!("refusing the signing key {}", path.display()))?;
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    TokenSigner::from_pem(&pem, issuer, audience)
        .with_context(|| format!("signing key in {}", path.display()))
}

fn write_new_key(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        service_kit::fs::ensure_private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    // `create_new` so that two processes starting at once cannot overwrite each other's key.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(SigningKeyPem::generate().expose().as_bytes())?;
            file.sync_all()
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// Everything a handler needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    stores: Stores,
    signer: TokenSigner,
    verifier: TokenVerifier,
    credential: ServiceCredential,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    signups: SignupLimiter,
    config: AuthConfig,
    /// matching-service, to take a banned account out of the queue (set once, after
    /// both services exist).
    matching: OnceLock<ServiceClient>,
}

impl AppState {
    /// Assembles the state. `verifier` must trust `signer`'s key (e.g.
    /// `TokenVerifier::from_jwks(issuer, audience, &signer.jwks())`); in one process the
    /// same verifier may be shared with the other services.
    pub fn new(
        stores: Stores,
        signer: TokenSigner,
        verifier: TokenVerifier,
        credential: ServiceCredential,
        config: AuthConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                hasher: PasswordHasher::new(config.argon2_concurrency, config.argon2_max_queue),
                throttle: LoginThrottle::new(config.throttle.clone()),
                signups: SignupLimiter::new(config.signup_burst_per_ip, config.signup_refill),
                stores,
                signer,
                verifier,
                credential,
                config,
                matching: OnceLock::new(),
            }),
        }
    }

    /// Takes banned accounts out of the queue through `client` (matching-service, with
    /// the service credential). Only the first call has an effect.
    pub fn set_matching(&self, client: ServiceClient) {
        let _ = self.inner.matching.set(client);
    }

    /// Removes the user's ticket from the matching queue, if matching-service is known.
    pub async fn drop_from_queue(&self, user: Uuid) -> Result<(), ClientError> {
        match self.inner.matching.get() {
            Some(matching) => matching.call::<DropTicket>(user, ()).await,
            None => Ok(()),
        }
    }

    /// Builds the whole state from settings: stores, signing key, verifier.
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let signer = load_signer(settings)?;
        let verifier = TokenVerifier::from_jwks(
            &settings.common.token_issuer,
            &settings.common.token_audience,
            &signer.jwks(),
        )
        .map_err(|e| anyhow::anyhow!("loading our own public key: {e}"))?;
        match &settings.common.rc_redis_url {
            Some(url) => verifier.revocations().follow_redis(url)?,
            None => tracing::warn!(
                "RC_REDIS_URL is not set: sessions ended here stay usable in other processes until their access tokens expire"
            ),
        }
        let stores = Stores::from_settings(settings).await?;
        let state = Self::new(
            stores,
            signer,
            verifier,
            settings.common.service_token.clone(),
            settings.auth_config(),
        );
        if !settings.matching_url.trim().is_empty() {
            state.set_matching(ServiceClient::http(
                "matching-service",
                service_kit::client::default_http_client(),
                &settings.matching_url,
                Some(settings.common.service_token.clone()),
            ));
        }
        Ok(state)
    }

    /// The user store.
    pub fn users(&self) -> &dyn UserStore {
        self.inner.stores.users.as_ref()
    }

    /// The session store.
    pub fn sessions(&self) -> &dyn SessionStore {
        self.inner.stores.sessions.as_ref()
    }

    /// The access-token signer.
    pub fn signer(&self) -> &TokenSigner {
        &self.inner.signer
    }

    /// The access-token verifier.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.inner.verifier
    }

    /// The password hasher.
    pub fn hasher(&self) -> &PasswordHasher {
        &self.inner.hasher
    }

    /// The login throttle.
    pub fn throttle(&self) -> &LoginThrottle {
        &self.inner.throttle
    }

    /// The per-IP sign-up limit.
    pub fn signups(&self) -> &SignupLimiter {
        &self.inner.signups
    }

    /// The behaviour settings.
    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    /// Makes the access tokens of the ended `sessions` fail everywhere (every token check
    /// and open socket of the platform) until they would have expired anyway.
    pub async fn announce_ended(&self, sessions: &[uuid::Uuid]) {
        let forget_at = time::OffsetDateTime::now_utc().unix_timestamp()
            + self.inner.config.access_token_ttl.as_secs() as i64
            + service_kit::token::LEEWAY_SECS as i64;
        for session in sessions {
            self.inner
                .verifier
                .revocations()
                .announce(*session, forget_at)
                .await;
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

/// How often ended refresh sessions are deleted.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Spawns a task that deletes refresh sessions past their absolute lifetime every hour
/// (backends with native expiry do nothing).
pub fn spawn_purge(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PURGE_EVERY);
        loop {
            every.tick().await;
            state.signups().shrink();
            match state.sessions().purge_expired(crate::store::now()).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "deleted expired refresh sessions"),
                Err(err) => tracing::warn!(error = %err, "cannot delete expired refresh sessions"),
            }
        }
    })
}
