//! Refresh sessions in DynamoDB.
//!
//! One table, key `pk` (string), two kinds of item:
//!
//! - `session#<id>`: `user_id`, `current_hash` (binary), `created_at`, `last_used_at`,
//!   `expires_at`, optional `revoked_at` (all milliseconds since the epoch), and after the
//!   first refresh `previous_hash` (binary), `rotated_at` and `sealed_successor` (binary):
//!   the last rotation, see [`Rotation`];
//! - `token#<base64url sha-256>`: `session_id` — one per refresh token ever issued, so that
//!   a rotated token presented again is recognised as reuse of its family;
//! - `user#<id>`: `sessions_valid_after` (ms) and optional `kept_session`, written by
//!   `revoke_all` (password change): every session of the user begun up to then but the
//!   kept one is ended, read with each session — so a session the eventually consistent
//!   index has not listed yet cannot survive a password change.
//!
//! Both carry `ttl` (seconds since the epoch, the session's absolute end) as the table's
//! TTL attribute, so DynamoDB deletes them after the session ends. The global secondary
//! index [`USER_INDEX`] (`user_id`, `created_at`) lists a user's sessions. Rotation is an
//! update of the session item conditional on the presented hash still being current, so
//! that of two concurrent refreshes with one token exactly one wins (within one process,
//! rotations of a session are also serialised by a lock).

use service_kit::telemetry::{Backend, count_backend_error};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Rotation, Session, SessionStore, StoreError, TokenHash, TokenLookup};

/// Name of the global secondary index on `user_id`.
pub const USER_INDEX: &str = "user_id-created_at-index";
/// Name of the TTL attribute.
pub const TTL_ATTRIBUTE: &str = "ttl";

/// Where the sessions table lives.
#[derive(Debug, Clone)]
pub struct DynamoConfig {
    /// Table name.
    pub table: String,
    /// Endpoint URL of a local or compatible server (e.g. `http://127.0.0.1:8000`); `None`
    /// for AWS itself.
    pub endpoint: Option<String>,
    /// Region; `None` to take it from the AWS environment.
    pub region: Option<String>,
    /// Time limit of one request attempt and of connecting: a DynamoDB that does not
    /// answer fails the request fast (503) instead of holding it.
    pub timeout: Duration,
}

/// Refresh sessions in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoSessionStore {
    client: Client,
    table: String,
    rotations: Arc<RotationLocks>,
}

/// Striped locks serialising the rotations of one session within this process.
///
/// Between processes the conditional write alone decides which of two concurrent
/// rotations wins. Within one process the lock also spares the loser a doomed write,
/// and keeps the guarantee on DynamoDB emulators (such as moto) that do not apply
/// conditional writes atomically under concurrent requests.
#[derive(Debug)]
struct RotationLocks([tokio::sync::Mutex<()>; ROTATION_STRIPES]);

const ROTATION_STRIPES: usize = 256;

impl RotationLocks {
    fn new() -> Self {
        Self(std::array::from_fn(|_| tokio::sync::Mutex::new(())))
    }

    fn for_session(&self, id: Uuid) -> &tokio::sync::Mutex<()> {
        &self.0[usize::from(id.as_bytes()[15]) % ROTATION_STRIPES]
    }
}

