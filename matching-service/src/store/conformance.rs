//! The one conformance suite every [`QueueStore`] must pass, on the store alone and through
//! the matcher with in-process peers; `tests/stores.rs` runs it on memory and on Redis.
//!
//! Every case takes handles on one *empty* queue. Several handles play several
//! matching-service instances sharing the backend (the memory store passes the same
//! handle more than once). Time is passed explicitly (or read from a [`ManualClock`]), so
//! widening and cooldowns are exercised without sleeping.

use service_kit::error::ErrorCode;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use service_kit::auth::ServiceCredential;
use service_kit::client::ServiceClient;
use service_kit::error::ApiError;
use service_kit::token::TokenVerifier;
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::auth::{MatchingProfile, Preferences, PublicProfile};
use wire::api::matching::{InterestMode, JoinQueueRequest, MatchInfo, QueueState};
use wire::api::message::{Chat, CreateChatRequest, EndChatRequest, UserBlocks};
use wire::api::wsmanager::{DeliverRequest, DeliverResponse};
use wire::domain::{Gender, MAX_AGE, MIN_AGE};
use wire::protocol::ServerFrame;

use super::{Claim, Confirmation, QueueStore, TicketState};
use crate::config::MatchingConfig;
use crate::matcher;
use crate::rules::{Criteria, Ticket, from_millis, millis, relaxed, shared_interests};
use crate::state::{AppState, ManualClock, Peers};

/// Handles on one empty queue.
pub type Handles = [Arc<dyn QueueStore>];

/// Runs every case, each on a fresh queue from `fresh`.
pub async fn run_all<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Vec<Arc<dyn QueueStore>>>,
{
    random_pairs_satisfy_both_sides(&fresh().await).await;
    blocks_are_honoured_both_ways(&fresh().await).await;
    a_ticket_blocking_thousands_joins_and_honours_every_block(&fresh().await).await;
    cooldown_keeps_former_partners_apart(&fresh().await).await;
    oldest_compatible_ticket_is_served_first(&fresh().await).await;
    criteria_widen_with_waiting_time_and_never_beyond(&fresh().await).await;
    one_ticket_per_user(&fresh().await).await;
    leaving_is_immediate(&fresh().await).await;
    released_and_stale_claims_come_back_with_their_waiting_time(&fresh().await).await;
    instances_racing_never_double_pair(&fresh().await).await;
    matcher_delivers_the_match_to_both(&fresh().await).await;
    failed_chat_creation_puts_both_tickets_back(&fresh().await).await;
    blocked_at_chat_creation_never_pairs_again(&fresh().await).await;
    matchers_racing_never_double_pair(&fresh().await).await;
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A small seeded generator (SplitMix64): reproducible random tickets without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Shuffles `items` in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    /// A random uuid (reproducible from the seed).
    pub fn uuid(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(
            (u128::from(self.next_u64()) << 64 | u128::from(self.next_u64())).to_be_bytes(),
        )
        .into_uuid()
    }
}

/// A fixed start instant, far from the real clock.
fn t0() -> OffsetDateTime {
    from_millis(1_800_000_000_000)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn at(base: OffsetDateTime, ms: i64) -> OffsetDateTime {
    from_millis(millis(base) + ms)
}

/// A ticket of a user of `gender` and `age` who accepts anyone, joined at `t0()`.
fn person(gender: Gender, age: u8) -> Ticket {
    Ticket {
        profile: PublicProfile {
            id: Uuid::new_v4(),
            display_name: format!("{}-{age}", gender.as_str()),
            gender,
            age,
            interests: vec![],
        },
        criteria: Criteria {
            genders: vec![],
            min_age: MIN_AGE,
            max_age: MAX_AGE,
            interests: vec![],
            interest_mode: InterestMode::Preferred,
            age_widen_years: 0,
            widen_every_secs: 10,
            fallback_after_secs: None,
        },
        blocked: vec![],
        joined_at: t0(),
    }
}

fn wanting(mut t: Ticket, genders: &[Gender], min_age: u8, max_age: u8) -> Ticket {
    t.criteria.genders = genders.to_vec();
    t.criteria.min_age = min_age;
    t.criteria.max_age = max_age;
    t
}

fn liking(mut t: Ticket, interests: &[&str], mode: InterestMode) -> Ticket {
    let tags: Vec<String> = interests.iter().map(|s| (*s).to_owned()).collect();
    t.profile.interests = tags.clone();
    t.criteria.interests = tags;
    t.criteria.interest_mode = mode;
    t
}

fn joined(mut t: Ticket, when: OffsetDateTime) -> Ticket {
    t.joined_at = when;
    t
}

fn info_for(claim: &Claim, seeker_side: bool, now: OffsetDateTime) -> MatchInfo {
    let (me, other) = if seeker_side {
        (&claim.seeker, &claim.partner)
    } else {
        (&claim.partner, &claim.seeker)
    };
    MatchInfo {
        match_id: claim.match_id,
        chat_id: claim.match_id,
        partner: other.profile.clone(),
        shared_interests: shared_interests(me, other),
        relaxed: relaxed(me, other, now),
        matched_at: now,
    }
}

async fn join(store: &dyn QueueStore, t: &Ticket, now: OffsetDateTime) -> Ticket {
    store.join(t.clone(), now).await.expect("join")
}

async fn claim(store: &dyn QueueStore, user: Uuid, now: OffsetDateTime) -> Option<Claim> {
    store
        .claim(user, Uuid::now_v7(), now, secs(30))
        .await
        .expect("claim")
}

async fn confirm(store: &dyn QueueStore, c: &Claim, cooldown: Duration, now: OffsetDateTime) {
    let answer = store
        .confirm(
            c,
            &info_for(c, true, now),
            &info_for(c, false, now),
            cooldown,
            now,
        )
        .await
        .expect("confirm");
    assert_eq!(answer, Confirmation::Confirmed, "both were still claimed");
}

fn pair_of(c: &Claim) -> (Uuid, Uuid) {
    (c.seeker.user_id(), c.partner.user_id())
}

async fn state_of(store: &dyn QueueStore, user: Uuid) -> Option<(OffsetDateTime, TicketState)> {
    store
        .ticket(user)
        .await
        .expect("ticket")
        .map(|(t, s)| (t.joined_at, s))
}

// ---------------------------------------------------------------------------------------
// The rule, written out independently of `rules.rs`: the oracle of the random tests.
// ---------------------------------------------------------------------------------------

fn waited_secs(t: &Ticket, now: OffsetDateTime) -> i64 {
    (millis(now) - millis(t.joined_at)).max(0) / 1000
}

/// The age range `t` accepts at `now`: widened one year per step, never beyond what
/// the ticket allowed, never outside 18..=120.
fn oracle_range(t: &Ticket, now: OffsetDateTime) -> (i64, i64) {
    let c = &t.criteria;
    let steps = waited_secs(t, now) / i64::from(c.widen_every_secs.max(1));
    let w = steps.min(i64::from(c.age_widen_years));
    let lo = (i64::from(c.min_age) - w).max(i64::from(MIN_AGE));
    let hi = (i64::from(c.max_age) + w).min(i64::from(MAX_AGE));
    assert!(lo >= i64::from(c.min_age) - i64::from(c.age_widen_years));
    assert!(hi <= i64::from(c.max_age) + i64::from(c.age_widen_years));
    (lo, hi)
}

fn oracle_requires_interests(t: &Ticket, now: OffsetDateTime) -> bool {
    t.criteria.interest_mode == InterestMode::Required
        && t.criteria
            .fallback_after_secs
            .is_none_or(|f| waited_secs(t, now) < i64::from(f))
}

fn oracle_shared(a: &Ticket, b: &Ticket) -> usize {
    let theirs: HashSet<&String> = b.criteria.interests.iter().collect();
    a.criteria
        .interests
        .iter()
        .filter(|i| theirs.contains(i))
        .count()
}

fn oracle_one_side(a: &Ticket, b: &Ticket, shared: usize, now: OffsetDateTime) -> bool {
    let (lo, hi) = oracle_range(a, now);
    let age = i64::from(b.profile.age);
    (a.criteria.genders.is_empty() || a.criteria.genders.contains(&b.profile.gender))
        && lo <= age
        && age <= hi
        && (!oracle_requires_interests(a, now) || shared > 0)
        && !a.blocked.contains(&b.user_id())
}

/// Whether `a` and `b` may be paired at `now` given the pairs in cooldown.
fn oracle_pairable(
    a: &Ticket,
    b: &Ticket,
    now: OffsetDateTime,
    cooling: &HashMap<(Uuid, Uuid), i64>,
) -> Option<usize> {
    if a.user_id() == b.user_id() {
        return None;
    }
    if cooling
        .get(&(a.user_id(), b.user_id()))
        .is_some_and(|until| *until > millis(now))
    {
        return None;
    }
    let shared = oracle_shared(a, b);
    (oracle_one_side(a, b, shared, now) && oracle_one_side(b, a, shared, now)).then_some(shared)
}

/// The partner the rule says `seeker` gets among `waiting` (exhaustive search): the most
/// shared interests (when interests count for the seeker), then the longest wait.
fn oracle_best<'a>(
    seeker: &Ticket,
    waiting: impl Iterator<Item = &'a Ticket>,
    now: OffsetDateTime,
    cooling: &HashMap<(Uuid, Uuid), i64>,
) -> Option<Uuid> {
    let ranks_interests = seeker.criteria.interest_mode != InterestMode::Ignored;
    let mut best: Option<(usize, i64, Uuid)> = None;
    for cand in waiting {
        let Some(shared) = oracle_pairable(seeker, cand, now, cooling) else {
            continue;
        };
        let rank = if ranks_interests { shared } else { 0 };
        let joined = millis(cand.joined_at);
        if best.is_none_or(|(r, j, _)| rank > r || (rank == r && joined < j)) {
            best = Some((rank, joined, cand.user_id()));
        }
    }
    best.map(|(_, _, u)| u)
}

