//! Pushing `chat_ended` to a chat's participants through ws-manager (best effort).

use service_kit::client::ServiceClient;
use wire::api::message::Chat;
use wire::api::wsmanager::{Deliver, DeliverRequest};
use wire::protocol::ServerFrame;

/// Tells every participant's connections that `chat` ended. Failures are logged, never
/// returned: the chat has ended whether or not the push reaches anyone, and clients see it
/// in the chat's state when they next look.
pub async fn chat_ended(notifier: Option<&ServiceClient>, chat: &Chat) {
    let Some(notifier) = notifier else {
        return;
    };
    let (Some(ended_by), Some(ended_at)) = (chat.ended_by, chat.ended_at) else {
        return;
    };
    let request = DeliverRequest {
        user_ids: chat.participants.clone(),
        event: ServerFrame::ChatEnded {
            chat_id: chat.id,
            ended_by,
            ended_at,
        },
        except_connection: None,
    };
    match notifier.call::<Deliver>((), request).await {
        Ok(answer) => {
            tracing::debug!(chat_id = %chat.id, routed = answer.routed, "chat_ended pushed");
        }
        Err(err) => {
            tracing::warn!(chat_id = %chat.id, error = %err, "cannot push chat_ended");
        }
    }
}