impl DynamoSessionStore {
    /// Builds a client from the AWS environment (credentials, region) and `config`; with
    /// an explicit endpoint and no AWS credentials in the environment, static placeholder
    /// credentials are used, as local servers accept any.
    pub async fn connect(config: &DynamoConfig) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.timeout)
            .operation_attempt_timeout(config.timeout)
            .operation_timeout(config.timeout * 3)
            .build();
        let mut loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).timeout_config(timeouts);
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint.clone());
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
                loader = loader
                    .credentials_provider(Credentials::new("local", "local", None, None, "static"));
            }
        }
        let sdk_config = loader.load().await;
        Self::from_client(Client::new(&sdk_config), config.table.clone())
    }

    /// A store on an existing client.
    pub fn from_client(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            rotations: Arc::new(RotationLocks::new()),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table, its user index and its TTL setting, whichever is missing.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        let exists = match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => true,
            Err(err) if is_code(&err, "ResourceNotFoundException") => false,
            Err(err) => return Err(classify(err)),
        };
        if !exists {
            self.create_table().await?;
        }
        self.wait_active().await?;
        let ttl = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(classify)?;
        let enabled = ttl
            .time_to_live_description()
            .and_then(|d| d.time_to_live_status())
            .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
        if !enabled {
            let spec = TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build()
                .map_err(backend)?;
            self.client
                .update_time_to_live()
                .table_name(&self.table)
                .time_to_live_specification(spec)
                .send()
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn create_table(&self) -> Result<(), StoreError> {
        let attr = |name: &str, ty: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ty)
                .build()
                .map_err(backend)
        };
        let key = |name: &str, ty: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(ty)
                .build()
                .map_err(backend)
        };
        let index = GlobalSecondaryIndex::builder()
            .index_name(USER_INDEX)
            .key_schema(key("user_id", KeyType::Hash)?)
            .key_schema(key("created_at", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(backend)?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("user_id", ScalarAttributeType::S)?)
            .attribute_definitions(attr("created_at", ScalarAttributeType::N)?)
            .key_schema(key("pk", KeyType::Hash)?)
            .global_secondary_indexes(index)
            .send()
            .await;
        match created {
            Ok(_) => {
                tracing::info!(table = %self.table, "created the DynamoDB sessions table");
                Ok(())
            }
            // Another instance created it meanwhile.
            Err(err) if is_code(&err, "ResourceInUseException") => Ok(()),
            Err(err) => Err(classify(err)),
        }
    }

    async fn wait_active(&self) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(classify)?;
            let status = described.table().and_then(|t| t.table_status());
            if matches!(status, Some(TableStatus::Active)) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "table {} is not active after 60 s",
                    self.table
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Deletes the table (tests clean up with it).
    pub async fn delete_table(&self) -> Result<(), StoreError> {
        self.client
            .delete_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn put_token(&self, hash: &TokenHash, session: &Session) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", token_key(hash))
            .item("session_id", AttributeValue::S(session.id.to_string()))
            .item(TTL_ATTRIBUTE, ttl_of(session))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn get_session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", session_key(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let Some(session) = item.item().map(session_from_item).transpose()? else {
            return Ok(None);
        };
        let cutoff = self.cutoff_of(session.user_id).await?;
        Ok(Some(apply_cutoff(session, cutoff)))
    }

    /// The user's "sessions begun up to here are ended" mark, written by `revoke_all`.
    async fn cutoff_of(&self, user_id: Uuid) -> Result<Option<Cutoff>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", user_key(user_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let Some(item) = item.item() else {
            return Ok(None);
        };
        let Some(at) = integer(item, "sessions_valid_after")? else {
            return Ok(None);
        };
        let keep =
            match item.get("kept_session").and_then(|v| v.as_s().ok()) {
                Some(id) => Some(Uuid::parse_str(id).map_err(|e| {
                    StoreError::Backend(format!("user {user_id}: kept_session: {e}"))
                })?),
                None => None,
            };
        Ok(Some(Cutoff {
            at: from_millis(at)?,
            keep,
        }))
    }

    /// Ids of a user's sessions per the index (eventually consistent), filtered to those
    /// the index believes active.
    async fn indexed_active_ids(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut ids = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(USER_INDEX)
            .key_condition_expression("user_id = :uid")
            .filter_expression("attribute_not_exists(revoked_at) AND expires_at > :now")
            .expression_attribute_values(":uid", AttributeValue::S(user_id.to_string()))
            .expression_attribute_values(":now", number(millis(now)))
            .projection_expression("pk")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(classify)?;
            for item in page.items() {
                let pk = string(item, "pk")?;
                let id = pk
                    .strip_prefix("session#")
                    .and_then(|id| Uuid::parse_str(id).ok())
                    .ok_or_else(|| {
                        StoreError::Backend(format!("unexpected key {pk} in {USER_INDEX}"))
                    })?;
                ids.push(id);
            }
        }
        Ok(ids)
    }
}

/// Sessions of a user begun at or before `at` are ended, but `keep` (`revoke_all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cutoff {
    at: OffsetDateTime,
    keep: Option<Uuid>,
}

impl Cutoff {
    fn ends(&self, session: &Session) -> bool {
        session.created_at <= self.at && Some(session.id) != self.keep
    }
}

/// `session` as the cutoff leaves it: ended (at the cutoff) if it began before it.
fn apply_cutoff(mut session: Session, cutoff: Option<Cutoff>) -> Session {
    if let Some(cutoff) = cutoff
        && session.revoked_at.is_none()
        && cutoff.ends(&session)
    {
        session.revoked_at = Some(cutoff.at);
    }
    session
}

fn user_key(user_id: Uuid) -> AttributeValue {
    AttributeValue::S(format!("user#{user_id}"))
}

fn session_key(id: Uuid) -> AttributeValue {
    AttributeValue::S(format!("session#{id}"))
}

fn token_key(hash: &TokenHash) -> AttributeValue {
    AttributeValue::S(format!("token#{}", URL_SAFE_NO_PAD.encode(hash.0)))
}

fn number(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_millis(ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| StoreError::Backend(format!("invalid stored time {ms}: {e}")))
}

fn ttl_of(session: &Session) -> AttributeValue {
    number(session.expires_at.unix_timestamp())
}

