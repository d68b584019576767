//! The queue conformance suite (`store::conformance`) on the memory store, and on Redis
//! when `REDIS_URL` is set, one test per case and backend (a unique key prefix per case,
//! deleted afterwards).

mod support;

use std::sync::Arc;

use matching_service::store::redis::RedisQueueStore;
use matching_service::store::{QueueStore, SearchLimits, conformance};
use test_support::{backend_url, unique_name};

test_support::conformance! {
    cases: conformance,
    backends: { memory => support::memory(), redis => support::redis() },
    tests: [
        random_pairs_satisfy_both_sides,
        blocks_are_honoured_both_ways,
        low_standing_waits_its_hold_and_meets_only_its_own,
        a_ticket_blocking_thousands_joins_and_honours_every_block,
        cooldown_keeps_former_partners_apart,
        oldest_compatible_ticket_is_served_first,
        criteria_widen_with_waiting_time_and_never_beyond,
        one_ticket_per_user,
        leaving_is_immediate,
        released_and_stale_claims_come_back_with_their_waiting_time,
        instances_racing_never_double_pair,
    ],
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