// ---------------------------------------------------------------------------------------
// The store alone
// ---------------------------------------------------------------------------------------

const TAGS: [&str; 6] = ["chess", "films", "hiking", "music", "rust", "travel"];

fn random_ticket(rng: &mut Rng, joined_at: OffsetDateTime) -> Ticket {
    let gender = Gender::ALL[rng.below(3) as usize];
    let age = MIN_AGE + rng.below(33) as u8;
    let mut t = person(gender, age);
    t.profile.id = rng.uuid();
    let genders = match rng.below(10) {
        0..=4 => vec![],
        5..=7 => vec![Gender::ALL[rng.below(3) as usize]],
        _ => {
            let skip = rng.below(3) as usize;
            (0..3)
                .filter(|i| *i != skip)
                .map(|i| Gender::ALL[i])
                .collect()
        }
    };
    let min_age = MIN_AGE + rng.below(20) as u8;
    let max_age = min_age + 5 + rng.below(30) as u8;
    t = wanting(t, &genders, min_age, max_age);
    let mut tags: Vec<&str> = TAGS.to_vec();
    rng.shuffle(&mut tags);
    let n = rng.below(4) as usize;
    let mode = match rng.below(3) {
        0 => InterestMode::Required,
        1 => InterestMode::Preferred,
        _ => InterestMode::Ignored,
    };
    let n = if mode == InterestMode::Required {
        n.max(1)
    } else {
        n
    };
    t = liking(t, &tags[..n], mode);
    t.criteria.age_widen_years = rng.below(7) as u8;
    t.criteria.widen_every_secs = 1 + rng.below(20) as u32;
    t.criteria.fallback_after_secs = rng.chance(50).then(|| rng.below(40) as u32);
    joined(t, joined_at)
}

/// Property: over many random queues (seeded), every pair a claim produces satisfies both
/// users' constraints as widened at that moment (genders both ways, ages both ways,
/// required interests, blocks either way, cooldown), and it is the partner the rule ranks
/// first (most shared interests, then the longest wait); a claim finds nobody only when
/// the rule allows nobody. Released pairs come back whole; confirmed pairs rejoin and
/// must wait out their cooldown.
pub async fn random_pairs_satisfy_both_sides(stores: &Handles) {
    let store = stores[0].as_ref();
    let cooldown = secs(60);
    let mut rng = Rng::new(0x5EED_0001);
    let (mut pairs, mut empty, mut relaxed_pairs) = (0usize, 0usize, 0usize);
    let mut now = t0();
    for round in 0..300 {
        now = at(now, 3_600_000);
        let n = 2 + rng.below(7) as usize; // within the default scan limits: exhaustive
        let mut all: Vec<Ticket> = (0..n)
            .map(|i| {
                let back = 1000 * (i as i64 + 1) + rng.below(500) as i64;
                random_ticket(&mut rng, at(now, -back))
            })
            .collect();
        for i in 0..n {
            for j in 0..n {
                if i != j && rng.chance(8) {
                    let b = all[j].user_id();
                    all[i].blocked.push(b);
                }
            }
        }
        let mut waiting: HashMap<Uuid, Ticket> = HashMap::new();
        for t in &all {
            let stored = join(store, t, now).await;
            assert_eq!(&stored, t, "round {round}: the ticket is stored as given");
            waiting.insert(t.user_id(), t.clone());
        }
        let mut cooling: HashMap<(Uuid, Uuid), i64> = HashMap::new();
        let mut rejoins = 0i64;
        for _step in 0..6 {
            now = at(now, 1000 * rng.below(15) as i64);
            let mut order: Vec<Uuid> = waiting.keys().copied().collect();
            order.sort();
            rng.shuffle(&mut order);
            for user in order {
                let Some(seeker) = waiting.get(&user).cloned() else {
                    continue;
                };
                let expected = oracle_best(&seeker, waiting.values(), now, &cooling);
                let got = claim(store, user, now).await;
                let c = match (got, expected) {
                    (None, None) => {
                        empty += 1;
                        continue;
                    }
                    (None, Some(e)) => panic!(
                        "round {round}: {user} found nobody although {e} fits at {now}: \
                         {seeker:?} / {:?}",
                        waiting[&e]
                    ),
                    (Some(c), None) => panic!(
                        "round {round}: {user} was paired with {} although the rule allows \
                         nobody at {now}: {seeker:?} / {:?}",
                        c.partner.user_id(),
                        c.partner
                    ),
                    (Some(c), Some(e)) => {
                        let p = c.partner.user_id();
                        assert_eq!(c.seeker, seeker, "round {round}: the seeker's own ticket");
                        let partner = waiting
                            .get(&p)
                            .unwrap_or_else(|| panic!("round {round}: {p} was not waiting"));
                        assert_eq!(&c.partner, partner, "round {round}: the partner's ticket");
                        assert!(
                            oracle_pairable(&seeker, partner, now, &cooling).is_some(),
                            "round {round}: {seeker:?} and {partner:?} violate a constraint"
                        );
                        assert_eq!(
                            p, e,
                            "round {round}: {user} got {p}, the rule ranks {e} first at {now}"
                        );
                        assert_eq!(c.shared, oracle_shared(&seeker, partner));
                        c
                    }
                };
                let (a, b) = pair_of(&c);
                for u in [a, b] {
                    assert_eq!(
                        state_of(store, u).await.map(|s| s.1),
                        Some(TicketState::Claimed)
                    );
                }
                if !relaxed(&c.seeker, &c.partner, now).is_empty()
                    || !relaxed(&c.partner, &c.seeker, now).is_empty()
                {
                    relaxed_pairs += 1;
                }
                if rng.chance(80) {
                    confirm(store, &c, cooldown, now).await;
                    pairs += 1;
                    let until = millis(now) + cooldown.as_millis() as i64;
                    cooling.insert((a, b), until);
                    cooling.insert((b, a), until);
                    for u in [a, b] {
                        let mut t = waiting.remove(&u).expect("was waiting");
                        assert_eq!(state_of(store, u).await, None, "a matched ticket leaves");
                        if rng.chance(50) {
                            rejoins += 1;
                            t.joined_at = at(now, -rejoins);
                            join(store, &t, now).await;
                            waiting.insert(u, t);
                        }
                    }
                } else {
                    let mut back = store.release(&c, false, now).await.expect("release");
                    back.sort();
                    let mut both = vec![a, b];
                    both.sort();
                    assert_eq!(back, both, "round {round}: both go back");
                    for u in [a, b] {
                        assert_eq!(
                            state_of(store, u).await,
                            Some((waiting[&u].joined_at, TicketState::Waiting)),
                            "round {round}: back with the original waiting time"
                        );
                    }
                }
            }
        }
        assert_eq!(
            store.waiting_count().await.expect("count"),
            waiting.len() as u64
        );
        for user in waiting.keys() {
            assert!(store.leave(*user).await.expect("leave"));
        }
        assert_eq!(store.waiting_count().await.expect("count"), 0);
    }
    assert!(
        pairs > 250 && empty > 1000 && relaxed_pairs > 60,
        "the random mix must exercise matches ({pairs}), misses ({empty}) and widening \
         ({relaxed_pairs})"
    );
}

