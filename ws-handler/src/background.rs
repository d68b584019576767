//! Background work of an instance: heartbeats to ws-manager (with a full connection list
//! when ws-manager asks for one) and the relay subscription feeding local connections.

use std::collections::HashSet;

use futures::StreamExt;
use tokio::task::JoinHandle;
use wire::api::wsmanager::{
    ConnectionRef, HandlerConnections, HandlerHeartbeat, Heartbeat, ReplaceConnections,
    UserConnection,
};

use crate::chats;
use crate::state::AppState;

/// The background tasks; they end on [`AppState::shutdown`].
#[derive(Debug)]
pub struct Background {
    /// Heartbeats to ws-manager.
    pub heartbeat: JoinHandle<()>,
    /// The relay subscription.
    pub relay: JoinHandle<()>,
}

/// Subscribes to this instance's relay channel (before returning) and starts the
/// heartbeat loop (first beat at once).
pub fn spawn_background(state: AppState) -> Background {
    let mut subscription = state.relay().subscribe(state.handler_id());
    state.set_relay_watch(subscription.subscribed());
    let relay = tokio::spawn({
        let state = state.clone();
        async move {
            let mut subscribed = subscription.subscribed();
            let mut watching = true;
            loop {
                tokio::select! {
                    () = state.shutdown_token().cancelled() => return,
                    changed = subscribed.changed(), if watching => {
                        if changed.is_err() {
                            watching = false;
                        } else if *subscribed.borrow_and_update() {
                            // Route announcements may have been missed meanwhile.
                            state.routes().reset();
                            // Re-established after a loss: the registry may have lost data
                            // too (a Redis restart); a heartbeat finds out at once.
                            state.request_heartbeat();
                        }
                    }
                    envelope = subscription.next() => match envelope {
                        Some(envelope) => state.dispatch(envelope),
                        None => return,
                    },
                }
            }
        }
    });
    let heartbeat = tokio::spawn(heartbeat_loop(state));
    Background { heartbeat, relay }
}

async fn heartbeat_loop(state: AppState) {
    let mut every = tokio::time::interval(state.config().heartbeat_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut must_resync = false;
    loop {
        tokio::select! {
            () = state.shutdown_token().cancelled() => return,
            _ = every.tick() => {}
            () = state.heartbeat_requested() => {}
        }
        must_resync = beat(&state, must_resync).await;
    }
}

/// One heartbeat; returns whether a resynchronisation is still owed.
async fn beat(state: &AppState, must_resync: bool) -> bool {
    let ws_manager = &state.peers().ws_manager;
    let body = HandlerHeartbeat {
        url: state.public_url().to_owned(),
        connections: state.connection_count() as u64,
    };
    let ack = match ws_manager.call::<Heartbeat>(state.handler_id(), body).await {
        Ok(ack) => ack,
        Err(err) => {
            tracing::warn!(error = %err, "heartbeat to ws-manager failed");
            state.set_registered(false);
            return must_resync;
        }
    };
    if (ack.resync || must_resync)
        && let Err(err) = resync(state).await
    {
        tracing::warn!(error = %err, "cannot resynchronise connections with ws-manager");
        state.set_registered(false);
        return true;
    }
    state.set_registered(true);
    false
}

/// Sends the full connection list, then fixes up connections that opened or closed
/// while it was on its way.
async fn resync(state: &AppState) -> Result<(), service_kit::client::ClientError> {
    let ws_manager = &state.peers().ws_manager;
    let snapshot = state.connection_list();
    let full = HandlerConnections {
        connections: snapshot.clone(),
    };
    ws_manager
        .call::<ReplaceConnections>(state.handler_id(), full)
        .await?;
    let before: HashSet<UserConnection> = snapshot.into_iter().collect();
    let now: HashSet<UserConnection> = state.connection_list().into_iter().collect();
    for opened in now.difference(&before) {
        let connection = ConnectionRef {
            handler_id: state.handler_id(),
            connection_id: opened.connection_id,
        };
        chats::register(ws_manager, opened.user_id, connection).await?;
    }
    for closed in before.difference(&now) {
        chats::deregister(ws_manager, closed.user_id, closed.connection_id).await?;
    }
    tracing::info!(
        connections = now.len(),
        "connections resynchronised with ws-manager"
    );
    Ok(())
}
