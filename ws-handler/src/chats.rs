//! Calls to message-service and ws-manager that connections share, and a cache of chat
//! participants (they never change once a chat exists).

use std::collections::HashMap;
use std::sync::Mutex;

use common::api::message::{
    AppendMessageRequest, AppendMessageResponse, Chat, Message, Watermark, WatermarkUpdate,
};
use common::api::wsmanager::{
    ConnectionCount, ConnectionRef, DeliverRequest, DeliverResponse, RegisterConnection,
};
use common::client::{ClientError, ServiceClient};
use common::protocol::ServerFrame;
use uuid::Uuid;

/// Most chats whose participants are remembered; the cache is emptied when it fills.
const CACHE_CAPACITY: usize = 50_000;
/// Page size when fetching missed messages (message-service allows up to 500).
pub const CATCH_UP_PAGE: u32 = 500;

/// Chat id → participants.
#[derive(Debug, Default)]
pub struct ChatCache {
    participants: Mutex<HashMap<Uuid, Vec<Uuid>>>,
}

impl ChatCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Vec<Uuid>>> {
        self.participants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers a chat's participants.
    pub fn remember(&self, chat: &Chat) {
        let mut map = self.lock();
        if map.len() >= CACHE_CAPACITY {
            map.clear();
        }
        map.insert(chat.id, chat.participants.clone());
    }

    /// The participants of `chat_id`, from the cache or message-service.
    pub async fn participants(
        &self,
        message: &ServiceClient,
        chat_id: Uuid,
    ) -> Result<Vec<Uuid>, ClientError> {
        if let Some(found) = self.lock().get(&chat_id) {
            return Ok(found.clone());
        }
        let chat: Chat = message.get(&format!("/internal/chats/{chat_id}")).await?;
        self.remember(&chat);
        Ok(chat.participants)
    }
}

/// `POST /internal/chats/{id}/messages`.
pub async fn append(
    message: &ServiceClient,
    chat_id: Uuid,
    request: &AppendMessageRequest,
) -> Result<AppendMessageResponse, ClientError> {
    message
        .post(&format!("/internal/chats/{chat_id}/messages"), request)
        .await
}

/// `GET /internal/chats/{id}/messages?after=..&limit=..`.
pub async fn messages_after(
    message: &ServiceClient,
    chat_id: Uuid,
    after: u64,
    limit: u32,
) -> Result<Vec<Message>, ClientError> {
    message
        .get(&format!(
            "/internal/chats/{chat_id}/messages?after={after}&limit={limit}"
        ))
        .await
}

/// `POST /internal/chats/{id}/watermarks`.
pub async fn update_watermark(
    message: &ServiceClient,
    chat_id: Uuid,
    update: &WatermarkUpdate,
) -> Result<Watermark, ClientError> {
    message
        .post(&format!("/internal/chats/{chat_id}/watermarks"), update)
        .await
}

/// `GET /internal/users/{id}/chats?active=true`.
pub async fn active_chats(
    message: &ServiceClient,
    user_id: Uuid,
) -> Result<Vec<Chat>, ClientError> {
    message
        .get(&format!("/internal/users/{user_id}/chats?active=true"))
        .await
}

/// `POST /internal/connections`.
pub async fn register(
    ws_manager: &ServiceClient,
    user_id: Uuid,
    connection: ConnectionRef,
) -> Result<u32, ClientError> {
    let count: ConnectionCount = ws_manager
        .post(
            "/internal/connections",
            &RegisterConnection {
                user_id,
                connection,
            },
        )
        .await?;
    Ok(count.connections)
}

/// `DELETE /internal/connections/{user}/{connection}` (only this connection).
pub async fn deregister(
    ws_manager: &ServiceClient,
    user_id: Uuid,
    connection_id: Uuid,
) -> Result<u32, ClientError> {
    let count: ConnectionCount = ws_manager
        .call::<(), _>(
            axum::http::Method::DELETE,
            &format!("/internal/connections/{user_id}/{connection_id}"),
            None,
        )
        .await?;
    Ok(count.connections)
}

/// `GET /internal/users/{id}/connections`.
pub async fn connections_of(
    ws_manager: &ServiceClient,
    user_id: Uuid,
) -> Result<Vec<ConnectionRef>, ClientError> {
    ws_manager
        .get(&format!("/internal/users/{user_id}/connections"))
        .await
}

/// `POST /internal/deliver`: push `event` to every live connection of `user_ids` but
/// `except_connection`. Failures are logged: live events are best effort (messages are
/// recovered by gap filling and resume).
pub async fn deliver(
    ws_manager: &ServiceClient,
    user_ids: Vec<Uuid>,
    event: ServerFrame,
    except_connection: Option<Uuid>,
) {
    if user_ids.is_empty() {
        return;
    }
    let request = DeliverRequest {
        user_ids,
        event,
        except_connection,
    };
    if let Err(err) = ws_manager
        .post::<_, DeliverResponse>("/internal/deliver", &request)
        .await
    {
        tracing::warn!(error = %err, "cannot deliver an event");
    }
}
