//! Settings of the auth-service binary, from flags or `AUTH_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use service_kit::config::CommonArgs;

use crate::throttle::ThrottleConfig;

/// Where refresh sessions are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SessionsBackend {
    /// A SQLite file (by default the same one as the users, when those are in SQLite).
    Sqlite,
    /// A DynamoDB table.
    Dynamodb,
}

/// auth-service settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "auth-service",
    version,
    about = "Random Chats accounts, profiles and tokens"
)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "AUTH_LISTEN", default_value = "127.0.0.1:8081", value_parser = service_kit::config::parse_listen)]
    pub listen: SocketAddr,

    /// Users database: a `sqlite:` URL (embedded) or a `postgres://` URL.
    #[arg(
        long,
        env = "AUTH_DATABASE_URL",
        default_value = "sqlite://./data/auth.db?mode=rwc",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Most PostgreSQL connections in the pool.
    #[arg(long, env = "AUTH_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// Refresh-session backend.
    #[arg(long, env = "AUTH_SESSIONS_BACKEND", value_enum, default_value_t = SessionsBackend::Sqlite)]
    pub sessions_backend: SessionsBackend,

    /// SQLite URL of the refresh sessions (backend `sqlite`); default: the users database
    /// when that is SQLite, else `sqlite://./data/auth-sessions.db?mode=rwc`.
    #[arg(long, env = "AUTH_SESSIONS_SQLITE_URL")]
    pub sessions_sqlite_url: Option<String>,

    /// DynamoDB table of the refresh sessions (backend `dynamodb`); created if missing.
    #[arg(long, env = "AUTH_DYNAMODB_TABLE", default_value = "rc_auth_sessions")]
    pub dynamodb_table: String,

    /// DynamoDB endpoint URL, for a local server (e.g. `http://127.0.0.1:8000`); unset for
    /// AWS. Credentials come from the usual `AWS_*` variables.
    #[arg(long, env = "AUTH_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,

    /// DynamoDB region; unset to take it from `AWS_REGION` / the AWS profile.
    #[arg(long, env = "AUTH_DYNAMODB_REGION")]
    pub dynamodb_region: Option<String>,

    /// Time limit of one DynamoDB request attempt, in milliseconds.
    #[arg(long, env = "AUTH_DYNAMODB_TIMEOUT_MS", default_value_t = 2000)]
    pub dynamodb_timeout_ms: u64,

    /// The access-token signing key as a PKCS#8 PEM Ed25519 private key (takes precedence
    /// over the key file).
    #[arg(long, env = "AUTH_SIGNING_KEY_PEM", hide_env_values = true)]
    pub signing_key_pem: Option<SecretString>,

    /// File holding the signing key; generated (mode 0600) if missing.
    #[arg(
        long,
        env = "AUTH_SIGNING_KEY_FILE",
        default_value = "./data/auth-signing-key.pem"
    )]
    pub signing_key_file: PathBuf,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "AUTH_ACCESS_TOKEN_TTL_SECS", default_value_t = 15 * 60)]
    pub access_token_ttl_secs: u64,

    /// Absolute lifetime of a refresh session (whatever the refreshes), in seconds.
    #[arg(long, env = "AUTH_REFRESH_TOKEN_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub refresh_token_ttl_secs: u64,

    /// Seconds after a refresh during which the token it replaced, presented again (a
    /// retry after a lost answer, or a concurrent refresh), gets the same new token
    /// instead of ending the session as reuse; 0 turns the grace off.
    #[arg(long, env = "AUTH_REFRESH_GRACE_SECS", default_value_t = 30)]
    pub refresh_grace_secs: u64,

    /// Usernames of operators (comma-separated): their access tokens carry the `admin`
    /// role, which the moderation routes (on the gateway's operator listener) require.
    #[arg(long, env = "AUTH_ADMINS", value_delimiter = ',')]
    pub admins: Vec<String>,

    /// Base URL of matching-service, from whose queue a banned account is removed at once;
    /// empty to skip (a banned account's ticket then waits until its sockets close).
    #[arg(
        long,
        env = "AUTH_MATCHING_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    pub matching_url: String,

    /// Most log-in sessions one account keeps; a log in beyond ends the oldest.
    #[arg(long, env = "AUTH_MAX_SESSIONS", default_value_t = 20)]
    pub max_sessions: usize,

    /// Most password hashes computed at once; default: the number of CPUs.
    #[arg(long, env = "AUTH_ARGON2_CONCURRENCY")]
    pub argon2_concurrency: Option<usize>,

    /// Most password hashes queued behind the running ones; past it, requests are shed
    /// at once with 503 `overloaded`.
    #[arg(long, env = "AUTH_ARGON2_MAX_QUEUE", default_value_t = 64)]
    pub argon2_max_queue: usize,

    /// Sign-ups one client IP may make in a burst.
    #[arg(long, env = "AUTH_SIGNUP_BURST_PER_IP", default_value_t = 30)]
    pub signup_burst_per_ip: u32,

    /// Seconds after which one more sign-up is allowed to a client IP past its burst.
    #[arg(long, env = "AUTH_SIGNUP_REFILL_SECS", default_value_t = 10)]
    pub signup_refill_secs: u64,

    /// Sliding window in which failed log ins count, in seconds.
    #[arg(long, env = "AUTH_LOGIN_WINDOW_SECS", default_value_t = 15 * 60)]
    pub login_window_secs: u64,

    /// Failed log ins allowed per (account, client IP) in the window.
    #[arg(long, env = "AUTH_LOGIN_MAX_PER_PAIR", default_value_t = 5)]
    pub login_max_per_pair: u32,

    /// Failed log ins allowed per account from IPs that never logged in to it, in the window.
    #[arg(long, env = "AUTH_LOGIN_MAX_PER_ACCOUNT", default_value_t = 20)]
    pub login_max_per_account: u32,

    /// Failed log ins allowed per client IP (all accounts) in the window.
    #[arg(long, env = "AUTH_LOGIN_MAX_PER_IP", default_value_t = 100)]
    pub login_max_per_ip: u32,

    /// Longest lockout after the latest failed log in, in seconds.
    #[arg(long, env = "AUTH_LOGIN_MAX_LOCKOUT_SECS", default_value_t = 60)]
    pub login_max_lockout_secs: u64,

    /// Settings shared by every service.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The behaviour settings of a running service (everything but where things are stored).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Lifetime of access tokens.
    pub access_token_ttl: Duration,
    /// Absolute lifetime of refresh sessions.
    pub refresh_token_ttl: Duration,
    /// How long a just-replaced refresh token still yields its successor.
    pub refresh_grace: Duration,
    /// Most sessions per account (the oldest end beyond).
    pub max_sessions: usize,
    /// Usernames (lower-case) whose tokens carry the `admin` role.
    pub admins: Vec<String>,
    /// Most password hashes at once.
    pub argon2_concurrency: usize,
    /// Most password hashes queued behind those.
    pub argon2_max_queue: usize,
    /// Sign-ups one client IP may make in a burst.
    pub signup_burst_per_ip: u32,
    /// Time after which one more sign-up is allowed to a client IP past its burst.
    pub signup_refill: Duration,
    /// Login throttling limits.
    pub throttle: ThrottleConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_grace: Duration::from_secs(30),
            max_sessions: 20,
            admins: Vec::new(),
            argon2_concurrency: default_concurrency(),
            argon2_max_queue: 64,
            signup_burst_per_ip: 30,
            signup_refill: Duration::from_secs(10),
            throttle: ThrottleConfig::default(),
        }
    }
}