/// A ticket may carry a very long block list (a long-standing user, or blocks in both
/// directions): it joins, and every one of its blocks is honoured.
pub async fn a_ticket_blocking_thousands_joins_and_honours_every_block(stores: &Handles) {
    let store = stores[0].as_ref();
    let now = at(t0(), 5000);
    let b = joined(person(Gender::Female, 30), at(t0(), 1000));
    let mut rng = Rng::new(7);
    let mut a = person(Gender::Male, 30);
    a.blocked = (0..20_000).map(|_| rng.uuid()).collect();
    a.blocked.push(b.user_id());
    join(store, &b, now).await;
    join(store, &a, now).await;
    assert!(
        claim(store, a.user_id(), now).await.is_none(),
        "a blocked b, the last of 20,001 blocks"
    );
    let c = joined(person(Gender::Other, 30), at(t0(), 2000));
    join(store, &c, now).await;
    let claimed = claim(store, a.user_id(), now)
        .await
        .expect("c is not blocked");
    assert_eq!(claimed.partner.user_id(), c.user_id());
}

/// A block in either direction keeps two users apart, whoever searches; a pair released
/// with `block_each_other` is never paired again.
pub async fn blocks_are_honoured_both_ways(stores: &Handles) {
    let store = stores[0].as_ref();
    let b = joined(person(Gender::Female, 30), at(t0(), 1000));
    let mut a = person(Gender::Male, 30);
    a.blocked.push(b.user_id());
    let now = at(t0(), 5000);
    join(store, &a, now).await;
    join(store, &b, now).await;
    assert!(
        claim(store, a.user_id(), now).await.is_none(),
        "a blocked b"
    );
    assert!(
        claim(store, b.user_id(), now).await.is_none(),
        "b does not know, the store must still refuse"
    );
    let c = joined(person(Gender::Other, 30), at(t0(), 2000));
    join(store, &c, now).await;
    let found = claim(store, b.user_id(), now).await.expect("c fits b");
    assert_eq!(found.partner.user_id(), c.user_id());
    let back = store.release(&found, true, now).await.expect("release");
    assert_eq!(back.len(), 2);
    assert!(
        claim(store, b.user_id(), now).await.is_none(),
        "a and c both refused"
    );
    let found = claim(store, a.user_id(), now)
        .await
        .expect("a and c are still free to meet");
    assert_eq!(found.partner.user_id(), c.user_id());
    assert_eq!(
        state_of(store, b.user_id()).await,
        Some((b.joined_at, TicketState::Waiting))
    );
}

/// Former partners are not paired again before the cooldown ends (and are at its end);
/// a zero cooldown records nothing.
pub async fn cooldown_keeps_former_partners_apart(stores: &Handles) {
    let store = stores[0].as_ref();
    let a = person(Gender::Male, 30);
    let b = person(Gender::Female, 30);
    join(store, &a, t0()).await;
    join(store, &b, t0()).await;
    let matched_at = at(t0(), 1000);
    let c1 = claim(store, a.user_id(), matched_at)
        .await
        .expect("a meets b");
    assert_eq!(c1.partner.user_id(), b.user_id());
    confirm(store, &c1, secs(600), matched_at).await;
    assert_eq!(
        store
            .last_match(a.user_id())
            .await
            .expect("last")
            .map(|m| m.match_id),
        Some(c1.match_id)
    );
    let a = joined(a, at(t0(), 2000));
    let b = joined(b, at(t0(), 2000));
    join(store, &a, at(t0(), 2000)).await;
    join(store, &b, at(t0(), 2000)).await;
    assert!(claim(store, a.user_id(), at(t0(), 3000)).await.is_none());
    assert!(claim(store, b.user_id(), at(t0(), 3000)).await.is_none());
    let c = wanting(
        joined(person(Gender::Female, 30), at(t0(), 4000)),
        &[Gender::Male],
        18,
        99,
    );
    join(store, &c, at(t0(), 4000)).await;
    let c2 = claim(store, c.user_id(), at(t0(), 5000))
        .await
        .expect("c meets a");
    assert_eq!(c2.partner.user_id(), a.user_id());
    confirm(store, &c2, Duration::ZERO, at(t0(), 5000)).await;
    join(store, &c, at(t0(), 6000)).await;
    join(store, &a, at(t0(), 6000)).await;
    let c3 = claim(store, c.user_id(), at(t0(), 7000))
        .await
        .expect("no cooldown between a and c");
    assert_eq!(c3.partner.user_id(), a.user_id());
    confirm(store, &c3, Duration::ZERO, at(t0(), 7000)).await;
    join(store, &a, at(t0(), 8000)).await;
    let ends = millis(matched_at) + 600_000;
    assert!(
        claim(store, a.user_id(), from_millis(ends - 1))
            .await
            .is_none()
    );
    let c4 = claim(store, a.user_id(), from_millis(ends))
        .await
        .expect("the cooldown is over");
    assert_eq!(c4.partner.user_id(), b.user_id());
}

