//! The queue flows: joining (with validation and "Next"), status, and turning a claimed
//! pair into a match — chat creation at message-service, confirmation in the store, the
//! `matched` event through ws-manager — plus the background matcher loop.

use service_kit::error::ErrorCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use uuid::Uuid;
use wire::api::auth::{GetMatchingProfile, MatchingProfile};
use wire::api::matching::{InterestMode, JoinQueueRequest, MatchInfo, QueueState, QueueStatus};
use wire::api::message::{
    Chat, CreateChat, CreateChatRequest, EndChatInternal, EndChatRequest, GetChatInternal,
    GetUserBlocks, UserBlocksQuery, UserChats, UserChatsQuery,
};
use wire::api::wsmanager::{Deliver, DeliverRequest};
use wire::domain::{MAX_AGE, MIN_AGE, normalize_interests};
use wire::protocol::ServerFrame;

use crate::error::MatchError;
use crate::rules::{
    Criteria, MAX_FALLBACK_AFTER_SECS, MAX_WIDEN_EVERY_SECS, Ticket, relaxed, shared_interests,
};
use crate::state::AppState;
use crate::store::{Claim, Confirmation};

/// Claims one search may go through when chats cannot be created (blocked pairs, partners
/// who left meanwhile) before it gives up until the next sweep.
const MAX_ATTEMPTS: usize = 4;

fn age_field(field: &'static str, age: Option<u8>) -> Result<(), MatchError> {
    match age {
        Some(a) if !(MIN_AGE..=MAX_AGE).contains(&a) => Err(MatchError::validation(
            field,
            ErrorCode::AgeOutOfRange,
            format!("ages must be between {MIN_AGE} and {MAX_AGE}"),
        )),
        _ => Ok(()),
    }
}

/// Checks the fields of a join request that do not depend on the saved preferences.
pub fn validate_request(req: &JoinQueueRequest) -> Result<Option<Vec<String>>, MatchError> {
    age_field("min_age", req.min_age)?;
    age_field("max_age", req.max_age)?;
    if let (Some(min), Some(max)) = (req.min_age, req.max_age)
        && min > max
    {
        return Err(MatchError::validation(
            "min_age",
            ErrorCode::InvalidAgeRange,
            "min_age must not be above max_age",
        ));
    }
    if req
        .age_widen_years
        .is_some_and(|years| years > MAX_AGE - MIN_AGE)
    {
        return Err(MatchError::validation(
            "age_widen_years",
            ErrorCode::InvalidAgeWiden,
            format!("age_widen_years must be at most {}", MAX_AGE - MIN_AGE),
        ));
    }
    if let Some(every) = req.widen_every_secs
        && !(1..=MAX_WIDEN_EVERY_SECS).contains(&every)
    {
        return Err(MatchError::validation(
            "widen_every_secs",
            ErrorCode::InvalidWidenEvery,
            format!("widen_every_secs must be between 1 and {MAX_WIDEN_EVERY_SECS}"),
        ));
    }
    if req
        .fallback_after_secs
        .is_some_and(|s| s > MAX_FALLBACK_AFTER_SECS)
    {
        return Err(MatchError::validation(
            "fallback_after_secs",
            ErrorCode::InvalidFallback,
            format!("fallback_after_secs must be at most {MAX_FALLBACK_AFTER_SECS}"),
        ));
    }
    req.interests
        .as_deref()
        .map(normalize_interests)
        .transpose()
        .map_err(|e| MatchError::validation("interests", e.code(), e.to_string()))
}