/// The number of CPUs (1 when unknown).
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Settings {
    /// The behaviour settings.
    pub fn auth_config(&self) -> AuthConfig {
        AuthConfig {
            access_token_ttl: Duration::from_secs(self.access_token_ttl_secs),
            refresh_token_ttl: Duration::from_secs(self.refresh_token_ttl_secs),
            refresh_grace: Duration::from_secs(self.refresh_grace_secs),
            max_sessions: self.max_sessions.max(1),
            admins: self
                .admins
                .iter()
                .map(|name| name.trim().to_lowercase())
                .filter(|name| !name.is_empty())
                .collect(),
            argon2_concurrency: self.argon2_concurrency.unwrap_or_else(default_concurrency),
            argon2_max_queue: self.argon2_max_queue,
            signup_burst_per_ip: self.signup_burst_per_ip,
            signup_refill: Duration::from_secs(self.signup_refill_secs.max(1)),
            throttle: ThrottleConfig {
                window: Duration::from_secs(self.login_window_secs),
                per_pair: self.login_max_per_pair,
                per_account: self.login_max_per_account,
                per_ip: self.login_max_per_ip,
                max_lockout: Duration::from_secs(self.login_max_lockout_secs),
                ..ThrottleConfig::default()
            },
        }
    }

    /// Whether the users database is PostgreSQL.
    pub fn users_on_postgres(&self) -> bool {
        self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://")
    }

    /// The SQLite URL for refresh sessions (backend `sqlite`).
    pub fn sessions_sqlite_url(&self) -> String {
        match &self.sessions_sqlite_url {
            Some(url) => url.clone(),
            None if !self.users_on_postgres() => self.database_url.clone(),
            None => "sqlite://./data/auth-sessions.db?mode=rwc".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_suit_the_embedded_form() {
        let settings =
            Settings::try_parse_from(["auth-service", "--service-token", "0123456789abcdef"])
                .unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8081");
        assert!(!settings.users_on_postgres());
        assert_eq!(settings.sessions_sqlite_url(), settings.database_url);
        assert_eq!(
            settings.auth_config().access_token_ttl,
            Duration::from_secs(900)
        );
    }

    #[test]
    fn a_postgres_url_keeps_sessions_in_their_own_sqlite_file() {
        let settings = Settings::try_parse_from([
            "auth-service",
            "--service-token",
            "0123456789abcdef",
            "--database-url",
            "postgres://localhost/auth",
        ])
        .unwrap();
        assert!(settings.users_on_postgres());
        assert!(settings.sessions_sqlite_url().contains("auth-sessions.db"));
    }
}
