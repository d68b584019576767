//! matching-service bodies: joining the queue, queue status, and the match itself.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::auth::PublicProfile;
use crate::domain::Gender;

/// How strictly interests are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InterestMode {
    /// At least one shared interest is required (until a fallback, if allowed).
    Required,
    /// Shared interests rank candidates but are not required.
    #[default]
    Preferred,
    /// Interests play no part.
    Ignored,
}

/// `POST /v1/queue`. Absent fields default to the user's saved preferences.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JoinQueueRequest {
    /// Genders wanted; empty means any.
    pub genders: Option<Vec<Gender>>,
    /// Youngest partner age.
    pub min_age: Option<u8>,
    /// Oldest partner age.
    pub max_age: Option<u8>,
    /// Interests to match on (default: the profile's).
    pub interests: Option<Vec<String>>,
    /// How strictly interests apply (default: the saved preference, else `preferred`).
    pub interest_mode: Option<InterestMode>,
    /// The age range may widen by up to this many years on each side while waiting
    /// (0 = exact; default: the saved preference, else 0).
    pub age_widen_years: Option<u8>,
    /// Seconds of waiting per year of widening (default: the saved preference, else 10).
    pub widen_every_secs: Option<u32>,
    /// After this many seconds of waiting, required interests fall back to preferred
    /// (default: the saved preference, else never).
    pub fallback_after_secs: Option<u32>,
}

/// The criteria in force for a waiting ticket right now, after any widening.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CriteriaInForce {
    /// Genders wanted; empty means any.
    pub genders: Vec<Gender>,
    /// Youngest partner age now.
    pub min_age: u8,
    /// Oldest partner age now.
    pub max_age: u8,
    /// Interests matched on.
    pub interests: Vec<String>,
    /// How strictly interests apply now.
    pub interest_mode: InterestMode,
}

/// A criterion that was relaxed for a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RelaxedCriterion {
    /// The age range had widened beyond what was first asked.
    AgeRange,
    /// Required interests had fallen back.
    Interests,
}

/// A match as each user learns it (the `matched` event and queue status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MatchInfo {
    /// The match id.
    pub match_id: Uuid,
    /// The chat created for it.
    pub chat_id: Uuid,
    /// The partner's public profile.
    pub partner: PublicProfile,
    /// Interests both share.
    pub shared_interests: Vec<String>,
    /// Criteria of *this* user that were relaxed to make the match.
    pub relaxed: Vec<RelaxedCriterion>,
    /// When the match was made.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub matched_at: OffsetDateTime,
}

/// Where the user stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QueueState {
    /// Not queued.
    Idle,
    /// Waiting for a partner.
    Waiting,
    /// Matched (the latest match is in `matched`).
    Matched,
}

/// `GET /v1/queue` and the answer of `POST /v1/queue`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStatus {
    /// Where the user stands.
    pub state: QueueState,
    /// When the wait began.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub waiting_since: Option<OffsetDateTime>,
    /// The criteria in force now, while waiting.
    pub criteria: Option<CriteriaInForce>,
    /// The latest match, when matched.
    pub matched: Option<MatchInfo>,
}

// ---- endpoints ---------------------------------------------------------------------

use crate::endpoint::endpoint;

endpoint! {
    /// `POST /v1/queue`: join the queue (ending the caller's live chat: *Next*).
    JoinQueue: POST "/v1/queue", (), JoinQueueRequest => QueueStatus
}
endpoint! {
    /// `GET /v1/queue`: where the caller stands.
    GetQueue: GET "/v1/queue", (), () => QueueStatus
}
endpoint! {
    /// `DELETE /v1/queue`: leave the queue at once.
    LeaveQueue: DELETE "/v1/queue", (), () => ()
}
endpoint! {
    /// Internal `DELETE /internal/queue/{user_id}`: drop a user's ticket (their last
    /// connection closed).
    DropTicket: DELETE "/internal/queue/{user_id}", uuid::Uuid, () => ()
}
