//! The queue behind a trait, [`QueueStore`], with one implementation per backend.
//!
//! - [`memory`] — in memory (the embedded default).
//! - [`redis`] — Redis, atomic through Lua scripts, shared by several instances.
//! - `conformance` (tests, or the `conformance` feature) — the one suite every implementation must pass.
//!
//! Both backends run the same search (see [`SearchLimits`]): first the candidates that share
//! an interest with the seeker (indexed per interest, partner gender and wanted gender,
//! oldest first), ranked by shared interests then waiting time; when none fits, the oldest
//! compatible ticket among the buckets of the seeker's wanted genders and age range
//! (indexed per gender, wanted gender and age, oldest first), merged by join time. The
//! cost of a search is bounded by the limits, not by the length of the queue.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::matching::MatchInfo;

use crate::rules::Ticket;

/// Years of age per age bucket: a search merges the buckets overlapping the seeker's age
/// range (entries outside it are refused like any incompatible candidate).
pub const AGE_BAND: u8 = 5;

/// How much of the indexes one search may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchLimits {
    /// Oldest entries read from each (interest, gender) list in the interest phase.
    pub interest_scan: usize,
    /// Entries examined, oldest first across the age buckets, in the waiting-time phase.
    pub merge_scan: usize,
}

impl Default for SearchLimits {
    fn default() -> Self {
        Self {
            interest_scan: 8,
            merge_scan: 64,
        }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or did not answer in time.
    #[error("the queue backend is unavailable: {0}")]
    Unavailable(String),
    /// Any other backend failure (a bug or corrupt data).
    #[error("queue backend error: {0}")]
    Backend(String),
}

/// Where a stored ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketState {
    /// In the queue, searchable.
    Waiting,
    /// Taken out by a matcher while the chat is being created.
    Claimed,
}

/// A pair taken out of the queue by [`QueueStore::claim`], not yet confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The match id (also the claim's identity in the store).
    pub match_id: Uuid,
    /// The ticket that searched.
    pub seeker: Ticket,
    /// The ticket it found.
    pub partner: Ticket,
    /// Interests both share.
    pub shared: usize,
}

/// Answer of [`QueueStore::confirm`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// Both were still claimed: the match is recorded and both tickets are gone.
    Confirmed,
    /// These users left or joined again meanwhile; nothing was recorded and the others
    /// are still claimed (release them).
    Withdrawn(Vec<Uuid>),
}

/// The waiting queue.
///
/// Every operation that depends on time takes `now`, so that tests control widening
/// without sleeping. Multi-step operations are atomic: two matchers on one backend never
/// claim a ticket twice, and a claimed pair either becomes a match or goes back whole.
#[async_trait]
pub trait QueueStore: Send + Sync + std::fmt::Debug {
    /// Whether the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Puts the user's ticket in the queue, replacing any ticket of theirs (waiting or
    /// claimed: a claim in flight is abandoned). When the replaced ticket had the same
    /// [`Ticket::fingerprint`], the original waiting time is kept. Clears the user's last
    /// match. Returns the ticket as stored (its `joined_at` may be the earlier one).
    async fn join(&self, ticket: Ticket, now: OffsetDateTime) -> Result<Ticket, StoreError>;

    /// Removes the user's ticket, waiting or claimed; whether there was one.
    async fn leave(&self, user_id: Uuid) -> Result<bool, StoreError>;

    /// The user's ticket and its state.
    async fn ticket(&self, user_id: Uuid) -> Result<Option<(Ticket, TicketState)>, StoreError>;

    /// Finds the best partner for the user's waiting ticket at `now` and takes both
    /// tickets out of the queue under `match_id`. When none is found, the ticket is
    /// scheduled for another search at its next widening or after `recheck`.
    async fn claim(
        &self,
        user_id: Uuid,
        match_id: Uuid,
        now: OffsetDateTime,
        recheck: Duration,
    ) -> Result<Option<Claim>, StoreError>;

    /// Turns a claim into a match when both tickets are still claimed under it: deletes
    /// both, records each user's [`MatchInfo`] and, for `cooldown`, that they were
    /// partners.
    async fn confirm(
        &self,
        claim: &Claim,
        seeker_info: &MatchInfo,
        partner_info: &MatchInfo,
        cooldown: Duration,
        now: OffsetDateTime,
    ) -> Result<Confirmation, StoreError>;

    /// Puts the tickets of a claim that are still claimed under it back in the queue
    /// with their original waiting time; with `block_each_other` they will never be
    /// paired together again. Returns the users put back.
    async fn release(
        &self,
        claim: &Claim,
        block_each_other: bool,
        now: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Puts back every ticket claimed before `claimed_before` (its matcher died).
    async fn release_stale(
        &self,
        claimed_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError>;

    /// Users whose ticket is due for a search at `now`, most overdue first.
    async fn due(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<Uuid>, StoreError>;

    /// The user's latest match, until they join again or it is cleared.
    async fn last_match(&self, user_id: Uuid) -> Result<Option<MatchInfo>, StoreError>;

    /// Forgets the user's latest match.
    async fn clear_last_match(&self, user_id: Uuid) -> Result<(), StoreError>;

    /// Tickets waiting (not claimed).
    async fn waiting_count(&self) -> Result<u64, StoreError>;
}

/// The current time truncated to milliseconds.
pub fn now() -> OffsetDateTime {
    crate::rules::truncate_to_millis(OffsetDateTime::now_utc())
}
