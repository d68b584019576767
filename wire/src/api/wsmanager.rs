//! ws-manager bodies: the connection registry, handler liveness, and event delivery.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::protocol::ServerFrame;

/// One client connection on one ws-handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnectionRef {
    /// The ws-handler instance holding the socket.
    pub handler_id: Uuid,
    /// The connection, unique across handlers.
    pub connection_id: Uuid,
}

/// Internal `POST /internal/connections`: a ws-handler registers a new connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterConnectionRequest {
    /// The authenticated user.
    pub user_id: Uuid,
    /// Where the socket lives.
    pub connection: ConnectionRef,
}

/// Answer of registering or deregistering: how many connections the user has now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionCount {
    /// Live connections of the user after the change.
    pub connections: u32,
}

/// Internal `PUT /internal/handlers/{id}`: a ws-handler's heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandlerHeartbeat {
    /// Base URL the gateway proxies WebSocket upgrades to (e.g. `http://127.0.0.1:8091`).
    pub url: String,
    /// Open connections on the handler now.
    pub connections: u64,
}

/// Internal `GET /internal/handlers` item: a live ws-handler.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandlerInfo {
    /// Handler instance id.
    pub handler_id: Uuid,
    /// Base URL for WebSocket upgrades.
    pub url: String,
    /// Open connections at the last heartbeat.
    pub connections: u64,
    /// Last heartbeat.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}

/// Internal `POST /internal/deliver`: push an event to every live connection of users.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliverRequest {
    /// Recipients.
    pub user_ids: Vec<Uuid>,
    /// The event.
    pub event: ServerFrame,
    /// A connection to skip (the sender's own device).
    pub except_connection: Option<Uuid>,
}

/// Answer of a delivery: how many connections it was routed to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliverResponse {
    /// Connections the event was published to.
    pub routed: u32,
}

/// What travels on the relay bus to one ws-handler (or, for route changes, to every one).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RelayEnvelope {
    /// Target connections on that handler.
    pub connection_ids: Vec<Uuid>,
    /// The event to push to each (absent in a close order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<ServerFrame>,
    /// A close order: close the connections with this WebSocket close code (4009 when a
    /// newer connection of the account went over the per-account cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<u16>,
    /// Users whose connections changed (one registered): a handler that remembers where
    /// they are connected must look again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes_changed: Vec<Uuid>,
    /// Many users' connections may have changed (a handler came back or resynchronised):
    /// forget every remembered route.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub routes_reset: bool,
    /// When the envelope was published, in microseconds since the Unix epoch (set by the
    /// relay bus). The receiving handler measures relay lag from it; across machines the
    /// figure includes their clock difference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at_us: Option<u64>,
}

/// Answer of a heartbeat (`PUT /internal/handlers/{id}`, 200).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// True when ws-manager did not know the handler as live before this heartbeat (first
    /// heartbeat, expiry, or lost registry data): the handler must send its full list of
    /// connections (`PUT /internal/handlers/{id}/connections`).
    #[serde(default)]
    pub resync: bool,
}

/// One connection of a user, in a handler's full list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserConnection {
    /// The user.
    pub user_id: Uuid,
    /// The connection on the handler.
    pub connection_id: Uuid,
}

/// Internal `PUT /internal/handlers/{id}/connections`: every connection the handler holds
/// now; replaces what ws-manager had for that handler.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HandlerConnections {
    /// The connections.
    pub connections: Vec<UserConnection>,
}

// ---- endpoints ---------------------------------------------------------------------

use crate::endpoint::endpoint;

endpoint! {
    /// Internal `POST /internal/connections`: register a connection; answers the user's
    /// live connection count (1: the user just came online).
    RegisterConnection: POST "/internal/connections", (), RegisterConnectionRequest => ConnectionCount
}
endpoint! {
    /// Internal `DELETE /internal/connections/{user_id}/{connection_id}`: remove exactly
    /// that connection; answers the user's live connection count (0: just went offline).
    DeregisterConnection: DELETE "/internal/connections/{user_id}/{connection_id}", (uuid::Uuid, uuid::Uuid), () => ConnectionCount
}
endpoint! {
    /// Internal `GET /internal/users/{id}/connections`: the user's connections on live
    /// handlers.
    UserConnections: GET "/internal/users/{id}/connections", uuid::Uuid, () => Vec<ConnectionRef>
}
endpoint! {
    /// Internal `PUT /internal/handlers/{id}`: a ws-handler's heartbeat.
    Heartbeat: PUT "/internal/handlers/{id}", uuid::Uuid, HandlerHeartbeat => HeartbeatAck
}
endpoint! {
    /// Internal `PUT /internal/handlers/{id}/connections`: replace every connection
    /// recorded for a handler by its full list.
    ReplaceConnections: PUT "/internal/handlers/{id}/connections", uuid::Uuid, HandlerConnections => ()
}
endpoint! {
    /// Internal `DELETE /internal/handlers/{id}`: the handler shut down.
    RemoveHandler: DELETE "/internal/handlers/{id}", uuid::Uuid, () => ()
}
endpoint! {
    /// Internal `GET /internal/handlers`: live handlers, least loaded first.
    LiveHandlers: GET "/internal/handlers", (), () => Vec<HandlerInfo>
}
endpoint! {
    /// Internal `POST /internal/deliver`: push an event to users wherever they are
    /// connected.
    Deliver: POST "/internal/deliver", (), DeliverRequest => DeliverResponse
}
