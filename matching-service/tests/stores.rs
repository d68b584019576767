//! Runs the conformance suite (`store::conformance`) on the memory store, and on Redis
//! when `REDIS_URL` is set (a unique key prefix per test, deleted afterwards).

use std::future::Future;
use std::sync::Arc;

use matching_service::store::memory::MemoryQueueStore;
use matching_service::store::redis::RedisQueueStore;
use matching_service::store::{QueueStore, SearchLimits, conformance};
use test_support::{backend_url, unique_name};

/// Two handles on one fresh memory queue (one instance, two callers).
fn on_memory() -> Vec<Arc<dyn QueueStore>> {
    let store: Arc<dyn QueueStore> = Arc::new(MemoryQueueStore::new());
    vec![Arc::clone(&store), store]
}

/// Runs `case` with two separately connected handles (two instances) on one fresh Redis
/// queue, then deletes its keys, whether the case passed or not.
async fn on_redis<F, Fut>(case: F)
where
    F: FnOnce(Vec<Arc<dyn QueueStore>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(url) = backend_url("REDIS_URL") else {
        return;
    };
    let prefix = unique_name("rc_match_conformance");
    let limits = SearchLimits::default();
    let one = RedisQueueStore::connect(&url, &prefix, limits)
        .await
        .expect("connect to Redis");
    let two = RedisQueueStore::connect(&url, &prefix, limits)
        .await
        .expect("connect to Redis");
    let outcome = tokio::spawn(case(vec![Arc::new(one.clone()), Arc::new(two)])).await;
    let purged = one.purge().await;
    if let Err(err) = outcome {
        match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(err) => panic!("the case did not finish: {err}"),
        }
    }
    purged.expect("delete the test keys");
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    conformance::$name(&on_memory()).await;
                }
            )*
        }
        mod redis {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    on_redis(|stores| async move { conformance::$name(&stores).await }).await;
                }
            )*
        }
    };
}

cases!(
    random_pairs_satisfy_both_sides,
    blocks_are_honoured_both_ways,
    a_ticket_blocking_thousands_joins_and_honours_every_block,
    cooldown_keeps_former_partners_apart,
    oldest_compatible_ticket_is_served_first,
    criteria_widen_with_waiting_time_and_never_beyond,
    one_ticket_per_user,
    leaving_is_immediate,
    released_and_stale_claims_come_back_with_their_waiting_time,
    instances_racing_never_double_pair,
    matcher_delivers_the_match_to_both,
    failed_chat_creation_puts_both_tickets_back,
    blocked_at_chat_creation_never_pairs_again,
    matchers_racing_never_double_pair,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_suite_runs_in_one_call_on_memory() {
    conformance::run_all(|| async { on_memory() }).await;
}

#[tokio::test]
async fn a_redis_queue_purges_only_its_own_keys() {
    let Some(url) = backend_url("REDIS_URL") else {
        return;
    };
    let mine =
        RedisQueueStore::connect(&url, &unique_name("rc_match_mine"), SearchLimits::default())
            .await
            .expect("connect");
    let other = RedisQueueStore::connect(
        &url,
        &unique_name("rc_match_other"),
        SearchLimits::default(),
    )
    .await
    .expect("connect");
    conformance::leaving_is_immediate(&[Arc::new(mine.clone()) as Arc<dyn QueueStore>]).await;
    conformance::leaving_is_immediate(&[Arc::new(other.clone()) as Arc<dyn QueueStore>]).await;
    assert!(mine.purge().await.expect("purge") > 0);
    assert_eq!(mine.purge().await.expect("purge"), 0, "all gone");
    assert!(
        other.purge().await.expect("purge") > 0,
        "the other queue was untouched"
    );
}