/// The criteria of a join: the request, else the saved preferences; interests from the
/// request, else the saved preference interests, else the profile's.
pub fn criteria_for(req: &JoinQueueRequest, who: &MatchingProfile) -> Result<Criteria, MatchError> {
    let interests = validate_request(req)?;
    let prefs = &who.preferences;
    let mut genders = req.genders.clone().unwrap_or_else(|| prefs.genders.clone());
    genders.sort();
    genders.dedup();
    let min_age = req.min_age.unwrap_or(prefs.min_age).clamp(MIN_AGE, MAX_AGE);
    let max_age = req.max_age.unwrap_or(prefs.max_age).clamp(MIN_AGE, MAX_AGE);
    if min_age > max_age {
        let field = if req.min_age.is_some() {
            "min_age"
        } else {
            "max_age"
        };
        return Err(MatchError::validation(
            field,
            ErrorCode::InvalidAgeRange,
            "min_age must not be above max_age (saved preferences fill absent fields)",
        ));
    }
    let interests = match interests {
        Some(i) => i,
        None if !prefs.interests.is_empty() => prefs.interests.clone(),
        None => who.profile.interests.clone(),
    };
    // Absent fields come from the saved preferences.
    let interest_mode = req.interest_mode.unwrap_or(prefs.interest_mode);
    if interest_mode == InterestMode::Required && interests.is_empty() {
        return Err(MatchError::validation(
            "interests",
            ErrorCode::InterestsRequired,
            "required interests need at least one interest",
        ));
    }
    Ok(Criteria {
        genders,
        min_age,
        max_age,
        interests,
        interest_mode,
        age_widen_years: req
            .age_widen_years
            .unwrap_or(prefs.age_widen_years)
            .min(MAX_AGE - MIN_AGE),
        widen_every_secs: req
            .widen_every_secs
            .unwrap_or(prefs.widen_every_secs)
            .clamp(1, MAX_WIDEN_EVERY_SECS),
        fallback_after_secs: req
            .fallback_after_secs
            .or(prefs.fallback_after_secs)
            .map(|secs| secs.min(MAX_FALLBACK_AFTER_SECS)),
    })
}

/// `POST /v1/queue`: ends the user's active chats ("Next"), builds the ticket from the
/// request and the saved profile, blocks both ways, queues it and searches at once.
pub async fn join(
    state: &AppState,
    user: Uuid,
    req: &JoinQueueRequest,
) -> Result<QueueStatus, MatchError> {
    validate_request(req)?;
    let peers = state.peers();
    let who = peers.auth.call::<GetMatchingProfile>(user, ()).await?;
    let criteria = criteria_for(req, &who)?;
    let active_only = UserChatsQuery {
        active: true,
        limit: None,
    };
    let active = peers.message.call::<UserChats>(user, active_only).await?;
    for chat in active {
        peers
            .message
            .call::<EndChatInternal>(chat.id, EndChatRequest { user_id: user })
            .await?;
    }
    let now = state.now();
    let reputation = state.config().reputation;
    let window = time::Duration::try_from(reputation.report_window).unwrap_or(time::Duration::ZERO);
    let query = UserBlocksQuery {
        reports_since: Some((now - window).unix_timestamp()),
    };
    let blocks = peers.message.call::<GetUserBlocks>(user, query).await?;
    let low_standing = reputation.standing(&blocks);
    let mut blocked: Vec<Uuid> = blocks
        .blocked
        .into_iter()
        .chain(blocks.blocked_by)
        .collect();
    blocked.sort();
    blocked.dedup();
    let ticket = Ticket {
        profile: who.profile,
        criteria,
        blocked,
        low_standing,
        joined_at: now,
    };
    let ticket = state.store().join(ticket, now).await?;
    metrics::counter!("matching_joins_total").increment(1);
    match try_match(state, user).await {
        Ok(Some(info)) => return Ok(matched_status(info)),
        Ok(None) => {}
        // The ticket is queued; the matcher retries it.
        Err(err) => tracing::warn!(error = %err, "search at join failed"),
    }
    state.wake_matcher();
    match state.store().ticket(user).await? {
        Some((t, _)) => Ok(waiting_status(&t, state.now())),
        // Matched meanwhile by another search, or left.
        None => status(state, user).await,
    }
    .inspect(|s| {
        tracing::debug!(waiting_since = %ticket.joined_at, state = ?s.state, "joined the queue");
    })
}

fn waiting_status(ticket: &Ticket, now: OffsetDateTime) -> QueueStatus {
    QueueStatus {
        state: QueueState::Waiting,
        waiting_since: Some(ticket.joined_at),
        criteria: Some(ticket.in_force(now)),
        matched: None,
    }
}

