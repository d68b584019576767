//! One hop from a sender to the recipients' connections: the fan-out of an event to the
//! handlers holding them (where users are connected comes from [`crate::route_cache`]), this
//! instance's own connections directly.
//!
//! A remembered route is used for at most [`ROUTE_TTL`](crate::route_cache::ROUTE_TTL), and ws-manager announces every
//! registration on the broadcast channel, so a route is normally fresh at once and never
//! staler than the TTL even when an announcement is lost. A connection registered less than
//! the TTL ago may still miss a live event routed with an older route: its writer therefore
//! catches up once more when the TTL has passed ([`SETTLE_AFTER`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use service_kit::relay::PreparedEvent;
use uuid::Uuid;
use wire::api::wsmanager::{ConnectionRef, RelayEnvelope};
use wire::protocol::ServerFrame;

use crate::chats;
use crate::state::AppState;

/// When a new connection catches up once more: once every route older than its
/// registration has expired (with a margin for the time a fan-out takes).
pub const SETTLE_AFTER: Duration = Duration::from_millis(2_500);

/// The connections of each of `users` (remembered or asked of ws-manager), all together;
/// a user whose lookup failed is left out (live events are best effort: messages are
/// recovered by gap filling and resume).
async fn connections_of(state: &AppState, users: &[Uuid]) -> Vec<ConnectionRef> {
    let routes = state.routes();
    let now = Instant::now();
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for user in users {
        match routes.cached(*user, now) {
            Ok(connections) => found.extend(connections.iter().copied()),
            Err(generation) => missing.push((*user, generation)),
        }
    }
    metrics::counter!("ws_route_lookups_total", "cached" => "hit")
        .increment((users.len() - missing.len()) as u64);
    if missing.is_empty() {
        return found;
    }
    metrics::counter!("ws_route_lookups_total", "cached" => "miss").increment(missing.len() as u64);
    let ws_manager = &state.peers().ws_manager;
    let lookups = missing.iter().map(|(user, generation)| async move {
        let started = Instant::now();
        let result = chats::connections_of(ws_manager, *user).await;
        (*user, *generation, started, result)
    });
    for (user, generation, started, result) in join_all(lookups).await {
        match result {
            Ok(connections) => {
                let connections: Arc<[ConnectionRef]> = connections.into();
                found.extend(connections.iter().copied());
                routes.store(user, connections, started, generation);
            }
            Err(err) => tracing::warn!(error = %err, %user, "cannot look up a user's connections"),
        }
    }
    found
}

/// Pushes `event` to every live connection of `users` but `except`: to this instance's
/// own connections directly, to each other handler holding some with one relay publish
/// (the event serialised once for all of them).
pub async fn fan_out(state: &AppState, users: &[Uuid], event: ServerFrame, except: Option<Uuid>) {
    if users.is_empty() {
        return;
    }
    let mut per_handler: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for connection in connections_of(state, users).await {
        if Some(connection.connection_id) != except {
            per_handler
                .entry(connection.handler_id)
                .or_default()
                .push(connection.connection_id);
        }
    }
    let own = per_handler.remove(&state.handler_id());
    if per_handler.is_empty() {
        if let Some(connection_ids) = own {
            state.dispatch(RelayEnvelope {
                connection_ids,
                event: Some(event),
                ..Default::default()
            });
        }
        return;
    }
    let prepared = PreparedEvent::new(event);
    if let Some(connection_ids) = own {
        state.dispatch(RelayEnvelope {
            connection_ids,
            event: Some(prepared.frame().clone()),
            ..Default::default()
        });
    }
    let relay = state.relay();
    let publishes = per_handler.into_iter().map(|(handler_id, connection_ids)| {
        relay.publish_event(handler_id, connection_ids, &prepared)
    });
    for result in join_all(publishes).await {
        if let Err(err) = result {
            metrics::counter!("ws_relay_publish_failures_total").increment(1);
            tracing::warn!(error = %err, "cannot relay an event to another handler");
        }
    }
}