/// Among compatible candidates: more shared interests first, then the longest wait;
/// required interests need one in common; ignored interests take the oldest.
pub async fn oldest_compatible_ticket_is_served_first(stores: &Handles) {
    let store = stores[0].as_ref();
    let s = |secs: i64| at(t0(), secs * 1000);
    let now = s(100);
    let f = liking(
        joined(
            person(Gender::Female, 30),
            s(0) + time::Duration::milliseconds(500),
        ),
        &["rust"],
        InterestMode::Required,
    );
    let too_old = joined(person(Gender::Female, 40), s(0));
    let male = joined(person(Gender::Male, 30), s(1));
    let picky = wanting(
        joined(person(Gender::Female, 30), s(2)),
        &[Gender::Female],
        18,
        99,
    );
    let ca = joined(person(Gender::Female, 30), s(3));
    let cb = joined(person(Gender::Female, 31), s(4));
    for t in [&f, &too_old, &male, &picky, &ca, &cb] {
        join(store, t, now).await;
    }
    let seeker = |at_s: i64, tags: &[&str], mode| {
        liking(
            wanting(
                joined(person(Gender::Male, 30), s(at_s)),
                &[Gender::Female],
                25,
                35,
            ),
            tags,
            mode,
        )
    };
    let s1 = seeker(10, &["chess", "films", "music"], InterestMode::Preferred);
    join(store, &s1, now).await;
    let c = claim(store, s1.user_id(), now).await.expect("a partner");
    assert_eq!(c.partner.user_id(), ca.user_id(), "the oldest compatible");
    assert_eq!(c.shared, 0);

    let d1 = liking(
        joined(person(Gender::Female, 30), s(20)),
        &["chess"],
        InterestMode::Preferred,
    );
    let d2 = liking(
        joined(person(Gender::Female, 30), s(21)),
        &["chess", "films"],
        InterestMode::Preferred,
    );
    let d3 = liking(
        joined(person(Gender::Female, 30), s(22)),
        &["films", "chess"],
        InterestMode::Ignored,
    );
    let d4 = liking(
        joined(person(Gender::Female, 30), s(19)),
        &["films", "music"],
        InterestMode::Preferred,
    );
    for t in [&d1, &d2, &d3, &d4] {
        join(store, t, now).await;
    }
    let s2 = seeker(30, &["chess", "films", "music"], InterestMode::Preferred);
    join(store, &s2, now).await;
    let c = claim(store, s2.user_id(), now).await.expect("a partner");
    assert_eq!(c.partner.user_id(), d4.user_id(), "two shared, the oldest");
    assert_eq!(c.shared, 2);
    let s3 = seeker(31, &["chess", "films", "music"], InterestMode::Preferred);
    join(store, &s3, now).await;
    let c = claim(store, s3.user_id(), now).await.expect("a partner");
    assert_eq!(c.partner.user_id(), d2.user_id(), "two shared, next oldest");

    let s4 = seeker(32, &["music", "hiking"], InterestMode::Required);
    join(store, &s4, now).await;
    assert!(
        claim(store, s4.user_id(), now).await.is_none(),
        "nobody left shares music or hiking"
    );
    let e = liking(
        joined(person(Gender::Female, 30), s(40)),
        &["hiking"],
        InterestMode::Preferred,
    );
    join(store, &e, now).await;
    let c = claim(store, s4.user_id(), now)
        .await
        .expect("e shares hiking");
    assert_eq!(
        c.partner.user_id(),
        e.user_id(),
        "not the older cb: none shared"
    );

    let s5 = seeker(50, &["chess"], InterestMode::Ignored);
    join(store, &s5, now).await;
    let c = claim(store, s5.user_id(), now).await.expect("a partner");
    assert_eq!(
        c.partner.user_id(),
        cb.user_id(),
        "interests ignored: the oldest, not d1 who shares chess"
    );
    assert!(
        state_of(store, f.user_id()).await == Some((f.joined_at, TicketState::Waiting)),
        "f requires rust, nobody had it"
    );
}

/// The age range widens one year per step up to what the ticket allowed and never beyond,
/// on both sides of a pair; required interests fall back at the given time; a ticket
/// without a partner is due again at its next widening.
pub async fn criteria_widen_with_waiting_time_and_never_beyond(stores: &Handles) {
    let store = stores[0].as_ref();
    let ms = |m: i64| at(t0(), m);
    let mut s = wanting(person(Gender::Male, 30), &[Gender::Female], 25, 30);
    s.criteria.age_widen_years = 3;
    s.criteria.widen_every_secs = 10;
    let c33 = person(Gender::Female, 33);
    let c34 = person(Gender::Female, 34);
    for t in [&s, &c33, &c34] {
        join(store, t, t0()).await;
    }
    assert!(claim(store, s.user_id(), ms(9_000)).await.is_none());
    assert!(
        !store
            .due(ms(9_999), 100)
            .await
            .expect("due")
            .contains(&s.user_id()),
        "not due before the next widening"
    );
    assert!(
        store
            .due(ms(10_000), 100)
            .await
            .expect("due")
            .contains(&s.user_id())
    );
    assert!(claim(store, s.user_id(), ms(20_000)).await.is_none());
    assert!(claim(store, s.user_id(), ms(29_999)).await.is_none());
    let c = claim(store, s.user_id(), ms(30_000))
        .await
        .expect("33 is in range after three steps");
    assert_eq!(c.partner.user_id(), c33.user_id());
    assert_eq!(
        relaxed(&c.seeker, &c.partner, ms(30_000)),
        vec![wire::api::matching::RelaxedCriterion::AgeRange]
    );
    let mut s2 = s.clone();
    s2.profile.id = Uuid::new_v4();
    join(store, &s2, t0()).await;
    assert!(
        claim(store, s2.user_id(), ms(3_600_000)).await.is_none(),
        "34 is beyond the widening allowed"
    );
    store.leave(s2.user_id()).await.expect("leave");

    let mut g = wanting(person(Gender::Female, 25), &[], 34, 40);
    g.criteria.age_widen_years = 2;
    g.criteria.widen_every_secs = 5;
    let h = wanting(person(Gender::Male, 32), &[Gender::Female], 20, 30);
    join(store, &g, t0()).await;
    join(store, &h, t0()).await;
    assert!(claim(store, h.user_id(), ms(0)).await.is_none());
    assert!(claim(store, h.user_id(), ms(9_999)).await.is_none());
    let c = claim(store, h.user_id(), ms(10_000))
        .await
        .expect("g's range reaches 32");
    assert_eq!(c.partner.user_id(), g.user_id());

    let mut r = liking(
        wanting(person(Gender::Male, 30), &[Gender::Other], 18, 99),
        &["rust"],
        InterestMode::Required,
    );
    r.criteria.fallback_after_secs = Some(20);
    let k = liking(
        person(Gender::Other, 30),
        &["films"],
        InterestMode::Preferred,
    );
    join(store, &r, t0()).await;
    join(store, &k, t0()).await;
    assert!(claim(store, r.user_id(), ms(19_999)).await.is_none());
    assert!(
        store
            .due(ms(20_000), 100)
            .await
            .expect("due")
            .contains(&r.user_id())
    );
    let c = claim(store, r.user_id(), ms(20_000))
        .await
        .expect("required interests fell back");
    assert_eq!(c.partner.user_id(), k.user_id());
    assert_eq!(
        relaxed(&c.seeker, &c.partner, ms(20_000)),
        vec![wire::api::matching::RelaxedCriterion::Interests]
    );
}

/// One ticket per user: joining again replaces it (keeping the waiting time when the
/// criteria are the same), abandons a claim in flight and forgets the last match.
pub async fn one_ticket_per_user(stores: &Handles) {
    let store = stores[0].as_ref();
    let a = person(Gender::Male, 30);
    join(store, &a, t0()).await;
    let again = join(store, &joined(a.clone(), at(t0(), 5000)), at(t0(), 5000)).await;
    assert_eq!(again.joined_at, t0(), "same criteria: same waiting time");
    assert_eq!(store.waiting_count().await.expect("count"), 1);
    let changed = joined(wanting(a.clone(), &[], 18, 50), at(t0(), 6000));
    let stored = join(store, &changed, at(t0(), 6000)).await;
    assert_eq!(stored.joined_at, at(t0(), 6000), "new criteria: a new wait");
    assert_eq!(store.waiting_count().await.expect("count"), 1);
    let b = wanting(person(Gender::Female, 60), &[Gender::Male], 18, 120);
    join(store, &b, at(t0(), 6000)).await;
    assert!(
        claim(store, b.user_id(), at(t0(), 6000)).await.is_none(),
        "the replaced ticket (up to 120) is gone, the new one stops at 50"
    );
    let b = person(Gender::Female, 40);
    join(store, &b, at(t0(), 6000)).await;
    let c = claim(store, b.user_id(), at(t0(), 7000)).await.expect("a");
    assert_eq!(c.partner, changed);
    join(store, &changed, at(t0(), 7000)).await;
    let answer = store
        .confirm(
            &c,
            &info_for(&c, true, at(t0(), 7000)),
            &info_for(&c, false, at(t0(), 7000)),
            secs(600),
            at(t0(), 7000),
        )
        .await
        .expect("confirm");
    assert_eq!(answer, Confirmation::Withdrawn(vec![a.user_id()]));
    let back = store
        .release(&c, false, at(t0(), 7000))
        .await
        .expect("release");
    assert_eq!(back, vec![b.user_id()]);
    assert_eq!(store.waiting_count().await.expect("count"), 3);
    let c = claim(store, b.user_id(), at(t0(), 8000))
        .await
        .expect("a is indexed once again");
    assert_eq!(c.partner.user_id(), a.user_id());
    confirm(store, &c, secs(600), at(t0(), 8000)).await;
    assert!(store.last_match(a.user_id()).await.expect("last").is_some());
    join(store, &a, at(t0(), 9000)).await;
    assert!(store.last_match(a.user_id()).await.expect("last").is_none());
    assert!(store.last_match(b.user_id()).await.expect("last").is_some());
    store.clear_last_match(b.user_id()).await.expect("clear");
    assert!(store.last_match(b.user_id()).await.expect("last").is_none());
}