fn string<'a>(
    item: &'a HashMap<String, AttributeValue>,
    name: &str,
) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::Backend(format!("item without string attribute {name}")))
}

fn integer(item: &HashMap<String, AttributeValue>, name: &str) -> Result<Option<i64>, StoreError> {
    item.get(name)
        .map(|v| {
            v.as_n()
                .ok()
                .and_then(|n| n.parse::<i64>().ok())
                .ok_or_else(|| StoreError::Backend(format!("attribute {name} is not an integer")))
        })
        .transpose()
}

fn required_time(
    item: &HashMap<String, AttributeValue>,
    name: &str,
) -> Result<OffsetDateTime, StoreError> {
    let ms =
        integer(item, name)?.ok_or_else(|| StoreError::Backend(format!("item without {name}")))?;
    from_millis(ms)
}

fn session_from_item(item: &HashMap<String, AttributeValue>) -> Result<Session, StoreError> {
    let pk = string(item, "pk")?;
    let id = pk
        .strip_prefix("session#")
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| StoreError::Backend(format!("unexpected session key {pk}")))?;
    let user_id = Uuid::parse_str(string(item, "user_id")?)
        .map_err(|e| StoreError::Backend(format!("session {id}: invalid user_id: {e}")))?;
    let hash: [u8; 32] = item
        .get("current_hash")
        .and_then(|v| v.as_b().ok())
        .and_then(|b| b.as_ref().try_into().ok())
        .ok_or_else(|| StoreError::Backend(format!("session {id}: invalid current_hash")))?;
    Ok(Session {
        id,
        user_id,
        current_hash: TokenHash(hash),
        created_at: required_time(item, "created_at")?,
        last_used_at: required_time(item, "last_used_at")?,
        expires_at: required_time(item, "expires_at")?,
        revoked_at: integer(item, "revoked_at")?.map(from_millis).transpose()?,
        last_rotation: rotation_from_item(item, id)?,
    })
}

fn rotation_from_item(
    item: &HashMap<String, AttributeValue>,
    id: Uuid,
) -> Result<Option<Rotation>, StoreError> {
    let bytes = |name: &str| -> Option<[u8; 32]> {
        item.get(name)
            .and_then(|v| v.as_b().ok())
            .and_then(|b| b.as_ref().try_into().ok())
    };
    let Some(at) = integer(item, "rotated_at")? else {
        return Ok(None);
    };
    match (bytes("previous_hash"), bytes("sealed_successor")) {
        (Some(replaced), Some(sealed_successor)) => Ok(Some(Rotation {
            replaced: TokenHash(replaced),
            at: from_millis(at)?,
            sealed_successor,
        })),
        _ => Err(StoreError::Backend(format!(
            "session {id}: invalid rotation"
        ))),
    }
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

fn is_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>, code: &str) -> bool {
    err.as_service_error().and_then(ProvideErrorMetadata::code) == Some(code)
}

/// Maps an SDK error: transport failures, timeouts, throttling and server errors mean the
/// backend is unavailable (503); anything else is a bug or misconfiguration (500).
fn classify<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = DisplayErrorContext(&err).to_string();
    let unavailable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => matches!(
            service.err().code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "TransactionInProgressException",
            )
        ),
        _ => false,
    };
    count_backend_error(Backend::DynamoDb, unavailable);
    if unavailable {
        StoreError::Unavailable(text)
    } else {
        StoreError::Backend(text)
    }
}

