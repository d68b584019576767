//! The store conformance suite on every backend, one test per case and backend: SQLite
//! always (a file and in memory), PostgreSQL when `POSTGRES_URL` is set, DynamoDB when
//! `DYNAMODB_URL` is set (each case on a fresh database or table, removed afterwards, also
//! when the case panics).

use std::ops::Deref;
use std::time::Duration;

use auth_service::store::conformance;
use auth_service::store::dynamodb::{DynamoConfig, DynamoSessionStore};
use auth_service::store::postgres::{self, PgUserStore};
use auth_service::store::sqlite::{self, SqliteSessionStore, SqliteUserStore};
use auth_service::store::{SessionStore, UserStore};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use test_support::{Cleanup, backend_url, unique_name};

/// An empty user store for one case, and what removes it.
struct Users {
    store: Box<dyn UserStore>,
    _cleanup: Cleanup,
}

impl Deref for Users {
    type Target = dyn UserStore;

    fn deref(&self) -> &Self::Target {
        self.store.as_ref()
    }
}

/// An empty session store for one case, and what removes it.
struct Sessions {
    store: Box<dyn SessionStore>,
    _cleanup: Cleanup,
}

impl Deref for Sessions {
    type Target = dyn SessionStore;

    fn deref(&self) -> &Self::Target {
        self.store.as_ref()
    }
}

/// A SQLite file in a directory of its own, removed afterwards.
async fn sqlite_file() -> (sqlx::SqlitePool, Cleanup) {
    let dir = tempdir();
    let pool = sqlite::connect(&format!("sqlite://{}/auth.db?mode=rwc", dir.display()))
        .await
        .unwrap();
    let cleanup = Cleanup::new(async move {
        let _ = std::fs::remove_dir_all(dir);
    });
    (pool, cleanup)
}

async fn sqlite_users() -> Option<Users> {
    let (pool, cleanup) = sqlite_file().await;
    Some(Users {
        store: Box::new(SqliteUserStore::new(pool)),
        _cleanup: cleanup,
    })
}

async fn sqlite_memory_users() -> Option<Users> {
    let pool = sqlite::connect("sqlite::memory:").await.unwrap();
    Some(Users {
        store: Box::new(SqliteUserStore::new(pool)),
        _cleanup: Cleanup::none(),
    })
}

async fn postgres_users() -> Option<Users> {
    let url = backend_url("POSTGRES_URL")?;
    let db = TempPgDatabase::create(&url).await;
    let pool = postgres::pool(&db.url, 4).unwrap();
    postgres::migrate(&pool).await.unwrap();
    Some(Users {
        store: Box::new(PgUserStore::new(pool)),
        _cleanup: Cleanup::new(db.drop()),
    })
}

async fn sqlite_sessions() -> Option<Sessions> {
    let (pool, cleanup) = sqlite_file().await;
    Some(Sessions {
        store: Box::new(SqliteSessionStore::new(pool)),
        _cleanup: cleanup,
    })
}

async fn sqlite_memory_sessions() -> Option<Sessions> {
    let pool = sqlite::connect("sqlite::memory:").await.unwrap();
    Some(Sessions {
        store: Box::new(SqliteSessionStore::new(pool)),
        _cleanup: Cleanup::none(),
    })
}

fn dynamo_config(url: String, table: String) -> DynamoConfig {
    DynamoConfig {
        table,
        endpoint: Some(url),
        region: Some("us-east-1".to_owned()),
        timeout: Duration::from_secs(5),
    }
}

async fn dynamodb_sessions() -> Option<Sessions> {
    let url = backend_url("DYNAMODB_URL")?;
    let table = unique_name("rc_auth_sessions");
    let store = DynamoSessionStore::connect(&dynamo_config(url.clone(), table.clone())).await;
    store.ensure_table().await.unwrap();
    // Creating it again is a no-op.
    store.ensure_table().await.unwrap();
    Some(Sessions {
        store: Box::new(store),
        _cleanup: Cleanup::new(async move {
            let store = DynamoSessionStore::connect(&dynamo_config(url, table)).await;
            let _ = store.delete_table().await;
        }),
    })
}

test_support::conformance! {
    cases: conformance,
    backends: {
        sqlite_file_users => sqlite_users(),
        sqlite_in_memory_users => sqlite_memory_users(),
        postgres_users => postgres_users(),
    },
    tests: [
        the_user_store_answers,
        a_created_user_reads_back_by_id_and_username,
        a_taken_username_is_refused,
        unknown_users_are_none,
        a_profile_update_changes_only_given_fields,
        preferences_and_password_hash_are_replaced,
        bans_and_the_audit_log_read_back,
    ],
}

test_support::conformance! {
    cases: conformance,
    backends: {
        sqlite_file_sessions => sqlite_sessions(),
        sqlite_in_memory_sessions => sqlite_memory_sessions(),
        dynamodb_sessions => dynamodb_sessions(),
    },
    tests: [
        the_session_store_answers,
        a_created_session_is_found_by_its_token,
        a_rotation_makes_the_old_token_non_current,
        of_two_concurrent_rotations_exactly_one_wins,
        a_revoked_session_cannot_rotate_and_is_not_listed,
        revoking_all_keeps_the_given_session_and_other_users,
        an_expired_session_is_inactive,
    ],
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
