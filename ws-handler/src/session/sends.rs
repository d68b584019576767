//! A connection's sends, pipelined: the reader hands each `send` over and goes on reading
//! while earlier ones are being stored. Sends waiting when a store call returns go to
//! message-service together as one batch, stored in order, so a connection's messages to a
//! chat get seqs in the order it sent them, and acks and fan-outs leave in that order.

use std::sync::PoisonError;

use tokio::sync::mpsc;
use uuid::Uuid;
use wire::api::message::{
    AppendBatchRequest, AppendItem, AppendMessageRequest, AppendMessageResponse, AppendMessages,
    AppendOutcome,
};
use wire::error::{ErrorCode, ErrorDetail};
use wire::protocol::ServerFrame;

use crate::chats::{self, error_detail, error_frame};
use crate::fanout;
use crate::outbound::{self, Closer, Outbound, OutboundSender, PendingSends};
use crate::state::AppState;

/// Most sends of one connection stored in one call.
pub const MAX_BATCH: usize = 64;

/// One `send` frame, parsed and admitted by the rate limits.
#[derive(Debug)]
pub struct Send {
    /// The chat.
    pub chat_id: Uuid,
    /// The client's id for it.
    pub client_msg_id: String,
    /// The text.
    pub text: String,
}

/// What became of one send: stored (or found stored), or why not.
type Outcome = Result<AppendMessageResponse, ErrorDetail>;

/// The storing side of one connection's sends.
#[derive(Debug)]
pub struct Pipeline {
    state: AppState,
    user_id: Uuid,
    connection_id: Uuid,
    outbound: OutboundSender,
    closer: Closer,
    pending: PendingSends,
}

impl Pipeline {
    /// The pipeline of a connection.
    pub fn new(
        state: AppState,
        user_id: Uuid,
        connection_id: Uuid,
        outbound: OutboundSender,
        closer: Closer,
        pending: PendingSends,
    ) -> Self {
        Self {
            state,
            user_id,
            connection_id,
            outbound,
            closer,
            pending,
        }
    }

    /// Stores the sends in arrival order, a batch at a time, until the reader is done and
    /// every send handed over is answered (or the connection closes).
    pub async fn run(self, mut sends: mpsc::Receiver<Send>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while sends.recv_many(&mut batch, MAX_BATCH).await > 0 {
            if !self.store(std::mem::take(&mut batch)).await {
                return;
            }
        }
    }

    /// Stores one batch, then per send in order: the ack (or error) to this connection and
    /// the message to every other connection of the chat. False when the connection closed.
    async fn store(&self, batch: Vec<Send>) -> bool {
        let outcomes = self.append(&batch).await;
        for (send, outcome) in batch.into_iter().zip(outcomes) {
            let response = match outcome {
                Ok(response) => response,
                Err(detail) => {
                    self.forget_pending(&send);
                    let frame = error_frame(detail, "send", Some(send.client_msg_id));
                    if !self.reply(frame).await {
                        return false;
                    }
                    continue;
                }
            };
            metrics::counter!("ws_messages_sent_total").increment(1);
            let message = response.message;
            self.state
                .chats()
                .remember_participants(send.chat_id, &response.participants);
            let ack = ServerFrame::Ack {
                client_msg_id: send.client_msg_id,
                chat_id: send.chat_id,
                seq: message.seq,
                message_id: message.id,
                created_at: message.created_at,
                duplicate: !response.created,
            };
            if !self.reply(ack).await {
                return false;
            }
            // Also on a resend: the first delivery may have been lost; receivers drop repeats.
            fanout::fan_out(
                &self.state,
                &response.participants,
                ServerFrame::Message { message },
                Some(self.connection_id),
            )
            .await;
        }
        true
    }

    /// Stores the batch: one call, items in order.
    async fn append(&self, batch: &[Send]) -> Vec<Outcome> {
        let message_service = &self.state.peers().message;
        if let [send] = batch {
            let request = AppendMessageRequest {
                sender_id: self.user_id,
                client_msg_id: send.client_msg_id.clone(),
                text: send.text.clone(),
            };
            return vec![
                chats::append(message_service, send.chat_id, request)
                    .await
                    .map_err(error_detail),
            ];
        }
        let request = AppendBatchRequest {
            items: batch
                .iter()
                .map(|send| AppendItem {
                    chat_id: send.chat_id,
                    message: AppendMessageRequest {
                        sender_id: self.user_id,
                        client_msg_id: send.client_msg_id.clone(),
                        text: send.text.clone(),
                    },
                })
                .collect(),
        };
        metrics::histogram!("ws_send_batch_size").record(batch.len() as f64);
        match message_service.call::<AppendMessages>((), request).await {
            Ok(answer) if answer.results.len() == batch.len() => answer
                .results
                .into_iter()
                .map(|outcome| match outcome {
                    AppendOutcome::Stored(response) => Ok(response),
                    AppendOutcome::Refused { error } => Err(error),
                })
                .collect(),
            Ok(answer) => {
                tracing::error!(
                    sent = batch.len(),
                    answered = answer.results.len(),
                    "message-service answered a batch with the wrong number of outcomes"
                );
                let detail = ErrorDetail {
                    code: ErrorCode::Internal,
                    message: "the server failed to handle the frame".to_owned(),
                    field: None,
                };
                vec![Err(detail); batch.len()]
            }
            // No answer: the client resends with the same ids, which stores each once.
            Err(err) => vec![Err(error_detail(err)); batch.len()],
        }
    }

    fn forget_pending(&self, send: &Send) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(send.chat_id, send.client_msg_id.clone()));
    }

    async fn reply(&self, frame: ServerFrame) -> bool {
        outbound::enqueue(
            &self.outbound,
            &self.closer,
            self.state.config().write_timeout,
            Outbound::Frame(Box::new(frame)),
        )
        .await
    }
}
