//! Where the desktop client keeps its files: the remembered session, readable by its owner only.

use std::io::Write;
use std::path::{Path, PathBuf};

use client_sdk::api::auth::TokenPair;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Environment variable naming the configuration directory (tests and scripts use a temporary one).
pub const CONFIG_DIR_ENV: &str = "RC_DESKTOP_CONFIG_DIR";

/// The server used when neither the flag, the environment nor the user says otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

const SESSION_FILE: &str = "session.json";

/// Why the configuration directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The system has no configuration directory for this user.
    #[error("no configuration directory was found for this user (set {CONFIG_DIR_ENV})")]
    NoConfigDir,
    /// Reading or writing a file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The saved session is not what this version writes.
    #[error("the saved session is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// What is remembered between runs: enough to get new tokens without the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSession {
    /// The gateway the session belongs to.
    pub server_url: String,
    /// The logged-in user.
    pub user_id: Uuid,
    /// The refresh session.
    pub session_id: Uuid,
    /// The current (single-use) refresh token.
    pub refresh_token: String,
    /// When the session ends at the latest.
    #[serde(with = "time::serde::rfc3339")]
    pub refresh_expires_at: OffsetDateTime,
}

impl std::fmt::Debug for SavedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedSession")
            .field("server_url", &self.server_url)
            .field("user_id", &self.user_id)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl SavedSession {
    /// The part of `tokens` worth remembering.
    pub fn from_tokens(server_url: &str, tokens: &TokenPair) -> Self {
        Self {
            server_url: server_url.to_owned(),
            user_id: tokens.user_id,
            session_id: tokens.session_id,
            refresh_token: tokens.refresh_token.clone(),
            refresh_expires_at: tokens.refresh_expires_at,
        }
    }

    /// Tokens for the SDK whose access token counts as expired, so that the first call
    /// refreshes it.
    pub fn to_tokens(&self) -> TokenPair {
        TokenPair {
            user_id: self.user_id,
            session_id: self.session_id,
            access_token: String::new(),
            token_type: "Bearer".to_owned(),
            expires_in: 0,
            refresh_token: self.refresh_token.clone(),
            refresh_expires_at: self.refresh_expires_at,
        }
    }
}

/// The client's configuration directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// A store in `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory named by [`CONFIG_DIR_ENV`], else the system's per-user one.
    pub fn from_env() -> Result<Self, StoreError> {
        if let Some(dir) = std::env::var_os(CONFIG_DIR_ENV).filter(|d| !d.is_empty()) {
            return Ok(Self::new(dir));
        }
        directories::ProjectDirs::from("org", "Random Chats", "random-chats-desktop")
            .map(|dirs| Self::new(dirs.config_dir()))
            .ok_or(StoreError::NoConfigDir)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding the remembered session.
    pub fn session_path(&self) -> PathBuf {
        self.dir.join(SESSION_FILE)
    }

    /// The remembered session, if any.
    pub fn load(&self) -> Result<Option<SavedSession>, StoreError> {
        match std::fs::read(self.session_path()) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Remembers a session, replacing the file atomically; only its owner may read it.
    pub fn save(&self, session: &SavedSession) -> Result<(), StoreError> {
        create_private_dir(&self.dir)?;
        let temporary = self.dir.join(format!("{SESSION_FILE}.tmp"));
        let _ = std::fs::remove_file(&temporary);
        let mut file = private_file(&temporary)?;
        file.write_all(&serde_json::to_vec_pretty(session)?)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, self.session_path())?;
        Ok(())
    }

    /// Forgets the session (log out); forgetting none is fine.
    pub fn delete(&self) -> Result<(), StoreError> {
        match std::fs::remove_file(self.session_path()) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rc-desktop-{name}-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn session() -> SavedSession {
        SavedSession {
            server_url: DEFAULT_SERVER.to_owned(),
            user_id: Uuid::new_v4(),
            session_id: Uuid::new_v4(),
            refresh_token: "secret-refresh-token".to_owned(),
            refresh_expires_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_saved_session_reads_back_and_deleting_it_forgets_it() {
        let dir = temp_dir("roundtrip");
        let store = Store::new(dir.join("nested"));
        assert_eq!(store.load().unwrap(), None);
        let saved = session();
        store.save(&saved).unwrap();
        assert_eq!(store.load().unwrap(), Some(saved.clone()));
        let mut rotated = saved;
        rotated.refresh_token = "rotated".to_owned();
        store.save(&rotated).unwrap();
        assert_eq!(store.load().unwrap(), Some(rotated));
        store.delete().unwrap();
        assert_eq!(store.load().unwrap(), None);
        store.delete().unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_session_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("mode");
        let store = Store::new(&dir);
        store.save(&session()).unwrap();
        let mode = std::fs::metadata(store.session_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_debug_form_never_shows_the_refresh_token() {
        assert!(!format!("{:?}", session()).contains("secret-refresh-token"));
    }
}