/// Leaving takes the ticket out at once, waiting or claimed.
pub async fn leaving_is_immediate(stores: &Handles) {
    let store = stores[0].as_ref();
    let a = person(Gender::Male, 30);
    let b = person(Gender::Female, 30);
    join(store, &a, t0()).await;
    join(store, &b, t0()).await;
    assert!(store.leave(a.user_id()).await.expect("leave"));
    assert_eq!(state_of(store, a.user_id()).await, None);
    assert_eq!(store.waiting_count().await.expect("count"), 1);
    assert!(
        !store
            .due(t0(), 10)
            .await
            .expect("due")
            .contains(&a.user_id())
    );
    assert!(claim(store, b.user_id(), t0()).await.is_none());
    assert!(
        !store.leave(a.user_id()).await.expect("leave"),
        "idempotent"
    );

    join(store, &a, at(t0(), 1000)).await;
    let c = claim(store, b.user_id(), at(t0(), 1000)).await.expect("a");
    assert!(store.leave(a.user_id()).await.expect("leave while claimed"));
    assert_eq!(state_of(store, a.user_id()).await, None);
    let answer = store
        .confirm(
            &c,
            &info_for(&c, true, at(t0(), 1000)),
            &info_for(&c, false, at(t0(), 1000)),
            secs(600),
            at(t0(), 1000),
        )
        .await
        .expect("confirm");
    assert_eq!(answer, Confirmation::Withdrawn(vec![a.user_id()]));
    assert_eq!(
        store
            .release(&c, false, at(t0(), 1000))
            .await
            .expect("release"),
        vec![b.user_id()]
    );
    assert_eq!(
        state_of(store, b.user_id()).await,
        Some((t0(), TicketState::Waiting))
    );
    assert_eq!(store.waiting_count().await.expect("count"), 1);
    assert!(
        store
            .release_stale(at(t0(), 3_600_000), at(t0(), 3_600_000))
            .await
            .expect("stale")
            == 0,
        "nothing claimed any more"
    );
    assert_eq!(state_of(store, a.user_id()).await, None);
}

/// A released pair and the pairs of a dead matcher come back with their original waiting
/// time; a claim that was put back can no longer be confirmed.
pub async fn released_and_stale_claims_come_back_with_their_waiting_time(stores: &Handles) {
    let store = stores[0].as_ref();
    let a = person(Gender::Male, 30);
    let b = joined(person(Gender::Female, 30), at(t0(), 1000));
    join(store, &a, at(t0(), 1000)).await;
    join(store, &b, at(t0(), 1000)).await;
    let c = claim(store, a.user_id(), at(t0(), 5000)).await.expect("b");
    assert_eq!(store.waiting_count().await.expect("count"), 0);
    assert!(store.due(at(t0(), 5000), 10).await.expect("due").is_empty());
    let mut back = store
        .release(&c, false, at(t0(), 5500))
        .await
        .expect("release");
    back.sort();
    let mut both = vec![a.user_id(), b.user_id()];
    both.sort();
    assert_eq!(back, both);
    assert_eq!(
        state_of(store, a.user_id()).await,
        Some((t0(), TicketState::Waiting))
    );
    assert_eq!(
        state_of(store, b.user_id()).await,
        Some((at(t0(), 1000), TicketState::Waiting))
    );
    assert_eq!(store.due(at(t0(), 5500), 10).await.expect("due").len(), 2);

    let c = claim(store, b.user_id(), at(t0(), 6000)).await.expect("a");
    assert_eq!(
        store
            .release_stale(at(t0(), 6000), at(t0(), 40_000))
            .await
            .expect("stale"),
        0,
        "claimed at 6 s, not before"
    );
    assert_eq!(
        store
            .release_stale(at(t0(), 6001), at(t0(), 40_000))
            .await
            .expect("stale"),
        2
    );
    assert_eq!(
        state_of(store, a.user_id()).await,
        Some((t0(), TicketState::Waiting))
    );
    assert_eq!(
        state_of(store, b.user_id()).await,
        Some((at(t0(), 1000), TicketState::Waiting))
    );
    let answer = store
        .confirm(
            &c,
            &info_for(&c, true, at(t0(), 40_000)),
            &info_for(&c, false, at(t0(), 40_000)),
            secs(600),
            at(t0(), 40_000),
        )
        .await
        .expect("confirm");
    assert!(matches!(answer, Confirmation::Withdrawn(ref u) if u.len() == 2));
    let fresh = claim(store, a.user_id(), at(t0(), 41_000))
        .await
        .expect("b again");
    assert!(
        store
            .release(&c, false, at(t0(), 41_000))
            .await
            .expect("release")
            .is_empty(),
        "the old claim no longer holds them"
    );
    confirm(store, &fresh, secs(600), at(t0(), 41_000)).await;
    assert_eq!(store.waiting_count().await.expect("count"), 0);
}

