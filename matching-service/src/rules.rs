//! The matching rule: tickets, criteria that widen with waiting time, and when two tickets
//! are compatible. Every backend applies exactly these functions (the Redis Lua scripts
//! mirror them line for line).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
pub use wire::api::auth::DEFAULT_WIDEN_EVERY_SECS;
use wire::api::auth::PublicProfile;
use wire::api::matching::{CriteriaInForce, InterestMode, RelaxedCriterion};
use wire::domain::{Gender, MAX_AGE, MIN_AGE};
pub use wire::domain::{MAX_FALLBACK_AFTER_SECS, MAX_WIDEN_EVERY_SECS};

/// What a user asked for, as validated at join time (before any widening).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Criteria {
    /// Genders wanted; empty means any.
    pub genders: Vec<Gender>,
    /// Youngest partner age asked for.
    pub min_age: u8,
    /// Oldest partner age asked for.
    pub max_age: u8,
    /// Normalised interests matched on, in the user's order.
    pub interests: Vec<String>,
    /// How strictly interests apply.
    pub interest_mode: InterestMode,
    /// Years the age range may widen on each side while waiting (0 = exact).
    pub age_widen_years: u8,
    /// Seconds of waiting per year of widening (at least 1).
    pub widen_every_secs: u32,
    /// After this many seconds, required interests fall back to preferred (`None` = never).
    pub fallback_after_secs: Option<u32>,
}

/// A user waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The user's public profile at join time (gender, age and interests are matched on).
    pub profile: PublicProfile,
    /// What the user asked for.
    pub criteria: Criteria,
    /// Users this user blocked or was blocked by (either direction), as known at join time.
    pub blocked: Vec<Uuid>,
    /// `Some` when the user is in low standing at join time (see [`LowStanding`]).
    #[serde(default)]
    pub low_standing: Option<LowStanding>,
    /// When the wait began (millisecond precision).
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
}

/// The reputation rule: a user against whom enough distinct users complained (blocked
/// them, or reported them in a report an operator did not dismiss) is in low standing.
/// Their tickets wait in a pool of their own, are paired only with each other, and not
/// before they have waited [`LowStanding::hold_secs`]: abusers meet abusers, later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LowStanding {
    /// Seconds a ticket in low standing waits before it may be paired at all.
    pub hold_secs: u32,
}

/// Milliseconds since the Unix epoch.
pub fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The instant `ms` milliseconds after the Unix epoch.
pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `t` truncated to whole milliseconds, the precision every backend keeps.
pub fn truncate_to_millis(t: OffsetDateTime) -> OffsetDateTime {
    from_millis(millis(t))
}

/// Small stable number of a gender (used in index keys).
pub fn gender_index(g: Gender) -> u8 {
    match g {
        Gender::Male => 0,
        Gender::Female => 1,
        Gender::Other => 2,
    }
}

/// Small stable number of an interest mode.
pub fn mode_index(m: InterestMode) -> u8 {
    match m {
        InterestMode::Required => 0,
        InterestMode::Preferred => 1,
        InterestMode::Ignored => 2,
    }
}

impl Ticket {
    /// The user.
    pub fn user_id(&self) -> Uuid {
        self.profile.id
    }

    /// Whole seconds waited at `now` (0 if `now` is before the join).
    pub fn waited_secs(&self, now: OffsetDateTime) -> i64 {
        (millis(now) - millis(self.joined_at)).max(0) / 1000
    }

    /// Years the age range has widened by at `now`.
    pub fn widened_years(&self, now: OffsetDateTime) -> u8 {
        let every = i64::from(self.criteria.widen_every_secs.max(1));
        let steps = self.waited_secs(now) / every;
        steps.min(i64::from(self.criteria.age_widen_years)) as u8
    }

    /// The partner age range in force at `now`, inclusive.
    pub fn age_range(&self, now: OffsetDateTime) -> (u8, u8) {
        let w = self.widened_years(now);
        let lo = self.criteria.min_age.saturating_sub(w).max(MIN_AGE);
        let hi = self.criteria.max_age.saturating_add(w).min(MAX_AGE);
        (lo, hi)
    }

    /// The interest mode in force at `now` (required falls back to preferred after the
    /// fallback delay).
    pub fn mode(&self, now: OffsetDateTime) -> InterestMode {
        match (
            self.criteria.interest_mode,
            self.criteria.fallback_after_secs,
        ) {
            (InterestMode::Required, Some(after)) if self.waited_secs(now) >= i64::from(after) => {
                InterestMode::Preferred
            }
            (mode, _) => mode,
        }
    }

    /// Whether the ticket is in low standing.
    pub fn is_low_standing(&self) -> bool {
        self.low_standing.is_some()
    }

    /// Whether a ticket in low standing is still inside its hold at `now` (never paired then).
    pub fn held(&self, now: OffsetDateTime) -> bool {
        self.low_standing
            .is_some_and(|l| self.waited_secs(now) < i64::from(l.hold_secs))
    }

