//! Store fixtures shared by the store tests: a temporary SQLite directory and a fresh
//! MongoDB database per test.

pub mod controlled;
pub mod property;

use std::path::PathBuf;
use std::sync::Arc;

use message_service::store::MessageStore;
use message_service::store::mongo::MongoMessageStore;
use message_service::store::sqlite::SqliteMessageStore;
use test_support::{backend_url, unique_name};

/// A directory of its own under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<tmp>/<prefix>_<random>`.
    pub fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    /// A SQLite store on the file `messages.db` in this directory (created by the first
    /// call; later calls open it again, as another process would).
    pub async fn sqlite_store(&self) -> Arc<dyn MessageStore> {
        Arc::new(
            SqliteMessageStore::open(&self.sqlite_url())
                .await
                .expect("open SQLite"),
        )
    }

    /// The URL of the file `messages.db` in this directory.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}/messages.db?mode=rwc", self.0.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A MongoDB store on a database of its own; call [`MongoDb::drop`] at the end.
pub struct MongoDb {
    pub store: MongoMessageStore,
    url: String,
    name: String,
}

impl MongoDb {
    /// A fresh database with its indexes, or `None` (the test skips) when `MONGODB_URL`
    /// is unset.
    pub async fn create() -> Option<Self> {
        let url = backend_url("MONGODB_URL")?;
        let name = unique_name("rc_msg_test");
        let store = MongoMessageStore::connect(&url, &name)
            .await
            .expect("MongoDB client");
        store.ensure_indexes().await.expect("create indexes");
        Some(Self { store, url, name })
    }

    /// Another client on the same database, as another service instance would hold.
    pub async fn another_instance(&self) -> Arc<dyn MessageStore> {
        Arc::new(
            MongoMessageStore::connect(&self.url, &self.name)
                .await
                .expect("MongoDB client"),
        )
    }

    /// The store behind the trait.
    pub fn arc(&self) -> Arc<dyn MessageStore> {
        Arc::new(self.store.clone())
    }

    /// A guard that drops the database when dropped itself (also after a panic).
    pub fn cleanup(&self) -> test_support::Cleanup {
        let (url, name) = (self.url.clone(), self.name.clone());
        test_support::Cleanup::new(async move {
            if let Ok(store) = MongoMessageStore::connect(&url, &name).await {
                let _ = store.drop_database().await;
            }
        })
    }

    /// Drops the database.
    pub async fn drop(self) {
        self.store.drop_database().await.expect("drop database");
    }
}