/// Many claimers on every handle (several instances on one backend) race over one queue
/// while some users leave: each user is in at most one claim, and every ticket is either
/// claimed, left, or still waiting with its original time; confirming and releasing the
/// claims concurrently loses nothing either.
pub async fn instances_racing_never_double_pair(stores: &Handles) {
    let n = 240usize;
    let mut rng = Rng::new(0xACE5);
    let now = at(t0(), 3_600_000);
    let tickets: Vec<Ticket> = (0..n)
        .map(|i| {
            let mut t = person(Gender::ALL[rng.below(3) as usize], 18 + rng.below(43) as u8);
            t.profile.id = rng.uuid();
            let k = 1 + rng.below(3) as usize;
            let mut tags = TAGS.to_vec();
            rng.shuffle(&mut tags);
            joined(
                liking(t, &tags[..k], InterestMode::Preferred),
                at(t0(), i as i64 * 7),
            )
        })
        .collect();
    let by_id: HashMap<Uuid, Ticket> = tickets.iter().map(|t| (t.user_id(), t.clone())).collect();
    for (i, t) in tickets.iter().enumerate() {
        join(stores[i % stores.len()].as_ref(), t, now).await;
    }
    let leavers: Vec<Uuid> = tickets.iter().step_by(10).map(Ticket::user_id).collect();
    let mut tasks = Vec::new();
    for (h, store) in stores.iter().enumerate() {
        for k in 0..4u64 {
            let store = Arc::clone(store);
            let mut order: Vec<Uuid> = tickets.iter().map(Ticket::user_id).collect();
            let mut rng = Rng::new(h as u64 * 100 + k);
            rng.shuffle(&mut order);
            tasks.push(tokio::spawn(async move {
                let mut claims = Vec::new();
                for user in order {
                    if let Some(c) = claim(store.as_ref(), user, now).await {
                        claims.push(c);
                    }
                }
                claims
            }));
        }
    }
    let leaver = {
        let store = Arc::clone(&stores[stores.len() - 1]);
        let leavers = leavers.clone();
        tokio::spawn(async move {
            for u in leavers {
                assert!(store.leave(u).await.expect("leave"));
            }
        })
    };
    let mut claims: Vec<Claim> = Vec::new();
    for t in tasks {
        claims.extend(t.await.expect("claimer"));
    }
    leaver.await.expect("leaver");

    let mut claimed: HashMap<Uuid, usize> = HashMap::new();
    for (i, c) in claims.iter().enumerate() {
        let (a, b) = pair_of(c);
        assert_ne!(a, b);
        for u in [a, b] {
            if let Some(j) = claimed.insert(u, i) {
                panic!(
                    "{u} is in two claims: {:?} and {:?}",
                    pair_of(&claims[j]),
                    (a, b)
                );
            }
        }
        assert_eq!(c.seeker, by_id[&a]);
        assert_eq!(c.partner, by_id[&b]);
    }
    assert!(
        claimed.len() >= n / 2,
        "everyone accepts everyone: most are paired ({})",
        claimed.len()
    );
    let left: HashSet<Uuid> = leavers.iter().copied().collect();
    let mut waiting = 0u64;
    for t in &tickets {
        let u = t.user_id();
        let state = state_of(stores[0].as_ref(), u).await;
        if left.contains(&u) {
            assert_eq!(state, None, "{u} left");
        } else if claimed.contains_key(&u) {
            assert_eq!(state, Some((t.joined_at, TicketState::Claimed)));
        } else {
            assert_eq!(
                state,
                Some((t.joined_at, TicketState::Waiting)),
                "{u} vanished"
            );
            waiting += 1;
        }
    }
    assert_eq!(
        stores[0].waiting_count().await.expect("count"),
        waiting,
        "no ticket vanished"
    );

    let mut finishers = Vec::new();
    for (i, c) in claims.into_iter().enumerate() {
        let store = Arc::clone(&stores[i % stores.len()]);
        let left = left.clone();
        finishers.push(tokio::spawn(async move {
            let now = at(now, 1000);
            if i % 3 == 0 {
                let back = store.release(&c, false, now).await.expect("release");
                let (a, b) = pair_of(&c);
                let expect: Vec<Uuid> = [a, b].into_iter().filter(|u| !left.contains(u)).collect();
                assert_eq!(back, expect);
                return (c, false);
            }
            let answer = store
                .confirm(
                    &c,
                    &info_for(&c, true, now),
                    &info_for(&c, false, now),
                    secs(600),
                    now,
                )
                .await
                .expect("confirm");
            match answer {
                Confirmation::Confirmed => (c, true),
                Confirmation::Withdrawn(gone) => {
                    assert!(
                        gone.iter().all(|u| left.contains(u)),
                        "only leavers withdraw"
                    );
                    let back = store.release(&c, false, now).await.expect("release");
                    assert!(back.iter().all(|u| !left.contains(u)));
                    (c, false)
                }
            }
        }));
    }
    let mut matched: HashMap<Uuid, Uuid> = HashMap::new();
    for f in finishers {
        let (c, confirmed) = f.await.expect("finisher");
        if confirmed {
            let (a, b) = pair_of(&c);
            matched.insert(a, c.match_id);
            matched.insert(b, c.match_id);
        }
    }
    let mut waiting = 0u64;
    for t in &tickets {
        let u = t.user_id();
        let state = state_of(stores[0].as_ref(), u).await;
        let last = stores[0].last_match(u).await.expect("last");
        if let Some(mid) = matched.get(&u) {
            assert_eq!(state, None);
            assert_eq!(last.map(|m| m.match_id), Some(*mid));
        } else if left.contains(&u) {
            assert_eq!(state, None);
            assert_eq!(last, None);
        } else {
            assert_eq!(
                state,
                Some((t.joined_at, TicketState::Waiting)),
                "{u} vanished"
            );
            waiting += 1;
        }
    }
    assert_eq!(stores[0].waiting_count().await.expect("count"), waiting);
}

// ---------------------------------------------------------------------------------------
// Through the matcher, with in-process peers
// ---------------------------------------------------------------------------------------

/// In-process auth-service, message-service and ws-manager for the matcher: profiles,
/// blocks, chats (creation can be made to fail), and the events delivered.
#[derive(Debug, Clone, Default)]
pub struct PeerStandIns {
    inner: Arc<Mutex<PeerData>>,
}

#[derive(Debug, Default)]
struct PeerData {
    profiles: HashMap<Uuid, MatchingProfile>,
    /// (blocker, blocked)
    blocks: HashSet<(Uuid, Uuid)>,
    chats: HashMap<Uuid, Chat>,
    fail_chats: bool,
    chat_attempts: usize,
    delivered: Vec<(Uuid, MatchInfo)>,
}

impl PeerStandIns {
    fn lock(&self) -> std::sync::MutexGuard<'_, PeerData> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The peers as in-process clients.
    pub fn peers(&self) -> Peers {
        let auth = Router::new()
            .route("/internal/users/{id}", get(peer_profile))
            .with_state(self.clone());
        let message = Router::new()
            .route("/internal/users/{id}/chats", get(peer_user_chats))
            .route("/internal/users/{id}/blocks", get(peer_blocks))
            .route("/internal/chats", post(peer_create_chat))
            .route("/internal/chats/{id}", get(peer_chat))
            .route("/internal/chats/{id}/end", post(peer_end_chat))
            .with_state(self.clone());
        let ws = Router::new()
            .route("/internal/deliver", post(peer_deliver))
            .with_state(self.clone());
        Peers {
            auth: ServiceClient::in_process("auth-service", auth, None),
            message: ServiceClient::in_process("message-service", message, None),
            ws_manager: ServiceClient::in_process("ws-manager", ws, None),
        }
    }

    /// Registers a user who accepts anyone by default.
    pub fn add_user(&self, gender: Gender, age: u8, interests: &[&str]) -> PublicProfile {
        let profile = PublicProfile {
            id: Uuid::new_v4(),
            display_name: format!("{}-{age}", gender.as_str()),
            gender,
            age,
            interests: interests.iter().map(|s| (*s).to_owned()).collect(),
        };
        let preferences = Preferences {
            genders: vec![],
            min_age: MIN_AGE,
            max_age: MAX_AGE,
            interests: vec![],
            ..Default::default()
        };
        self.lock().profiles.insert(
            profile.id,
            MatchingProfile {
                profile: profile.clone(),
                preferences,
            },
        );
        profile
    }

    /// `blocker` blocks `blocked`.
    pub fn block(&self, blocker: Uuid, blocked: Uuid) {
        self.lock().blocks.insert((blocker, blocked));
    }

    /// Makes chat creation fail (503) or succeed again.
    pub fn fail_chats(&self, fail: bool) {
        self.lock().fail_chats = fail;
    }

    /// Chat creations asked for so far.
    pub fn chat_attempts(&self) -> usize {
        self.lock().chat_attempts
    }

    /// `matched` events delivered to `user`.
    pub fn delivered_to(&self, user: Uuid) -> Vec<MatchInfo> {
        self.lock()
            .delivered
            .iter()
            .filter(|(u, _)| *u == user)
            .map(|(_, i)| i.clone())
            .collect()
    }

    /// Every chat created.
    pub fn chats(&self) -> Vec<Chat> {
        self.lock().chats.values().cloned().collect()
    }

    /// The user's chats not ended.
    pub fn live_chats_of(&self, user: Uuid) -> Vec<Chat> {
        self.lock()
            .chats
            .values()
            .filter(|c| c.ended_at.is_none() && c.participants.contains(&user))
            .cloned()
            .collect()
    }
}

async fn peer_profile(
    State(p): State<PeerStandIns>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<MatchingProfile>, ApiError> {
    p.lock()
        .profiles
        .get(&id)
        .cloned()
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("no such user"))
}