#[async_trait]
impl SessionStore for DynamoSessionStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", session_key(session.id))
            .item("user_id", AttributeValue::S(session.user_id.to_string()))
            .item(
                "current_hash",
                AttributeValue::B(Blob::new(session.current_hash.0.to_vec())),
            )
            .item("created_at", number(millis(session.created_at)))
            .item("last_used_at", number(millis(session.last_used_at)))
            .item("expires_at", number(millis(session.expires_at)))
            .item(TTL_ATTRIBUTE, ttl_of(session))
            .condition_expression("attribute_not_exists(pk)");
        if let Some(revoked_at) = session.revoked_at {
            put = put.item("revoked_at", number(millis(revoked_at)));
        }
        put.send().await.map_err(classify)?;
        // Written second: if this fails the session exists but no token leads to it, so
        // it can never be used and simply expires.
        self.put_token(&session.current_hash, session).await
    }

    async fn session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        self.get_session(id).await
    }

    async fn find_by_token(&self, hash: &TokenHash) -> Result<Option<TokenLookup>, StoreError> {
        let token = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", token_key(hash))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let Some(item) = token.item() else {
            return Ok(None);
        };
        let session_id = Uuid::parse_str(string(item, "session_id")?)
            .map_err(|e| StoreError::Backend(format!("token item with invalid session_id: {e}")))?;
        Ok(self
            .get_session(session_id)
            .await?
            .map(|session| TokenLookup {
                is_current: session.current_hash == *hash,
                session,
            }))
    }

    async fn rotate(
        &self,
        session: &Session,
        new: &TokenHash,
        rotation: &Rotation,
    ) -> Result<bool, StoreError> {
        let now = rotation.at;
        let _serialised = self.rotations.for_session(session.id).lock().await;
        // The conditional update of the one session item decides the race: DynamoDB
        // applies conditional writes to an item one at a time.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", session_key(session.id))
            .update_expression(
                "SET current_hash = :new, last_used_at = :now, previous_hash = :old, \
                 rotated_at = :now, sealed_successor = :sealed",
            )
            .condition_expression(
                "current_hash = :old AND attribute_not_exists(revoked_at) AND expires_at > :now",
            )
            .expression_attribute_values(":new", AttributeValue::B(Blob::new(new.0.to_vec())))
            .expression_attribute_values(
                ":old",
                AttributeValue::B(Blob::new(session.current_hash.0.to_vec())),
            )
            .expression_attribute_values(":now", number(millis(now)))
            .expression_attribute_values(
                ":sealed",
                AttributeValue::B(Blob::new(rotation.sealed_successor.to_vec())),
            )
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                return Ok(false);
            }
            Err(err) => return Err(classify(err)),
        }
        // A cutoff written while this rotation ran ends the session all the same.
        if let Some(cutoff) = self.cutoff_of(session.user_id).await?
            && cutoff.ends(session)
        {
            self.revoke(session.user_id, session.id, cutoff.at).await?;
            return Ok(false);
        }
        // If this write fails the new token leads nowhere and the client must log in
        // again: the safe direction.
        self.put_token(new, session).await?;
        Ok(true)
    }

    async fn revoke(
        &self,
        user_id: Uuid,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", session_key(id))
            .update_expression("SET revoked_at = :now")
            .condition_expression(
                "user_id = :uid AND attribute_not_exists(revoked_at) AND expires_at > :now",
            )
            .expression_attribute_values(":uid", AttributeValue::S(user_id.to_string()))
            .expression_attribute_values(":now", number(millis(now)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(classify(err)),
        }
    }

    async fn revoke_all(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        // First the per-user cutoff, read consistently with every session: a session the
        // (eventually consistent) index below does not list yet is ended by it all the
        // same. Then each listed session is ended and returned for announcement.
        let mut cutoff = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", user_key(user_id))
            .expression_attribute_values(":at", number(millis(now)));
        cutoff = match keep {
            Some(keep) => cutoff
                .update_expression("SET sessions_valid_after = :at, kept_session = :keep")
                .expression_attribute_values(":keep", AttributeValue::S(keep.to_string())),
            None => cutoff.update_expression("SET sessions_valid_after = :at REMOVE kept_session"),
        };
        cutoff.send().await.map_err(classify)?;
        let mut ended = Vec::new();
        for id in self.indexed_active_ids(user_id, now).await? {
            if Some(id) != keep && self.revoke(user_id, id, now).await? {
                ended.push(id);
            }
        }
        Ok(ended)
    }

    async fn active_sessions(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        let mut sessions = Vec::new();
        // The index is eventually consistent; each session is re-read consistently so a
        // session ended a moment ago is not listed as active.
        for id in self.indexed_active_ids(user_id, now).await? {
            if let Some(session) = self.get_session(id).await?
                && session.user_id == user_id
                && session.is_active(now)
            {
                sessions.push(session);
            }
        }
        sessions.sort_by_key(|s| (s.created_at, s.id));
        Ok(sessions)
    }

    async fn purge_expired(&self, _now: OffsetDateTime) -> Result<u64, StoreError> {
        // The table's TTL attribute makes DynamoDB delete ended sessions and tokens itself.
        Ok(0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session_at(at: OffsetDateTime) -> Session {
        Session::begin(
            Uuid::new_v4(),
            TokenHash([1; 32]),
            at,
            Duration::from_secs(3600),
        )
    }

    #[test]
    fn a_cutoff_ends_sessions_begun_up_to_it_but_the_kept_one() {
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let before = session_at(t - time::Duration::seconds(1));
        let kept = session_at(t - time::Duration::seconds(1));
        let after = session_at(t + time::Duration::seconds(1));
        let cutoff = Some(Cutoff {
            at: t,
            keep: Some(kept.id),
        });
        assert_eq!(apply_cutoff(before.clone(), cutoff).revoked_at, Some(t));
        assert_eq!(apply_cutoff(kept, cutoff).revoked_at, None);
        assert_eq!(apply_cutoff(after, cutoff).revoked_at, None);
        assert_eq!(apply_cutoff(before, None).revoked_at, None);
    }
}
