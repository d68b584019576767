//! The queue in memory: the embedded default, one process only. Same indexes and search
//! as the Redis backend, under one mutex (never held across an await).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::matching::{InterestMode, MatchInfo};

use super::{AGE_BAND, Claim, Confirmation, QueueStore, SearchLimits, StoreError, TicketState};
use crate::rules::{Ticket, compatible, gender_index, millis, truncate_to_millis};

/// Index key of an age bucket: (low standing, gender, wanted gender, age band).
type BucketKey = (bool, u8, u8, u8);
/// Index key of an interest list: (interest, low standing, gender, wanted gender).
type InterestKey = (String, bool, u8, u8);
/// Entries of an index, oldest first.
type Entries = BTreeSet<(i64, Uuid)>;

#[derive(Debug)]
struct Entry {
    ticket: Ticket,
    fingerprint: String,
    /// `(match_id, claimed_at)` while claimed.
    claim: Option<(Uuid, i64)>,
}

#[derive(Debug, Default)]
struct Inner {
    tickets: HashMap<Uuid, Entry>,
    buckets: HashMap<BucketKey, Entries>,
    interests: HashMap<InterestKey, Entries>,
    waiting: Entries,
    due: Entries,
    due_at: HashMap<Uuid, i64>,
    claimed: Entries,
    /// user → partner → cooldown end (ms).
    recent: HashMap<Uuid, HashMap<Uuid, i64>>,
    last: HashMap<Uuid, MatchInfo>,
}

/// The in-memory queue.
#[derive(Debug, Default)]
pub struct MemoryQueueStore {
    inner: Mutex<Inner>,
    limits: SearchLimits,
}