async fn peer_user_chats(
    State(p): State<PeerStandIns>,
    Path(id): Path<Uuid>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::Json<Vec<Chat>> {
    let active = q.get("active").is_some_and(|v| v == "true");
    axum::Json(
        p.lock()
            .chats
            .values()
            .filter(|c| c.participants.contains(&id) && (!active || c.ended_at.is_none()))
            .cloned()
            .collect(),
    )
}

async fn peer_blocks(
    State(p): State<PeerStandIns>,
    Path(id): Path<Uuid>,
) -> axum::Json<UserBlocks> {
    let data = p.lock();
    axum::Json(UserBlocks {
        blocked: data
            .blocks
            .iter()
            .filter(|(a, _)| *a == id)
            .map(|(_, b)| *b)
            .collect(),
        blocked_by: data
            .blocks
            .iter()
            .filter(|(_, b)| *b == id)
            .map(|(a, _)| *a)
            .collect(),
    })
}

async fn peer_create_chat(
    State(p): State<PeerStandIns>,
    axum::Json(req): axum::Json<CreateChatRequest>,
) -> Result<(StatusCode, axum::Json<Chat>), ApiError> {
    let mut data = p.lock();
    data.chat_attempts += 1;
    if data.fail_chats {
        return Err(ApiError::unavailable("chat storage is unavailable"));
    }
    let ids: Vec<Uuid> = req.participants.iter().map(|x| x.id).collect();
    if ids
        .iter()
        .any(|a| ids.iter().any(|b| data.blocks.contains(&(*a, *b))))
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Blocked,
            "the participants blocked each other",
        ));
    }
    if let Some(chat) = data.chats.values().find(|c| c.match_id == req.match_id) {
        return Ok((StatusCode::OK, axum::Json(chat.clone())));
    }
    let chat = Chat {
        id: Uuid::new_v4(),
        match_id: req.match_id,
        participants: ids,
        created_at: OffsetDateTime::now_utc(),
        ended_at: None,
        ended_by: None,
        last_seq: 0,
    };
    data.chats.insert(chat.id, chat.clone());
    Ok((StatusCode::CREATED, axum::Json(chat)))
}

async fn peer_chat(
    State(p): State<PeerStandIns>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Chat>, ApiError> {
    p.lock()
        .chats
        .get(&id)
        .cloned()
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("no such chat"))
}

async fn peer_end_chat(
    State(p): State<PeerStandIns>,
    Path(id): Path<Uuid>,
    axum::Json(req): axum::Json<EndChatRequest>,
) -> Result<axum::Json<Chat>, ApiError> {
    let mut data = p.lock();
    let chat = data
        .chats
        .get_mut(&id)
        .ok_or_else(|| ApiError::not_found("no such chat"))?;
    if chat.ended_at.is_none() {
        chat.ended_at = Some(OffsetDateTime::now_utc());
        chat.ended_by = Some(req.user_id);
    }
    Ok(axum::Json(chat.clone()))
}

async fn peer_deliver(
    State(p): State<PeerStandIns>,
    axum::Json(req): axum::Json<DeliverRequest>,
) -> axum::Json<DeliverResponse> {
    let mut data = p.lock();
    let mut routed = 0;
    if let ServerFrame::Matched { info } = req.event {
        for u in req.user_ids {
            data.delivered.push((u, info.clone()));
            routed += 1;
        }
    }
    axum::Json(DeliverResponse { routed })
}

const CREDENTIAL: &str = "conformance-service-credential-0123456789";

/// A matcher on `store` with the stand-in peers, reading `clock`.
fn matcher_on(store: Arc<dyn QueueStore>, peers: &PeerStandIns, clock: &ManualClock) -> AppState {
    let config = MatchingConfig {
        cooldown: secs(600),
        tick: Duration::from_millis(50),
        recheck: secs(30),
        claim_timeout: secs(30),
        sweep_batch: 256,
        sweep_concurrency: 8,
        ..MatchingConfig::default()
    };
    AppState::new(
        store,
        peers.peers(),
        TokenVerifier::new("random-chats", "random-chats"),
        ServiceCredential::new(CREDENTIAL),
        config,
    )
    .with_clock(clock.clock())
}

/// The full flow: join with preferences (interests from the profile), the status shows
/// the criteria widening with time, a later join matches, both learn it through a
/// `matched` event (chat id, partner's public profile, shared interests, what was
/// relaxed) and the status; "Next" ends the chat; the internal drop removes a ticket.
pub async fn matcher_delivers_the_match_to_both(stores: &Handles) {
    let peers = PeerStandIns::default();
    let clock = ManualClock::new(t0());
    let state = matcher_on(Arc::clone(&stores[0]), &peers, &clock);
    let a = peers.add_user(Gender::Male, 30, &["chess", "films"]);
    let b = peers.add_user(Gender::Female, 28, &["films", "music"]);
    let req = JoinQueueRequest {
        genders: Some(vec![Gender::Female]),
        min_age: Some(30),
        max_age: Some(35),
        age_widen_years: Some(3),
        widen_every_secs: Some(10),
        ..JoinQueueRequest::default()
    };
    let st = matcher::join(&state, a.id, &req).await.expect("join");
    assert_eq!(st.state, QueueState::Waiting);
    assert_eq!(st.waiting_since, Some(t0()));
    let criteria = st.criteria.expect("criteria");
    assert_eq!((criteria.min_age, criteria.max_age), (30, 35));
    assert_eq!(criteria.interests, a.interests, "from the profile");
    clock.advance(secs(25));
    let st = matcher::status(&state, a.id).await.expect("status");
    assert_eq!(st.waiting_since, Some(t0()));
    let criteria = st.criteria.expect("criteria");
    assert_eq!((criteria.min_age, criteria.max_age), (28, 37), "two steps");

    let st = matcher::join(&state, b.id, &JoinQueueRequest::default())
        .await
        .expect("join");
    assert_eq!(st.state, QueueState::Matched, "a accepts 28 by now");
    let for_b = st.matched.expect("match");
    let to_a = peers.delivered_to(a.id);
    let to_b = peers.delivered_to(b.id);
    assert_eq!((to_a.len(), to_b.len()), (1, 1), "one matched event each");
    assert_eq!(to_b[0], for_b);
    let for_a = &to_a[0];
    assert_eq!(for_a.chat_id, for_b.chat_id);
    assert_eq!(for_a.match_id, for_b.match_id);
    assert_eq!(for_a.partner, b);
    assert_eq!(for_b.partner, a);
    assert_eq!(for_a.shared_interests, vec!["films".to_owned()]);
    assert_eq!(for_b.shared_interests, vec!["films".to_owned()]);
    assert_eq!(
        for_a.relaxed,
        vec![wire::api::matching::RelaxedCriterion::AgeRange]
    );
    assert!(for_b.relaxed.is_empty());
    let chat = peers.live_chats_of(a.id);
    assert_eq!(chat.len(), 1);
    assert_eq!(chat[0].id, for_a.chat_id);
    assert!(chat[0].participants.contains(&b.id));
    let st = matcher::status(&state, a.id).await.expect("status");
    assert_eq!(st.state, QueueState::Matched);
    assert_eq!(st.matched.as_ref(), Some(for_a));

    // "Next": joining again ends the live chat; at most one live chat per user.
    let st = matcher::join(&state, a.id, &req).await.expect("join");
    assert_eq!(st.state, QueueState::Waiting);
    assert!(peers.live_chats_of(a.id).is_empty());
    let st = matcher::status(&state, b.id).await.expect("status");
    assert_eq!(st.state, QueueState::Idle, "b's chat ended");

    // ws-handler drops the ticket when the last connection closes.
    let me = ServiceClient::in_process(
        "matching-service",
        crate::app(state.clone()),
        Some(ServiceCredential::new(CREDENTIAL)),
    );
    me.call::<wire::api::matching::DropTicket>(a.id, ())
        .await
        .expect("drop");
    assert_eq!(state_of(stores[0].as_ref(), a.id).await, None);
    let st = matcher::status(&state, a.id).await.expect("status");
    assert_eq!(st.state, QueueState::Idle);
    let anonymous = ServiceClient::in_process("matching-service", crate::app(state.clone()), None);
    let err = anonymous
        .call::<wire::api::matching::DropTicket>(b.id, ())
        .await
        .expect_err("the drop needs the service credential");
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
}

