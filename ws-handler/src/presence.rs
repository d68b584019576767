//! Presence: partners of a user's active chats learn when the user's first connection
//! opens and the last one closes; a new connection learns its partners' presence.

use uuid::Uuid;
use wire::api::matching::DropTicket;
use wire::api::message::Chat;
use wire::protocol::ServerFrame;

use crate::chats;
use crate::outbound::{Outbound, OutboundSender};
use crate::state::AppState;

fn others(chat: &Chat, user_id: Uuid) -> Vec<Uuid> {
    chat.participants
        .iter()
        .copied()
        .filter(|p| *p != user_id)
        .collect()
}

/// After registration: when this is the user's only connection (`count == 1`), tell the
/// partners of its active chats that the user is online.
pub async fn announce_online(state: AppState, user_id: Uuid, count: u32, active: Vec<Chat>) {
    if count != 1 {
        return;
    }
    let peers = state.peers();
    for chat in &active {
        chats::deliver(
            &peers.ws_manager,
            others(chat, user_id),
            ServerFrame::Presence {
                chat_id: chat.id,
                user_id,
                online: true,
            },
            None,
        )
        .await;
    }
}

/// Queues for a new connection, before anything else it is sent after `hello`, one
/// `presence` per partner of each active chat: whether that partner is online now.
pub async fn current(state: &AppState, user_id: Uuid, active: &[Chat], outbound: &OutboundSender) {
    let peers = state.peers();
    for chat in active {
        for partner in others(chat, user_id) {
            let online = match chats::connections_of(&peers.ws_manager, partner).await {
                Ok(connections) => !connections.is_empty(),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot look up a partner's presence");
                    continue;
                }
            };
            let frame = ServerFrame::Presence {
                chat_id: chat.id,
                user_id: partner,
                online,
            };
            if outbound
                .send_async(Outbound::Frame(Box::new(frame)))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// After the user's last connection closed: tell the partners `offline` and drop the
/// user's queue ticket (best effort).
pub async fn last_disconnected(state: &AppState, user_id: Uuid) {
    let peers = state.peers();
    match chats::active_chats(&peers.message, user_id).await {
        Ok(active) => {
            for chat in &active {
                chats::deliver(
                    &peers.ws_manager,
                    others(chat, user_id),
                    ServerFrame::Presence {
                        chat_id: chat.id,
                        user_id,
                        online: false,
                    },
                    None,
                )
                .await;
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot list chats to announce going offline"),
    }
    if let Some(matching) = &peers.matching
        && let Err(err) = matching.call::<DropTicket>(user_id, ()).await
    {
        tracing::warn!(error = %err, "cannot drop the queue ticket of a user who went offline");
    }
}
