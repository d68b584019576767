//! The store conformance suite on every backend: SQLite always, PostgreSQL when
//! `POSTGRES_URL` is set, DynamoDB when `DYNAMODB_URL` is set (each on a fresh database
//! or table, removed afterwards).

use std::time::Duration;

use auth_service::store::conformance;
use auth_service::store::dynamodb::{DynamoConfig, DynamoSessionStore};
use auth_service::store::postgres::{self, PgUserStore};
use auth_service::store::sqlite::{self, SqliteSessionStore, SqliteUserStore};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use test_support::{backend_url, unique_name};

#[tokio::test]
async fn sqlite_users_conform() {
    let dir = tempdir();
    let pool = sqlite::connect(&format!("sqlite://{}/auth.db?mode=rwc", dir.display()))
        .await
        .unwrap();
    conformance::users(&SqliteUserStore::new(pool)).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn sqlite_sessions_conform() {
    let dir = tempdir();
    let pool = sqlite::connect(&format!("sqlite://{}/auth.db?mode=rwc", dir.display()))
        .await
        .unwrap();
    conformance::sessions(&SqliteSessionStore::new(pool)).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn sqlite_in_memory_users_and_sessions_conform() {
    let pool = sqlite::connect("sqlite::memory:").await.unwrap();
    conformance::users(&SqliteUserStore::new(pool.clone())).await;
    conformance::sessions(&SqliteSessionStore::new(pool)).await;
}

#[tokio::test]
async fn postgres_users_conform() {
    let Some(url) = backend_url("POSTGRES_URL") else {
        return;
    };
    let db = TempPgDatabase::create(&url).await;
    let pool = postgres::pool(&db.url, 4).unwrap();
    postgres::migrate(&pool).await.unwrap();
    conformance::users(&PgUserStore::new(pool.clone())).await;
    pool.close().await;
    db.drop().await;
}

#[tokio::test]
async fn dynamodb_sessions_conform() {
    let Some(url) = backend_url("DYNAMODB_URL") else {
        return;
    };
    let store = DynamoSessionStore::connect(&DynamoConfig {
        table: unique_name("rc_auth_sessions"),
        endpoint: Some(url),
        region: Some("us-east-1".to_owned()),
        timeout: Duration::from_secs(5),
    })
    .await;
    store.ensure_table().await.unwrap();
    // Creating it again is a no-op.
    store.ensure_table().await.unwrap();
    conformance::sessions(&store).await;
    store.delete_table().await.unwrap();
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique_name("auth_store"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A PostgreSQL database made for one test.
struct TempPgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TempPgDatabase {
    async fn create(admin_url: &str) -> Self {
        let name = unique_name("auth_test");
        let mut admin = PgConnection::connect(admin_url).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let mut url = url::Url::parse(admin_url).unwrap();
        url.set_path(&name);
        Self {
            admin_url: admin_url.to_owned(),
            name,
            url: url.to_string(),
        }
    }

    async fn drop(self) {
        let mut admin = PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
}