/// When the chat cannot be created, both tickets go back with their original waiting
/// time, and the pair is made once chats can be created again.
pub async fn failed_chat_creation_puts_both_tickets_back(stores: &Handles) {
    let peers = PeerStandIns::default();
    let clock = ManualClock::new(t0());
    let state = matcher_on(Arc::clone(&stores[0]), &peers, &clock);
    let a = peers.add_user(Gender::Male, 30, &["chess"]);
    let b = peers.add_user(Gender::Female, 30, &["chess"]);
    peers.fail_chats(true);
    let st = matcher::join(&state, a.id, &JoinQueueRequest::default())
        .await
        .expect("join");
    assert_eq!(st.state, QueueState::Waiting);
    assert_eq!(peers.chat_attempts(), 0, "nobody to meet yet");
    clock.advance(secs(5));
    let st = matcher::join(&state, b.id, &JoinQueueRequest::default())
        .await
        .expect("the join succeeds; the search failed");
    assert_eq!(st.state, QueueState::Waiting);
    assert_eq!(st.waiting_since, Some(at(t0(), 5000)));
    assert!(peers.chat_attempts() >= 1);
    let store = stores[0].as_ref();
    assert_eq!(
        state_of(store, a.id).await,
        Some((t0(), TicketState::Waiting))
    );
    assert_eq!(
        state_of(store, b.id).await,
        Some((at(t0(), 5000), TicketState::Waiting))
    );
    let attempts = peers.chat_attempts();
    clock.advance(secs(1));
    // Take the wake-up left by the join, then sweep against the failing peer.
    futures::FutureExt::now_or_never(state.woken()).expect("the join left a wake-up");
    matcher::sweep(&state).await;
    assert!(peers.chat_attempts() > attempts, "the matcher tried again");
    assert!(
        futures::FutureExt::now_or_never(state.woken()).is_none(),
        "a failing peer must not wake the matcher at once (it would spin): the next \
         tick retries"
    );
    assert_eq!(
        state_of(store, a.id).await,
        Some((t0(), TicketState::Waiting))
    );
    assert_eq!(
        state_of(store, b.id).await,
        Some((at(t0(), 5000), TicketState::Waiting))
    );
    assert!(peers.delivered_to(a.id).is_empty() && peers.chats().is_empty());
    let st = matcher::status(&state, a.id).await.expect("status");
    assert_eq!(st.waiting_since, Some(t0()));

    peers.fail_chats(false);
    clock.advance(secs(1));
    matcher::sweep(&state).await;
    let to_a = peers.delivered_to(a.id);
    let to_b = peers.delivered_to(b.id);
    assert_eq!((to_a.len(), to_b.len()), (1, 1));
    assert_eq!(to_a[0].chat_id, to_b[0].chat_id);
    assert_eq!(to_a[0].shared_interests, vec!["chess".to_owned()]);
    assert_eq!(state_of(store, a.id).await, None);
    assert_eq!(
        matcher::status(&state, b.id).await.expect("status").state,
        QueueState::Matched
    );
}

/// A block known at join keeps a pair apart; a block made after both joined is caught at
/// chat creation, and the pair is put back and never tried again.
pub async fn blocked_at_chat_creation_never_pairs_again(stores: &Handles) {
    let peers = PeerStandIns::default();
    let clock = ManualClock::new(t0());
    let state = matcher_on(Arc::clone(&stores[0]), &peers, &clock);
    let store = stores[0].as_ref();
    let d = peers.add_user(Gender::Male, 30, &[]);
    let e = peers.add_user(Gender::Female, 30, &[]);
    peers.block(e.id, d.id);
    matcher::join(&state, d.id, &JoinQueueRequest::default())
        .await
        .expect("join");
    let st = matcher::join(&state, e.id, &JoinQueueRequest::default())
        .await
        .expect("join");
    assert_eq!(st.state, QueueState::Waiting, "blocked at join");
    assert_eq!(peers.chat_attempts(), 0, "never even tried");
    matcher::leave(&state, d.id).await.expect("leave");
    matcher::leave(&state, e.id).await.expect("leave");

    let a = peers.add_user(Gender::Male, 30, &[]);
    let b = peers.add_user(Gender::Female, 30, &[]);
    peers.fail_chats(true);
    matcher::join(&state, a.id, &JoinQueueRequest::default())
        .await
        .expect("join");
    matcher::join(&state, b.id, &JoinQueueRequest::default())
        .await
        .expect("join");
    peers.block(a.id, b.id);
    peers.fail_chats(false);
    let attempts = peers.chat_attempts();
    clock.advance(secs(1));
    matcher::sweep(&state).await;
    assert!(peers.chat_attempts() > attempts);
    assert!(peers.chats().is_empty(), "refused: they blocked each other");
    assert_eq!(
        state_of(store, a.id).await,
        Some((t0(), TicketState::Waiting))
    );
    assert_eq!(
        state_of(store, b.id).await,
        Some((t0(), TicketState::Waiting))
    );
    let attempts = peers.chat_attempts();
    clock.advance(secs(31));
    matcher::sweep(&state).await;
    assert_eq!(peers.chat_attempts(), attempts, "never tried again");
    let c = peers.add_user(Gender::Other, 30, &[]);
    let st = matcher::join(&state, c.id, &JoinQueueRequest::default())
        .await
        .expect("join");
    assert_eq!(st.state, QueueState::Matched);
    assert_eq!(
        st.matched.expect("match").partner.id,
        a.id,
        "the oldest ticket"
    );
}

/// Two matcher instances sweeping one queue at once (chat creation failing now and then):
/// every user ends in exactly one live chat, learns exactly one match, and the partner's
/// event names them back.
pub async fn matchers_racing_never_double_pair(stores: &Handles) {
    let peers = PeerStandIns::default();
    let clock = ManualClock::new(t0());
    let one = matcher_on(Arc::clone(&stores[0]), &peers, &clock);
    let two = matcher_on(Arc::clone(&stores[stores.len() - 1]), &peers, &clock);
    let store = stores[0].as_ref();
    let mut rng = Rng::new(0xD0_0B1E);
    let mut users = Vec::new();
    for i in 0..60 {
        let p = peers.add_user(Gender::ALL[i % 3], 18 + rng.below(43) as u8, &[]);
        let mut t = person(p.gender, p.age);
        t.profile = p.clone();
        join(store, &joined(t, at(t0(), i as i64)), t0()).await;
        users.push(p.id);
    }
    for round in 0..40 {
        peers.fail_chats(round % 3 == 0);
        tokio::join!(matcher::sweep(&one), matcher::sweep(&two));
        clock.advance(secs(31));
        if store.waiting_count().await.expect("count") == 0 && round % 3 != 0 {
            break;
        }
    }
    assert_eq!(store.waiting_count().await.expect("count"), 0);
    for u in &users {
        assert_eq!(state_of(store, *u).await, None, "{u} still has a ticket");
        let live = peers.live_chats_of(*u);
        assert_eq!(live.len(), 1, "{u} is in {} live chats", live.len());
        let got = peers.delivered_to(*u);
        assert_eq!(got.len(), 1, "{u} learnt {} matches", got.len());
        assert_eq!(got[0].chat_id, live[0].id);
        let partner = got[0].partner.id;
        let back = peers.delivered_to(partner);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].partner.id, *u);
        assert_eq!(back[0].chat_id, got[0].chat_id);
    }
    assert!(
        peers.chats().iter().all(|c| c.ended_at.is_none()),
        "no chat was abandoned"
    );
}
