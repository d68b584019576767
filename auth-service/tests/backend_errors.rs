//! Failed calls to the account backends are counted in `backend_errors_total` by backend
//! and kind; a taken username, an outcome the product expects, is not.

use auth_service::store::conformance::sample_user;
use auth_service::store::postgres::{self, PgUserStore};
use auth_service::store::sqlite::{self, SqliteUserStore};
use auth_service::store::{StoreError, UserStore};
use service_kit::telemetry::metrics_handle;
use test_support::metrics::metric_sum;

fn backend_errors(backend: &str, kind: &str) -> f64 {
    metric_sum(
        &metrics_handle().render(),
        "backend_errors_total",
        &[("backend", backend), ("kind", kind)],
    )
}

#[tokio::test]
async fn a_sqlite_failure_is_counted_and_a_taken_username_is_not() {
    metrics_handle();
    let pool = sqlite::connect("sqlite::memory:").await.unwrap();
    let store = SqliteUserStore::new(pool.clone());
    store.create_user(&sample_user("ann")).await.unwrap();
    let errors_before = backend_errors("sqlite", "error");

    let taken = store.create_user(&sample_user("ann")).await;
    assert!(matches!(taken, Err(StoreError::UsernameTaken)), "{taken:?}");
    assert_eq!(backend_errors("sqlite", "error"), errors_before);

    sqlx::query("DROP TABLE users")
        .execute(&pool)
        .await
        .unwrap();
    let broken = store.user_by_username("ann").await;
    assert!(matches!(broken, Err(StoreError::Backend(_))), "{broken:?}");
    assert_eq!(backend_errors("sqlite", "error"), errors_before + 1.0);
}

#[tokio::test]
async fn an_unreachable_postgres_is_counted_as_unavailable() {
    metrics_handle();
    // Port 1 on the loopback: nothing listens, so every connection is refused.
    let pool = postgres::pool("postgres://rc@127.0.0.1:1/rc", 1).unwrap();
    let store = PgUserStore::new(pool);
    let before = backend_errors("postgres", "unavailable");

    let refused = store.user_by_username("ann").await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert_eq!(backend_errors("postgres", "unavailable"), before + 1.0);
}