fn matched_status(info: MatchInfo) -> QueueStatus {
    QueueStatus {
        state: QueueState::Matched,
        waiting_since: None,
        criteria: None,
        matched: Some(info),
    }
}

/// `GET /v1/queue`: waiting (with the criteria in force now), matched (while the chat of
/// the latest match is live) or idle.
pub async fn status(state: &AppState, user: Uuid) -> Result<QueueStatus, MatchError> {
    if let Some((ticket, _)) = state.store().ticket(user).await? {
        return Ok(waiting_status(&ticket, state.now()));
    }
    let idle = QueueStatus {
        state: QueueState::Idle,
        waiting_since: None,
        criteria: None,
        matched: None,
    };
    let Some(info) = state.store().last_match(user).await? else {
        return Ok(idle);
    };
    match state
        .peers()
        .message
        .call::<GetChatInternal>(info.chat_id, ())
        .await
    {
        Ok(chat) if chat.ended_at.is_some() => Ok(idle),
        Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => Ok(idle),
        Ok(_) => Ok(matched_status(info)),
        Err(err) => {
            // Without message-service the latest match is the best answer there is.
            tracing::warn!(error = %err, "cannot check whether the matched chat is live");
            Ok(matched_status(info))
        }
    }
}

/// `DELETE /v1/queue` and the internal drop: removes the ticket at once, also from a
/// claim in flight (whose chat is then ended).
pub async fn leave(state: &AppState, user: Uuid) -> Result<bool, MatchError> {
    let removed = state.store().leave(user).await?;
    if removed {
        metrics::counter!("matching_leaves_total").increment(1);
    }
    Ok(removed)
}

enum Committed {
    Matched(MatchInfo),
    /// The seeker is back in the queue and may search again.
    Retry,
    /// The seeker is no longer waiting.
    SeekerGone,
}

/// Searches a partner for the user's waiting ticket and, when one is claimed, makes the
/// match. `None` when there is no partner now (or the user is not waiting).
pub async fn try_match(state: &AppState, user: Uuid) -> Result<Option<MatchInfo>, MatchError> {
    for _ in 0..MAX_ATTEMPTS {
        let now = state.now();
        let claim = state
            .store()
            .claim(user, Uuid::now_v7(), now, state.config().recheck)
            .await?;
        let Some(claim) = claim else {
            return Ok(None);
        };
        match commit(state, &claim, now).await? {
            Committed::Matched(info) => return Ok(Some(info)),
            Committed::Retry => {}
            Committed::SeekerGone => return Ok(None),
        }
    }
    Ok(None)
}

fn info_for(
    user: &Ticket,
    partner: &Ticket,
    chat: &Chat,
    match_id: Uuid,
    now: OffsetDateTime,
) -> MatchInfo {
    MatchInfo {
        match_id,
        chat_id: chat.id,
        partner: partner.profile.clone(),
        shared_interests: shared_interests(user, partner),
        relaxed: relaxed(user, partner, now),
        matched_at: now,
    }
}

async fn release(
    state: &AppState,
    claim: &Claim,
    block: bool,
    now: OffsetDateTime,
) -> Result<Committed, MatchError> {
    let back = state.store().release(claim, block, now).await?;
    state.wake_matcher();
    Ok(if back.contains(&claim.seeker.user_id()) {
        Committed::Retry
    } else {
        Committed::SeekerGone
    })
}

async fn end_chat(state: &AppState, chat_id: Uuid, by: Uuid) {
    let result = state
        .peers()
        .message
        .call::<EndChatInternal>(chat_id, EndChatRequest { user_id: by })
        .await;
    if let Err(err) = result {
        tracing::warn!(error = %err, %chat_id, "cannot end the chat of an abandoned match");
    }
}

async fn deliver(state: &AppState, user: Uuid, info: MatchInfo) {
    let request = DeliverRequest {
        user_ids: vec![user],
        event: ServerFrame::Matched { info },
        except_connection: None,
    };
    let result = state.peers().ws_manager.call::<Deliver>((), request).await;
    if let Err(err) = result {
        // The status endpoint still shows the match.
        tracing::warn!(error = %err, %user, "cannot deliver the matched event");
    }
}

