//! What callers see: a message's status from the caller's side, and chat summaries.

use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::message::{
    ChatSummary, DeliveryState, Message, MessageStatus, MessageView, Watermark,
};

use crate::error::MessageError;
use crate::store::{ChatDigest, MarkKind, MessageStore, StoredChat, WatermarkMark};

/// The status of `message` as `viewer` sees it.
///
/// For the viewer's own messages it is how far the other participants got (delivered or
/// read once it is for every one of them, at the time the last of them got there); for a
/// message from someone else it is how far the viewer got.
pub fn message_status(
    message: &Message,
    viewer: Uuid,
    participants: &[Uuid],
    watermarks: &[Watermark],
    marks: &[WatermarkMark],
) -> MessageStatus {
    let observers: Vec<Uuid> = if message.sender_id == viewer {
        participants
            .iter()
            .copied()
            .filter(|p| *p != viewer)
            .collect()
    } else {
        vec![viewer]
    };
    let reached = |kind: MarkKind| -> Option<Option<OffsetDateTime>> {
        if observers.is_empty() {
            return None;
        }
        let mut latest: Option<OffsetDateTime> = None;
        for observer in &observers {
            let watermark = watermarks.iter().find(|w| w.user_id == *observer)?;
            let (seq, fallback) = match kind {
                MarkKind::Delivered => (watermark.delivered_seq, watermark.delivered_at),
                MarkKind::Read => (watermark.read_seq, watermark.read_at),
            };
            if seq < message.seq {
                return None;
            }
            // The first move of the watermark to this seq or beyond is when it got there.
            let at = marks
                .iter()
                .filter(|m| m.user_id == *observer && m.kind == kind && m.seq >= message.seq)
                .min_by_key(|m| m.seq)
                .map(|m| m.at)
                .or(fallback);
            latest = latest.max(at);
        }
        Some(latest)
    };
    let delivered = reached(MarkKind::Delivered);
    let read = reached(MarkKind::Read);
    let state = match (&delivered, &read) {
        (_, Some(_)) => DeliveryState::Read,
        (Some(_), None) => DeliveryState::Delivered,
        (None, None) => DeliveryState::Sent,
    };
    MessageStatus {
        state,
        delivered_at: delivered.flatten(),
        read_at: read.flatten(),
    }
}

/// `messages` of `chat` (ascending) with their status as `viewer` sees it.
pub async fn message_views(
    store: &dyn MessageStore,
    chat: &StoredChat,
    viewer: Uuid,
    messages: Vec<Message>,
) -> Result<Vec<MessageView>, MessageError> {
    let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
        return Ok(Vec::new());
    };
    let watermarks = store.watermarks(chat.chat.id).await?;
    let marks = store.marks(chat.chat.id, first.seq, last.seq).await?;
    Ok(messages
        .into_iter()
        .map(|message| MessageView {
            status: message_status(
                &message,
                viewer,
                &chat.chat.participants,
                &watermarks,
                &marks,
            ),
            message,
        })
        .collect())
}

fn summary_of(
    chat: StoredChat,
    digest: ChatDigest,
    viewer: Uuid,
) -> Result<ChatSummary, MessageError> {
    let others: Vec<_> = chat
        .profiles
        .iter()
        .filter(|p| p.id != viewer)
        .cloned()
        .collect();
    let partner = others.first().cloned().ok_or_else(|| {
        MessageError::Internal(format!("chat {} has no other participant", chat.chat.id))
    })?;
    let last_message = digest.last_message.map(|message| MessageView {
        status: message_status(
            &message,
            viewer,
            &chat.chat.participants,
            &digest.watermarks,
            &digest.last_marks,
        ),
        message,
    });
    Ok(ChatSummary {
        id: chat.chat.id,
        partner,
        others,
        created_at: chat.chat.created_at,
        ended_at: chat.chat.ended_at,
        ended_by: chat.chat.ended_by,
        last_message,
        unread_count: digest.unread_count,
        last_seq: chat.chat.last_seq,
        watermarks: digest.watermarks,
    })
}

