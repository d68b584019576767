//! The one conformance suite every [`QueueStore`] must pass: one `pub async fn` per case,
//! which `tests/stores.rs` runs on memory and on Redis through `test_support::conformance!`
//! (the matcher's own tests, through in-process peers, are in `tests/matcher.rs` and use
//! the helpers here).
//!
//! Every case takes handles on one *empty* queue. Several handles play several
//! matching-service instances sharing the backend (the memory store passes the same
//! handle more than once). Time is passed explicitly (or read from a [`ManualClock`]), so
//! widening and cooldowns are exercised without sleeping.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::auth::PublicProfile;
use wire::api::matching::{InterestMode, MatchInfo};
use wire::domain::{Gender, MAX_AGE, MIN_AGE};

use super::{Claim, Confirmation, QueueStore, TicketState};
use crate::rules::{Criteria, LowStanding, Ticket, from_millis, millis, relaxed, shared_interests};

/// Handles on one empty queue.
pub type Handles = [Arc<dyn QueueStore>];

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
pub fn t0() -> OffsetDateTime {
    from_millis(1_800_000_000_000)
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn at(base: OffsetDateTime, ms: i64) -> OffsetDateTime {
    from_millis(millis(base) + ms)
}

/// A ticket of a user of `gender` and `age` who accepts anyone, joined at `t0()`.
pub fn person(gender: Gender, age: u8) -> Ticket {
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
        low_standing: None,
        joined_at: t0(),
    }
}

pub fn wanting(mut t: Ticket, genders: &[Gender], min_age: u8, max_age: u8) -> Ticket {
    t.criteria.genders = genders.to_vec();
    t.criteria.min_age = min_age;
    t.criteria.max_age = max_age;
    t
}

pub fn liking(mut t: Ticket, interests: &[&str], mode: InterestMode) -> Ticket {
    let tags: Vec<String> = interests.iter().map(|s| (*s).to_owned()).collect();
    t.profile.interests = tags.clone();
    t.criteria.interests = tags;
    t.criteria.interest_mode = mode;
    t
}

pub fn joined(mut t: Ticket, when: OffsetDateTime) -> Ticket {
    t.joined_at = when;
    t
}

pub fn info_for(claim: &Claim, seeker_side: bool, now: OffsetDateTime) -> MatchInfo {
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

pub async fn join(store: &dyn QueueStore, t: &Ticket, now: OffsetDateTime) -> Ticket {
    store.join(t.clone(), now).await.expect("join")
}

pub async fn claim(store: &dyn QueueStore, user: Uuid, now: OffsetDateTime) -> Option<Claim> {
    store
        .claim(user, Uuid::now_v7(), now, secs(30))
        .await
        .expect("claim")
}

pub async fn confirm(store: &dyn QueueStore, c: &Claim, cooldown: Duration, now: OffsetDateTime) {
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

pub fn pair_of(c: &Claim) -> (Uuid, Uuid) {
    (c.seeker.user_id(), c.partner.user_id())
}

pub async fn state_of(store: &dyn QueueStore, user: Uuid) -> Option<(OffsetDateTime, TicketState)> {
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
    let b_held = b
        .low_standing
        .is_some_and(|l| waited_secs(b, now) < i64::from(l.hold_secs));
    a.low_standing.is_some() == b.low_standing.is_some()
        && !b_held
        && (a.criteria.genders.is_empty() || a.criteria.genders.contains(&b.profile.gender))
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

pub fn random_ticket(rng: &mut Rng, joined_at: OffsetDateTime) -> Ticket {
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
    t.low_standing = rng.chance(20).then(|| LowStanding {
        hold_secs: rng.below(20) as u32,
    });
    joined(t, joined_at)
}

pub fn in_low_standing(mut t: Ticket, hold_secs: u32) -> Ticket {
    t.low_standing = Some(LowStanding { hold_secs });
    t
}

/// Tickets in low standing are never paired with others, not even the oldest waiting;
/// one searches only after its hold and finds only another whose hold is over too.
pub async fn low_standing_waits_its_hold_and_meets_only_its_own(stores: &Handles) {
    let store = stores[0].as_ref();
    let bad = in_low_standing(person(Gender::Male, 30), 30);
    let other_bad = joined(
        in_low_standing(person(Gender::Female, 30), 30),
        at(t0(), 1000),
    );
    let good = joined(person(Gender::Female, 30), at(t0(), 2000));
    let also_good = joined(person(Gender::Male, 30), at(t0(), 3000));
    for t in [&bad, &other_bad, &good, &also_good] {
        join(store, t, t.joined_at).await;
    }
    let now = at(t0(), 5000);
    assert!(
        claim(store, bad.user_id(), now).await.is_none(),
        "inside its hold it does not search"
    );
    assert!(
        !store
            .due(at(t0(), 29_999), 100)
            .await
            .unwrap()
            .contains(&bad.user_id()),
        "its next search is at the end of the hold"
    );
    assert!(
        store
            .due(at(t0(), 30_000), 100)
            .await
            .unwrap()
            .contains(&bad.user_id())
    );
    let c = claim(store, good.user_id(), now)
        .await
        .expect("the good ones meet");
    assert_eq!(
        c.partner.user_id(),
        also_good.user_id(),
        "never the older tickets in low standing"
    );
    store.release(&c, false, now).await.unwrap();
    store.leave(good.user_id()).await.unwrap();
    store.leave(also_good.user_id()).await.unwrap();
    assert!(
        claim(store, bad.user_id(), at(t0(), 30_500))
            .await
            .is_none(),
        "the other's hold is not over"
    );
    let c = claim(store, bad.user_id(), at(t0(), 31_000))
        .await
        .expect("both holds are over");
    assert_eq!(c.partner.user_id(), other_bad.user_id());
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