impl MemoryQueueStore {
    /// An empty queue with the default search limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty queue with `limits`.
    pub fn with_limits(limits: SearchLimits) -> Self {
        Self {
            inner: Mutex::default(),
            limits,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // breaks memory safety; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn bucket_keys(t: &Ticket) -> Vec<BucketKey> {
    let (pool, g) = (t.is_low_standing(), gender_index(t.profile.gender));
    t.wanted_genders()
        .into_iter()
        .map(|x| (pool, g, gender_index(x), t.profile.age / AGE_BAND))
        .collect()
}

fn interest_keys(t: &Ticket) -> Vec<InterestKey> {
    let (pool, g) = (t.is_low_standing(), gender_index(t.profile.gender));
    let wanted = t.wanted_genders();
    t.criteria
        .interests
        .iter()
        .flat_map(|i| {
            wanted
                .iter()
                .map(move |x| (i.clone(), pool, g, gender_index(*x)))
        })
        .collect()
}

impl Inner {
    fn index(&mut self, t: &Ticket) {
        let e = (millis(t.joined_at), t.user_id());
        for k in bucket_keys(t) {
            self.buckets.entry(k).or_default().insert(e);
        }
        for k in interest_keys(t) {
            self.interests.entry(k).or_default().insert(e);
        }
        self.waiting.insert(e);
    }

    fn unindex(&mut self, t: &Ticket) {
        let e = (millis(t.joined_at), t.user_id());
        for k in bucket_keys(t) {
            if let Some(set) = self.buckets.get_mut(&k) {
                set.remove(&e);
                if set.is_empty() {
                    self.buckets.remove(&k);
                }
            }
        }
        for k in interest_keys(t) {
            if let Some(set) = self.interests.get_mut(&k) {
                set.remove(&e);
                if set.is_empty() {
                    self.interests.remove(&k);
                }
            }
        }
        self.waiting.remove(&e);
    }

    fn set_due(&mut self, user: Uuid, at: i64) {
        if let Some(old) = self.due_at.insert(user, at) {
            self.due.remove(&(old, user));
        }
        self.due.insert((at, user));
    }

    fn clear_due(&mut self, user: Uuid) {
        if let Some(old) = self.due_at.remove(&user) {
            self.due.remove(&(old, user));
        }
    }

    fn clear_claim(&mut self, user: Uuid) {
        if let Some(entry) = self.tickets.get_mut(&user)
            && let Some((_, at)) = entry.claim.take()
        {
            self.claimed.remove(&(at, user));
        }
    }

    /// Removes the user's ticket entirely.
    fn remove(&mut self, user: Uuid) -> bool {
        self.clear_claim(user);
        self.clear_due(user);
        match self.tickets.remove(&user) {
            Some(entry) => {
                self.unindex(&entry.ticket);
                true
            }
            None => false,
        }
    }

    /// Puts a claimed ticket back in the queue.
    fn requeue(&mut self, user: Uuid, now: i64) {
        self.clear_claim(user);
        if let Some(entry) = self.tickets.get(&user) {
            let ticket = entry.ticket.clone();
            self.index(&ticket);
            self.set_due(user, now);
        }
    }

    fn check(
        &self,
        seeker: &Ticket,
        recent: &HashSet<Uuid>,
        cand: Uuid,
        now: OffsetDateTime,
    ) -> Option<usize> {
        if recent.contains(&cand) {
            return None;
        }
        let entry = self.tickets.get(&cand)?;
        compatible(seeker, &entry.ticket, now)
    }

    /// The search shared with the Redis script: see the module docs of [`super`].
    fn find(
        &self,
        seeker: &Ticket,
        now: OffsetDateTime,
        limits: SearchLimits,
    ) -> Option<(Uuid, usize)> {
        if seeker.held(now) {
            return None;
        }
        let me = seeker.user_id();
        let pool = seeker.is_low_standing();
        let now_ms = millis(now);
        let recent: HashSet<Uuid> = self
            .recent
            .get(&me)
            .map(|m| {
                m.iter()
                    .filter(|(_, until)| **until > now_ms)
                    .map(|(p, _)| *p)
                    .collect()
            })
            .unwrap_or_default();
        let sg = gender_index(seeker.profile.gender);
        let wanted: Vec<u8> = seeker
            .wanted_genders()
            .into_iter()
            .map(gender_index)
            .collect();

        if seeker.mode(now) != InterestMode::Ignored && !seeker.criteria.interests.is_empty() {
            let mut seen = HashSet::new();
            let mut best: Option<(usize, i64, Uuid)> = None;
            for interest in &seeker.criteria.interests {
                for g in &wanted {
                    let Some(list) = self.interests.get(&(interest.clone(), pool, *g, sg)) else {
                        continue;
                    };
                    for &(score, cand) in list.iter().take(limits.interest_scan) {
                        if cand == me || !seen.insert(cand) {
                            continue;
                        }
                        let Some(shared) = self.check(seeker, &recent, cand, now) else {
                            continue;
                        };
                        let better = match best {
                            None => shared > 0,
                            Some((bs, bscore, _)) => {
                                shared > bs || (shared == bs && score < bscore)
                            }
                        };
                        if better {
                            best = Some((shared, score, cand));
                        }
                    }
                }
            }
            if let Some((shared, _, cand)) = best {
                return Some((cand, shared));
            }
        }

        let (lo, hi) = seeker.age_range(now);
        let mut heads: Vec<
            std::iter::Peekable<std::collections::btree_set::Iter<'_, (i64, Uuid)>>,
        > = Vec::new();
        for g in &wanted {
            for band in lo / AGE_BAND..=hi / AGE_BAND {
                if let Some(list) = self.buckets.get(&(pool, *g, sg, band)) {
                    heads.push(list.iter().peekable());
                }
            }
        }
        for _ in 0..limits.merge_scan {
            let mut pick: Option<(usize, i64)> = None;
            for (i, head) in heads.iter_mut().enumerate() {
                if let Some(&&(score, _)) = head.peek()
                    && pick.is_none_or(|(_, s)| score < s)
                {
                    pick = Some((i, score));
                }
            }
            let (i, _) = pick?;
            let &(_, cand) = heads[i].next()?;
            if cand == me {
                continue;
            }
            if let Some(shared) = self.check(seeker, &recent, cand, now) {
                return Some((cand, shared));
            }
        }
        None
    }
}

fn next_due(ticket: &Ticket, now: OffsetDateTime, recheck: Duration) -> i64 {
    let recheck_at = millis(now) + recheck.as_millis() as i64;
    ticket
        .next_change(now)
        .map_or(recheck_at, |t| millis(t).min(recheck_at))
}

#[async_trait]
impl QueueStore for MemoryQueueStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn join(&self, mut ticket: Ticket, now: OffsetDateTime) -> Result<Ticket, StoreError> {
        ticket.joined_at = truncate_to_millis(ticket.joined_at);
        let user = ticket.user_id();
        let fingerprint = ticket.fingerprint();
        let mut inner = self.lock();
        if let Some(old) = inner.tickets.get(&user)
            && old.fingerprint == fingerprint
        {
            ticket.joined_at = old.ticket.joined_at;
        }
        inner.remove(user);
        inner.last.remove(&user);
        inner.index(&ticket);
        inner.set_due(user, millis(now));
        inner.tickets.insert(
            user,
            Entry {
                ticket: ticket.clone(),
                fingerprint,
                claim: None,
            },
        );
        Ok(ticket)
    }

    async fn leave(&self, user_id: Uuid) -> Result<bool, StoreError> {
        Ok(self.lock().remove(user_id))
    }

    async fn ticket(&self, user_id: Uuid) -> Result<Option<(Ticket, TicketState)>, StoreError> {
        Ok(self.lock().tickets.get(&user_id).map(|e| {
            let state = if e.claim.is_some() {
                TicketState::Claimed
            } else {
                TicketState::Waiting
            };
            (e.ticket.clone(), state)
        }))
    }

    async fn claim(
        &self,
        user_id: Uuid,
        match_id: Uuid,
        now: OffsetDateTime,
        recheck: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        let mut inner = self.lock();
        let seeker = match inner.tickets.get(&user_id) {
            Some(e) if e.claim.is_none() => e.ticket.clone(),
            _ => return Ok(None),
        };
        let Some((partner_id, shared)) = inner.find(&seeker, now, self.limits) else {
            inner.set_due(user_id, next_due(&seeker, now, recheck));
            return Ok(None);
        };
        let partner = inner.tickets[&partner_id].ticket.clone();
        let now_ms = millis(now);
        for t in [&seeker, &partner] {
            let user = t.user_id();
            inner.unindex(t);
            inner.clear_due(user);
            inner.claimed.insert((now_ms, user));
            if let Some(e) = inner.tickets.get_mut(&user) {
                e.claim = Some((match_id, now_ms));
            }
        }
        Ok(Some(Claim {
            match_id,
            seeker,
            partner,
            shared,
        }))
    }

    async fn confirm(
        &self,
        claim: &Claim,
        seeker_info: &MatchInfo,
        partner_info: &MatchInfo,
        cooldown: Duration,
        now: OffsetDateTime,
    ) -> Result<Confirmation, StoreError> {
        let mut inner = self.lock();
        let a = claim.seeker.user_id();
        let b = claim.partner.user_id();
        let withdrawn: Vec<Uuid> = [a, b]
            .into_iter()
            .filter(|u| {
                inner
                    .tickets
                    .get(u)
                    .and_then(|e| e.claim)
                    .is_none_or(|(mid, _)| mid != claim.match_id)
            })
            .collect();
        if !withdrawn.is_empty() {
            return Ok(Confirmation::Withdrawn(withdrawn));
        }
        inner.remove(a);
        inner.remove(b);
        inner.last.insert(a, seeker_info.clone());
        inner.last.insert(b, partner_info.clone());
        if !cooldown.is_zero() {
            let now_ms = millis(now);
            let until = now_ms + cooldown.as_millis() as i64;
            for (u, p) in [(a, b), (b, a)] {
                let recent = inner.recent.entry(u).or_default();
                recent.retain(|_, end| *end > now_ms);
                recent.insert(p, until);
            }
        }
        Ok(Confirmation::Confirmed)
    }

    async fn release(
        &self,
        claim: &Claim,
        block_each_other: bool,
        now: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut inner = self.lock();
        let a = claim.seeker.user_id();
        let b = claim.partner.user_id();
        let mut released = Vec::new();
        for (u, other) in [(a, b), (b, a)] {
            let Some(entry) = inner.tickets.get_mut(&u) else {
                continue;
            };
            if entry.claim.is_none_or(|(mid, _)| mid != claim.match_id) {
                continue;
            }
            if block_each_other && !entry.ticket.blocked.contains(&other) {
                entry.ticket.blocked.push(other);
            }
            inner.requeue(u, millis(now));
            released.push(u);
        }
        Ok(released)
    }

    async fn release_stale(
        &self,
        claimed_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let before = millis(claimed_before);
        let stale: Vec<Uuid> = inner
            .claimed
            .iter()
            .take_while(|(at, _)| *at < before)
            .map(|(_, u)| *u)
            .collect();
        for u in &stale {
            inner.requeue(*u, millis(now));
        }
        Ok(stale.len())
    }

    async fn due(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<Uuid>, StoreError> {
        let now_ms = millis(now);
        Ok(self
            .lock()
            .due
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit)
            .map(|(_, u)| *u)
            .collect())
    }

    async fn last_match(&self, user_id: Uuid) -> Result<Option<MatchInfo>, StoreError> {
        Ok(self.lock().last.get(&user_id).cloned())
    }

    async fn clear_last_match(&self, user_id: Uuid) -> Result<(), StoreError> {
        self.lock().last.remove(&user_id);
        Ok(())
    }

    async fn waiting_count(&self) -> Result<u64, StoreError> {
        Ok(self.lock().waiting.len() as u64)
    }
}
