//! Calls to message-service and ws-manager that connections share, and a cache of chat
//! participants (they never change once a chat exists).

use std::collections::HashMap;
use std::sync::Mutex;

use service_kit::client::{ClientError, ServiceClient};
use uuid::Uuid;
use wire::api::message::{
    AdvanceWatermark, AppendMessage, AppendMessageRequest, AppendMessageResponse, Chat,
    GetChatInternal, Message, MessagesAfter, MessagesAfterQuery, UserChats, UserChatsQuery,
    Watermark, WatermarkUpdate,
};
use wire::api::wsmanager::{
    ConnectionRef, Deliver, DeliverRequest, DeregisterConnection, RegisterConnection,
    RegisterConnectionRequest, UserConnections,
};
use wire::error::{ErrorCode, ErrorDetail};
use wire::protocol::ServerFrame;

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

    /// Remembers the participants of `chat_id` (as an append answered them).
    pub fn remember_participants(&self, chat_id: Uuid, participants: &[Uuid]) {
        let mut map = self.lock();
        if map.contains_key(&chat_id) {
            return;
        }
        if map.len() >= CACHE_CAPACITY {
            map.clear();
        }
        map.insert(chat_id, participants.to_vec());
    }

    /// The participants of `chat_id` if the cache holds them.
    pub fn cached(&self, chat_id: Uuid) -> Option<Vec<Uuid>> {
        self.lock().get(&chat_id).cloned()
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
        let chat = message.call::<GetChatInternal>(chat_id, ()).await?;
        self.remember(&chat);
        Ok(chat.participants)
    }
}

/// `POST /internal/chats/{id}/messages`.
pub async fn append(
    message: &ServiceClient,
    chat_id: Uuid,
    request: AppendMessageRequest,
) -> Result<AppendMessageResponse, ClientError> {
    message.call::<AppendMessage>(chat_id, request).await
}

/// `GET /internal/chats/{id}/messages?after=..&limit=..`.
pub async fn messages_after(
    message: &ServiceClient,
    chat_id: Uuid,
    after: u64,
    limit: u32,
) -> Result<Vec<Message>, ClientError> {
    let query = MessagesAfterQuery {
        after: Some(after),
        limit: Some(limit),
    };
    message.call::<MessagesAfter>(chat_id, query).await
}

/// `POST /internal/chats/{id}/watermarks`.
pub async fn update_watermark(
    message: &ServiceClient,
    chat_id: Uuid,
    update: WatermarkUpdate,
) -> Result<Watermark, ClientError> {
    message.call::<AdvanceWatermark>(chat_id, update).await
}

/// `GET /internal/users/{id}/chats?active=true`.
pub async fn active_chats(
    message: &ServiceClient,
    user_id: Uuid,
) -> Result<Vec<Chat>, ClientError> {
    let query = UserChatsQuery {
        active: true,
        limit: None,
    };
    message.call::<UserChats>(user_id, query).await
}

/// Most chats one [`recent_chats`] call lists (message-service's internal page limit).
pub const RECENT_CHATS: u32 = 500;

/// The user's newest chats, ended ones included, at most [`RECENT_CHATS`].
pub async fn recent_chats(
    message: &ServiceClient,
    user_id: Uuid,
) -> Result<Vec<Chat>, ClientError> {
    let query = UserChatsQuery {
        active: false,
        limit: Some(RECENT_CHATS),
    };
    message.call::<UserChats>(user_id, query).await
}

/// `POST /internal/connections`.
pub async fn register(
    ws_manager: &ServiceClient,
    user_id: Uuid,
    connection: ConnectionRef,
) -> Result<u32, ClientError> {
    let request = RegisterConnectionRequest {
        user_id,
        connection,
    };
    let count = ws_manager.call::<RegisterConnection>((), request).await?;
    Ok(count.connections)
}

/// `DELETE /internal/connections/{user}/{connection}` (only this connection).
pub async fn deregister(
    ws_manager: &ServiceClient,
    user_id: Uuid,
    connection_id: Uuid,
) -> Result<u32, ClientError> {
    let count = ws_manager
        .call::<DeregisterConnection>((user_id, connection_id), ())
        .await?;
    Ok(count.connections)
}

/// `GET /internal/users/{id}/connections`.
pub async fn connections_of(
    ws_manager: &ServiceClient,
    user_id: Uuid,
) -> Result<Vec<ConnectionRef>, ClientError> {
    ws_manager.call::<UserConnections>(user_id, ()).await
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
    if let Err(err) = ws_manager.call::<Deliver>((), request).await {
        tracing::warn!(error = %err, "cannot deliver an event");
    }
}

/// What a client is told about a failed call to another service: its 4xx code passes
/// through (e.g. `chat_not_found`, `chat_ended`, `text_too_long`); outages become
/// `unavailable`, other failures `internal` (the cause goes to the log only).
pub fn error_detail(err: ClientError) -> ErrorDetail {
    let (code, message) = match &err {
        ClientError::Api { status, body, .. } if status.is_client_error() => {
            (body.error.code, body.error.message.clone())
        }
        ClientError::Api { status, .. }
            if *status != axum::http::StatusCode::SERVICE_UNAVAILABLE =>
        {
            tracing::error!(error = %err, "a backend service failed");
            (
                ErrorCode::Internal,
                "the server failed to handle the frame".to_owned(),
            )
        }
        _ => {
            tracing::warn!(error = %err, "a backend service is unavailable");
            (
                ErrorCode::Unavailable,
                "the service is temporarily unavailable; retry shortly".to_owned(),
            )
        }
    };
    ErrorDetail {
        code,
        message,
        field: None,
    }
}

/// The `error` frame for a failed call to another service (see [`error_detail`]).
pub fn client_error_frame(
    err: ClientError,
    in_reply_to: &str,
    client_msg_id: Option<String>,
) -> ServerFrame {
    error_frame(error_detail(err), in_reply_to, client_msg_id)
}

/// The `error` frame answering a client frame of type `in_reply_to`.
pub fn error_frame(
    detail: ErrorDetail,
    in_reply_to: &str,
    client_msg_id: Option<String>,
) -> ServerFrame {
    ServerFrame::Error {
        code: detail.code,
        message: detail.message,
        in_reply_to: Some(in_reply_to.to_owned()),
        client_msg_id,
    }
}