    /// Whether this user wants to meet someone of gender `g`.
    pub fn wants(&self, g: Gender) -> bool {
        self.criteria.genders.is_empty() || self.criteria.genders.contains(&g)
    }

    /// The wanted genders, each once, in [`Gender::ALL`] order.
    pub fn wanted_genders(&self) -> Vec<Gender> {
        Gender::ALL.into_iter().filter(|g| self.wants(*g)).collect()
    }

    /// The criteria in force at `now`, after widening.
    pub fn in_force(&self, now: OffsetDateTime) -> CriteriaInForce {
        let (min_age, max_age) = self.age_range(now);
        CriteriaInForce {
            genders: self.criteria.genders.clone(),
            min_age,
            max_age,
            interests: self.criteria.interests.clone(),
            interest_mode: self.mode(now),
        }
    }

    /// The next instant after `now` at which the criteria in force change (a widening
    /// step or the interest fallback), if any.
    pub fn next_change(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let joined = millis(self.joined_at);
        let waited = self.waited_secs(now);
        let every = i64::from(self.criteria.widen_every_secs.max(1));
        let steps = waited / every;
        let mut next: Option<i64> = None;
        if steps < i64::from(self.criteria.age_widen_years) {
            next = Some(joined + (steps + 1) * every * 1000);
        }
        if let (InterestMode::Required, Some(after)) = (
            self.criteria.interest_mode,
            self.criteria.fallback_after_secs,
        ) && waited < i64::from(after)
        {
            let at = joined + i64::from(after) * 1000;
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        if let Some(l) = self.low_standing
            && waited < i64::from(l.hold_secs)
        {
            let at = joined + i64::from(l.hold_secs) * 1000;
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        next.map(from_millis)
    }

    /// A fingerprint of what the ticket asks and offers: joining again with the same one
    /// keeps the original waiting time.
    pub fn fingerprint(&self) -> String {
        let p = &self.profile;
        let standing = self.is_low_standing();
        serde_json::to_string(&(p.gender, p.age, &p.interests, &self.criteria, standing))
            .unwrap_or_default()
    }
}

/// Interests of `a` that `b` also has, in `a`'s order.
pub fn shared_interests(a: &Ticket, b: &Ticket) -> Vec<String> {
    a.criteria
        .interests
        .iter()
        .filter(|i| b.criteria.interests.contains(i))
        .cloned()
        .collect()
}

/// Whether `a` accepts `b` at `now` on `a`'s side alone: the same standing with `b` out
/// of its hold, gender, age range in force, required interests, and `a`'s block list.
pub fn accepts(a: &Ticket, b: &Ticket, shared: usize, now: OffsetDateTime) -> bool {
    let (lo, hi) = a.age_range(now);
    a.is_low_standing() == b.is_low_standing()
        && !b.held(now)
        && a.wants(b.profile.gender)
        && (lo..=hi).contains(&b.profile.age)
        && (a.mode(now) != InterestMode::Required || shared > 0)
        && !a.blocked.contains(&b.user_id())
}

/// Whether `a` and `b` may be paired at `now`: each accepts the other (cooldown is the
/// store's business). The shared interest count is returned when they may.
pub fn compatible(a: &Ticket, b: &Ticket, now: OffsetDateTime) -> Option<usize> {
    if a.user_id() == b.user_id() {
        return None;
    }
    let shared = shared_interests(a, b).len();
    (accepts(a, b, shared, now) && accepts(b, a, shared, now)).then_some(shared)
}

/// The criteria of `user` that had to be relaxed to accept `partner` at `now`: the age
/// range when the partner's age is outside the range first asked, the interests when
/// they were required, had fallen back, and none is shared.
pub fn relaxed(user: &Ticket, partner: &Ticket, now: OffsetDateTime) -> Vec<RelaxedCriterion> {
    let mut out = Vec::new();
    let age = partner.profile.age;
    if !(user.criteria.min_age..=user.criteria.max_age).contains(&age) {
        out.push(RelaxedCriterion::AgeRange);
    }
    if user.criteria.interest_mode == InterestMode::Required
        && user.mode(now) != InterestMode::Required
        && shared_interests(user, partner).is_empty()
    {
        out.push(RelaxedCriterion::Interests);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn ticket(gender: Gender, age: u8, criteria: Criteria) -> Ticket {
        Ticket {
            profile: PublicProfile {
                id: Uuid::new_v4(),
                display_name: "x".to_owned(),
                gender,
                age,
                interests: criteria.interests.clone(),
            },
            criteria,
            blocked: vec![],
            low_standing: None,
            joined_at: from_millis(1_000_000),
        }
    }

    fn criteria(min_age: u8, max_age: u8) -> Criteria {
        Criteria {
            genders: vec![],
            min_age,
            max_age,
            interests: vec![],
            interest_mode: InterestMode::Preferred,
            age_widen_years: 0,
            widen_every_secs: 10,
            fallback_after_secs: None,
        }
    }

    #[test]
    fn the_age_range_widens_one_year_per_step_up_to_the_limit() {
        let mut c = criteria(25, 30);
        c.age_widen_years = 3;
        let t = ticket(Gender::Male, 27, c);
        let at = |s: i64| t.joined_at + Duration::seconds(s);
        assert_eq!(t.age_range(at(9)), (25, 30));
        assert_eq!(t.age_range(at(10)), (24, 31));
        assert_eq!(t.age_range(at(25)), (23, 32));
        assert_eq!(t.age_range(at(10_000)), (22, 33));
        assert_eq!(t.next_change(at(25)), Some(at(30)));
        assert_eq!(t.next_change(at(30)), None);
    }

    #[test]
    fn widening_never_goes_below_18_or_above_120() {
        let mut c = criteria(19, 119);
        c.age_widen_years = 10;
        let t = ticket(Gender::Male, 27, c);
        assert_eq!(t.age_range(t.joined_at + Duration::hours(1)), (18, 120));
    }

    #[test]
    fn required_interests_fall_back_after_the_delay() {
        let mut c = criteria(18, 99);
        c.interests = vec!["rust".to_owned()];
        c.interest_mode = InterestMode::Required;
        c.fallback_after_secs = Some(30);
        let t = ticket(Gender::Male, 27, c);
        assert_eq!(
            t.mode(t.joined_at + Duration::seconds(29)),
            InterestMode::Required
        );
        assert_eq!(
            t.mode(t.joined_at + Duration::seconds(30)),
            InterestMode::Preferred
        );
        assert_eq!(
            t.next_change(t.joined_at),
            Some(t.joined_at + Duration::seconds(30))
        );
    }

    #[test]
    fn compatibility_needs_both_sides() {
        let mut wants_women = criteria(20, 30);
        wants_women.genders = vec![Gender::Female];
        let a = ticket(Gender::Male, 25, wants_women);
        let mut wants_men = criteria(20, 30);
        wants_men.genders = vec![Gender::Male];
        let b = ticket(Gender::Female, 22, wants_men.clone());
        assert_eq!(compatible(&a, &b, a.joined_at), Some(0));
        let too_old = ticket(Gender::Female, 31, wants_men);
        assert_eq!(compatible(&a, &too_old, a.joined_at), None);
        let c = ticket(Gender::Female, 22, criteria(26, 30));
        assert_eq!(compatible(&a, &c, a.joined_at), None, "c finds a too young");
    }

    #[test]
    fn a_blocked_pair_is_never_compatible_in_either_direction() {
        let a = ticket(Gender::Male, 25, criteria(18, 40));
        let mut b = ticket(Gender::Female, 25, criteria(18, 40));
        b.blocked.push(a.user_id());
        assert_eq!(compatible(&a, &b, a.joined_at), None);
        assert_eq!(compatible(&b, &a, a.joined_at), None);
    }

    #[test]
    fn low_standing_pairs_only_with_low_standing_and_only_after_the_hold() {
        let hold = Some(LowStanding { hold_secs: 60 });
        let good = ticket(Gender::Male, 25, criteria(18, 40));
        let mut bad = ticket(Gender::Female, 25, criteria(18, 40));
        bad.low_standing = hold;
        let mut other_bad = ticket(Gender::Male, 30, criteria(18, 40));
        other_bad.low_standing = hold;
        let at = |s: i64| bad.joined_at + Duration::seconds(s);
        assert_eq!(
            compatible(&good, &bad, at(3600)),
            None,
            "never across standings"
        );
        assert_eq!(compatible(&bad, &good, at(3600)), None);
        assert!(bad.held(at(59)));
        assert_eq!(
            compatible(&bad, &other_bad, at(59)),
            None,
            "inside the hold"
        );
        assert_eq!(compatible(&bad, &other_bad, at(60)), Some(0));
        assert_eq!(bad.next_change(at(10)), Some(at(60)));
        assert_eq!(bad.next_change(at(60)), None);
        assert_ne!(bad.fingerprint(), {
            let mut b = bad.clone();
            b.low_standing = None;
            b.fingerprint()
        });
    }

    #[test]
    fn relaxed_names_only_what_made_the_match_possible() {
        let mut c = criteria(25, 30);
        c.age_widen_years = 5;
        c.interests = vec!["rust".to_owned()];
        c.interest_mode = InterestMode::Required;
        c.fallback_after_secs = Some(5);
        let a = ticket(Gender::Male, 27, c);
        let b = ticket(Gender::Female, 33, criteria(18, 40));
        let later = a.joined_at + Duration::seconds(60);
        assert_eq!(compatible(&a, &b, later), Some(0));
        assert_eq!(
            relaxed(&a, &b, later),
            vec![RelaxedCriterion::AgeRange, RelaxedCriterion::Interests]
        );
        assert!(relaxed(&b, &a, later).is_empty());
    }
}