async fn commit(
    state: &AppState,
    claim: &Claim,
    now: OffsetDateTime,
) -> Result<Committed, MatchError> {
    let request = CreateChatRequest {
        match_id: claim.match_id,
        participants: vec![claim.seeker.profile.clone(), claim.partner.profile.clone()],
    };
    let chat: Chat = match state.peers().message.call::<CreateChat>((), request).await {
        Ok(chat) => chat,
        Err(err)
            if err.status() == Some(StatusCode::CONFLICT)
                && err.code() == Some(ErrorCode::Blocked) =>
        {
            metrics::counter!("matching_blocked_at_commit_total").increment(1);
            return release(state, claim, true, now).await;
        }
        Err(err) => {
            metrics::counter!("matching_chat_failures_total").increment(1);
            if let Err(release_err) = state.store().release(claim, false, now).await {
                // The claim timeout puts the pair back.
                tracing::warn!(error = %release_err, "cannot release a claimed pair");
            }
            // No wake-up: the pair is due again at once and the next tick retries it;
            // waking here would spin the matcher against a peer that is down.
            return Err(err.into());
        }
    };
    let seeker_info = info_for(&claim.seeker, &claim.partner, &chat, claim.match_id, now);
    let partner_info = info_for(&claim.partner, &claim.seeker, &chat, claim.match_id, now);
    let cooldown = state.config().cooldown;
    match state
        .store()
        .confirm(claim, &seeker_info, &partner_info, cooldown, now)
        .await
    {
        Ok(Confirmation::Confirmed) => {
            metrics::counter!("matching_matches_total").increment(1);
            let wait = (now - claim.partner.joined_at).as_seconds_f64();
            metrics::histogram!("matching_wait_seconds").record(wait.max(0.0));
            tokio::join!(
                deliver(state, claim.seeker.user_id(), seeker_info.clone()),
                deliver(state, claim.partner.user_id(), partner_info),
            );
            Ok(Committed::Matched(seeker_info))
        }
        Ok(Confirmation::Withdrawn(gone)) => {
            let by = gone.first().copied().unwrap_or(claim.seeker.user_id());
            end_chat(state, chat.id, by).await;
            release(state, claim, false, now).await
        }
        Err(err) => {
            end_chat(state, chat.id, claim.seeker.user_id()).await;
            Err(err.into())
        }
    }
}

/// One pass of the matcher: puts back stale claims, then searches for every ticket due
/// (new, released, or whose criteria widened). Returns whether more are due at once.
pub async fn sweep(state: &AppState) -> bool {
    let cfg = state.config();
    let now = state.now();
    let store = state.store();
    match store.release_stale(now - cfg.claim_timeout, now).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(tickets = n, "put back tickets of claims never confirmed"),
        Err(err) => {
            tracing::warn!(error = %err, "matcher sweep: queue unavailable");
            return false;
        }
    }
    let due = match store.due(now, cfg.sweep_batch).await {
        Ok(due) => due,
        Err(err) => {
            tracing::warn!(error = %err, "matcher sweep: queue unavailable");
            return false;
        }
    };
    let full = due.len() == cfg.sweep_batch;
    let failures = AtomicUsize::new(0);
    futures::stream::iter(due)
        .for_each_concurrent(cfg.sweep_concurrency.max(1), |user| {
            let failures = &failures;
            async move {
                if let Err(err) = try_match(state, user).await {
                    failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %err, %user, "search failed");
                }
            }
        })
        .await;
    if let Ok(n) = store.waiting_count().await {
        metrics::gauge!("matching_waiting_tickets").set(n as f64);
    }
    full && failures.load(Ordering::Relaxed) == 0
}

/// Spawns the matcher loop: a sweep on every tick (criteria widen with time) and whenever
/// woken (a join that found nobody, a pair put back).
pub fn spawn_matcher(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config().tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = state.woken() => {}
            }
            if sweep(&state).await {
                state.wake_matcher();
            }
        }
    })
}