/// The summaries of `chats` for participant `viewer`, read in a fixed number of queries.
pub async fn chat_summaries(
    store: &dyn MessageStore,
    chats: Vec<StoredChat>,
    viewer: Uuid,
) -> Result<Vec<ChatSummary>, MessageError> {
    let digests = store.digests(&chats, viewer).await?;
    chats
        .into_iter()
        .zip(digests)
        .map(|(chat, digest)| summary_of(chat, digest, viewer))
        .collect()
}

/// The summary of one chat for participant `viewer`.
pub async fn chat_summary(
    store: &dyn MessageStore,
    chat: StoredChat,
    viewer: Uuid,
) -> Result<ChatSummary, MessageError> {
    chat_summaries(store, vec![chat], viewer)
        .await?
        .pop()
        .ok_or_else(|| MessageError::Internal("no summary of a chat".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn msg(seq: u64, sender: Uuid) -> Message {
        Message {
            id: Uuid::new_v4(),
            chat_id: Uuid::nil(),
            seq,
            sender_id: sender,
            client_msg_id: format!("c{seq}"),
            text: "hi".to_owned(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn watermark(user: Uuid, delivered: u64, read: u64, at: OffsetDateTime) -> Watermark {
        Watermark {
            chat_id: Uuid::nil(),
            user_id: user,
            delivered_seq: delivered,
            read_seq: read,
            delivered_at: (delivered > 0).then_some(at),
            read_at: (read > 0).then_some(at),
        }
    }

    fn mark(user: Uuid, kind: MarkKind, seq: u64, at: OffsetDateTime) -> WatermarkMark {
        WatermarkMark {
            user_id: user,
            kind,
            seq,
            at,
        }
    }

    #[test]
    fn my_message_is_delivered_and_read_when_the_partner_got_there() {
        let [me, partner] = [Uuid::new_v4(), Uuid::new_v4()];
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let t1 = t0 + Duration::seconds(5);
        let watermarks = [watermark(me, 0, 0, t0), watermark(partner, 3, 2, t1)];
        let marks = [
            mark(partner, MarkKind::Delivered, 1, t0),
            mark(partner, MarkKind::Delivered, 3, t1),
            mark(partner, MarkKind::Read, 2, t1),
        ];
        let status = |seq| message_status(&msg(seq, me), me, &[me, partner], &watermarks, &marks);
        assert_eq!(status(1).state, DeliveryState::Read);
        assert_eq!(status(1).delivered_at, Some(t0));
        assert_eq!(status(1).read_at, Some(t1));
        assert_eq!(status(3).state, DeliveryState::Delivered);
        assert_eq!(status(3).delivered_at, Some(t1));
        assert_eq!(status(3).read_at, None);
        assert_eq!(status(4).state, DeliveryState::Sent);
    }

    #[test]
    fn a_partner_message_shows_how_far_i_got() {
        let [me, partner] = [Uuid::new_v4(), Uuid::new_v4()];
        let t = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let watermarks = [watermark(me, 2, 1, t), watermark(partner, 9, 9, t)];
        let status =
            |seq| message_status(&msg(seq, partner), me, &[me, partner], &watermarks, &[]).state;
        assert_eq!(status(1), DeliveryState::Read);
        assert_eq!(status(2), DeliveryState::Delivered);
        assert_eq!(status(3), DeliveryState::Sent);
    }

    #[test]
    fn in_a_group_my_message_is_read_only_when_everyone_read_it() {
        let [me, p1, p2] = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
        let t = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let watermarks = [
            watermark(me, 0, 0, t),
            watermark(p1, 5, 5, t),
            watermark(p2, 5, 0, t + Duration::seconds(1)),
        ];
        let status = message_status(&msg(4, me), me, &[me, p1, p2], &watermarks, &[]);
        assert_eq!(status.state, DeliveryState::Delivered);
        assert_eq!(status.delivered_at, Some(t + Duration::seconds(1)));
    }
}
