//! The in-memory backend (the one-process form's `--in-memory` mode, or
//! `sqlite::memory:` as message-service's database URL): every chat, message, block and
//! report in this process's memory behind one lock, lost on exit.
//!
//! Each operation takes the lock once, does its work without waiting on anything and
//! releases it, so a whole batch of appends is one short critical section on the caller's
//! thread: no database worker to hand statements to and back. A batch is planned before
//! anything is written (the only failure, a message id that exists already, is found
//! while planning), so it applies whole or not at all, as the other backends' transactions
//! do. Times are kept at millisecond precision, as the other backends store them.
//!
//! Nothing that grows with the messages is rehashed or copied whole as it grows (the lock
//! would be held, and every connection kept waiting, for as long as that takes): a chat's
//! messages are kept in fixed-size chunks ([`MessageLog`]), and the maps keyed per message
//! are B-trees.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;
use wire::api::message::{
    BlockedUser, Chat, Message, Report, ReportOutcome, ReportResolution, Watermark,
};

use super::{
    AppendOutcome, ChatCursor, ChatDigest, MarkKind, MessageStore, NewChat, NewMessage, StoreError,
    StoredChat, WatermarkMark, Written, from_millis, sole_outcome, to_millis, watermark_targets,
};

/// Chats, messages, blocks and reports in this process's memory.
#[derive(Debug, Default)]
pub struct MemoryMessageStore {
    state: Mutex<State>,
}

impl MemoryMessageStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every writer plans before it writes, so a panic cannot leave half an update.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What `read` makes of chat `chat_id` (with the rest of the store at hand); the empty
    /// answer when there is no such chat, as the other backends' queries give.
    fn read_chat<T: Default>(
        &self,
        chat_id: Uuid,
        read: impl FnOnce(&State, &ChatEntry) -> T,
    ) -> T {
        let state = self.state();
        state
            .chats
            .get(&chat_id)
            .map_or_else(T::default, |entry| read(&state, entry))
    }
}

#[derive(Debug, Default)]
struct State {
    chats: HashMap<Uuid, ChatEntry>,
    /// Chat id per match id (creation is idempotent per match).
    by_match: HashMap<Uuid, Uuid>,
    /// Each user's chats by (creation in ms, id), for the newest-first list.
    by_user: HashMap<Uuid, BTreeSet<(i64, Uuid)>>,
    /// Where each message is: its chat and seq (ids are time-ordered, so new ones go to
    /// the tree's right edge).
    message_ids: BTreeMap<Uuid, (Uuid, u64)>,
    /// Blocks by (blocker, blocked), with their time.
    blocks: BTreeMap<(Uuid, Uuid), OffsetDateTime>,
    /// Who blocked each user.
    blockers: HashMap<Uuid, BTreeSet<Uuid>>,
    reports: HashMap<Uuid, (Report, Option<ReportResolution>)>,
    /// Report ids by (creation in ms, id): the review order.
    report_order: BTreeSet<(i64, Uuid)>,
    /// Report ids per reporter and per reported user.
    reports_by: HashMap<Uuid, Vec<Uuid>>,
    reports_of: HashMap<Uuid, Vec<Uuid>>,
}

/// Messages per chunk of a [`MessageLog`].
const LOG_CHUNK: usize = 1024;

/// A chat's messages in order, in chunks of [`LOG_CHUNK`]: appending never moves the
/// messages already there (a growing `Vec` would copy them all at each doubling).
#[derive(Debug, Default)]
struct MessageLog {
    chunks: Vec<Vec<Message>>,
    len: usize,
}

impl MessageLog {
    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, message: Message) {
        if self.len.is_multiple_of(LOG_CHUNK) {
            self.chunks.push(Vec::with_capacity(LOG_CHUNK));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(message);
        }
        self.len += 1;
    }

    fn get(&self, index: usize) -> Option<&Message> {
        self.chunks.get(index / LOG_CHUNK)?.get(index % LOG_CHUNK)
    }

    /// The messages at indexes `start..end` (clamped to the log), in order.
    fn range(&self, start: usize, end: usize) -> impl Iterator<Item = &Message> {
        let end = end.min(self.len);
        let start = start.min(end);
        let first = start / LOG_CHUNK;
        self.chunks
            .iter()
            .skip(first)
            .flatten()
            .skip(start - first * LOG_CHUNK)
            .take(end - start)
    }
}

#[derive(Debug)]
struct ChatEntry {
    stored: StoredChat,
    /// One per participant, in participant order.
    watermarks: Vec<Watermark>,
    /// The messages in seq order: seq `n` is at index `n - 1`.
    messages: MessageLog,
    /// Seq per sender and client message id: resends find their original here.
    by_client: HashMap<Uuid, BTreeMap<String, u64>>,
    /// Every watermark move, in the order they happened.
    marks: Vec<WatermarkMark>,
}

impl ChatEntry {
    fn chat(&self) -> &Chat {
        &self.stored.chat
    }

    fn position(&self, user_id: Uuid) -> Option<usize> {
        self.chat().participants.iter().position(|p| *p == user_id)
    }

    /// The messages with seq above `after`, in seq order.
    fn after(&self, after: u64) -> impl Iterator<Item = &Message> {
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        self.messages.range(start, self.messages.len())
    }

    fn message(&self, seq: u64) -> Option<&Message> {
        let index = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.messages.get(index)
    }

    fn original(&self, sender_id: Uuid, client_msg_id: &str) -> Option<&Message> {
        let seq = self.by_client.get(&sender_id)?.get(client_msg_id)?;
        self.message(*seq)
    }

    /// Per participant and kind, the first move at a seq above `above` (or at `above`
    /// itself when `inclusive`).
    fn first_moves_past(&self, above: u64, inclusive: bool) -> Vec<WatermarkMark> {
        let mut first: Vec<WatermarkMark> = Vec::new();
        for mark in &self.marks {
            let past = if inclusive {
                mark.seq >= above
            } else {
                mark.seq > above
            };
            if !past {
                continue;
            }
            match first
                .iter_mut()
                .find(|m| m.user_id == mark.user_id && m.kind == mark.kind)
            {
                Some(known) if known.seq <= mark.seq => {}
                Some(known) => *known = mark.clone(),
                None => first.push(mark.clone()),
            }
        }
        first
    }
}

/// `t` as the store keeps it: whole milliseconds.
fn kept(t: OffsetDateTime) -> OffsetDateTime {
    from_millis(to_millis(t)).unwrap_or(t)
}

/// What one item of a batch will do, decided before anything is written.
enum Step {
    /// Store this new message.
    Insert(Message),
    /// Answer with the stored original, or refuse.
    Answer(AppendOutcome),
}

impl State {
    /// Plans `batch` in order against the stored state: each item's outcome, and the new
    /// messages with their seqs. Writes nothing; the error is a message id already taken.
    fn plan(&self, batch: &[NewMessage]) -> Result<Vec<Step>, StoreError> {
        // The batch's own effects on top of the stored state: next seq per chat, and the
        // messages it creates by resend key.
        let mut next_seq: HashMap<Uuid, u64> = HashMap::new();
        let mut created: HashMap<(Uuid, Uuid, &str), Message> = HashMap::new();
        let mut new_ids = HashSet::new();
        let mut steps = Vec::with_capacity(batch.len());
        for new in batch {
            let key = (new.chat_id, new.sender_id, new.client_msg_id.as_str());
            let entry = self.chats.get(&new.chat_id);
            let original = created.get(&key).cloned().or_else(|| {
                entry.and_then(|e| e.original(new.sender_id, &new.client_msg_id).cloned())
            });
            if let Some(original) = original {
                steps.push(Step::Answer(Ok(Written {
                    value: original,
                    created: false,
                })));
                continue;
            }
            let Some(entry) = entry.filter(|e| e.position(new.sender_id).is_some()) else {
                steps.push(Step::Answer(Err(StoreError::ChatNotFound)));
                continue;
            };
            if entry.chat().ended_at.is_some() {
                steps.push(Step::Answer(Err(StoreError::ChatEnded)));
                continue;
            }
            if self.message_ids.contains_key(&new.id) || !new_ids.insert(new.id) {
                return Err(StoreError::Backend(format!(
                    "message id {} is already taken",
                    new.id
                )));
            }
            let seq = next_seq.entry(new.chat_id).or_insert(entry.chat().last_seq);
            *seq += 1;
            let message = Message {
                id: new.id,
                chat_id: new.chat_id,
                seq: *seq,
                sender_id: new.sender_id,
                client_msg_id: new.client_msg_id.clone(),
                text: new.text.clone(),
                created_at: kept(new.created_at),
            };
            created.insert(key, message.clone());
            steps.push(Step::Insert(message));
        }
        Ok(steps)
    }

    /// Stores a planned new message (its seq is the chat's next).
    fn insert(&mut self, message: Message) {
        self.message_ids
            .insert(message.id, (message.chat_id, message.seq));
        if let Some(entry) = self.chats.get_mut(&message.chat_id) {
            entry.stored.chat.last_seq = message.seq;
            entry
                .by_client
                .entry(message.sender_id)
                .or_default()
                .insert(message.client_msg_id.clone(), message.seq);
            entry.messages.push(message);
        }
    }

    fn participant_entry(&self, chat_id: Uuid, user_id: Uuid) -> Result<&ChatEntry, StoreError> {
        self.chats
            .get(&chat_id)
            .filter(|e| e.position(user_id).is_some())
            .ok_or(StoreError::ChatNotFound)
    }

    fn report(&self, id: Uuid) -> Option<&(Report, Option<ReportResolution>)> {
        self.reports.get(&id)
    }
}

#[async_trait]
impl MessageStore for MemoryMessageStore {
    async fn create_chat(&self, new: &NewChat) -> Result<Written<StoredChat>, StoreError> {
        let mut state = self.state();
        if let Some(id) = state.by_match.get(&new.match_id) {
            let entry = state
                .chats
                .get(id)
                .ok_or_else(|| StoreError::Backend(format!("chat {id} vanished")))?;
            return Ok(Written {
                value: entry.stored.clone(),
                created: false,
            });
        }
        if state.chats.contains_key(&new.id) {
            return Err(StoreError::Backend(format!(
                "chat id {} is already taken",
                new.id
            )));
        }
        for (i, a) in new.participants.iter().enumerate() {
            for b in &new.participants[i + 1..] {
                if blocked_either_way(&state, a.id, b.id) {
                    return Err(StoreError::Blocked);
                }
            }
        }
        let created_at = kept(new.created_at);
        let participants: Vec<Uuid> = new.participants.iter().map(|p| p.id).collect();
        let stored = StoredChat {
            chat: Chat {
                id: new.id,
                match_id: new.match_id,
                participants: participants.clone(),
                created_at,
                ended_at: None,
                ended_by: None,
                last_seq: 0,
            },
            profiles: new.participants.clone(),
        };
        let watermarks = participants
            .iter()
            .map(|&user_id| Watermark {
                chat_id: new.id,
                user_id,
                delivered_seq: 0,
                read_seq: 0,
                delivered_at: None,
                read_at: None,
            })
            .collect();
        let order = (to_millis(created_at), new.id);
        for user_id in participants {
            state.by_user.entry(user_id).or_default().insert(order);
        }
        state.by_match.insert(new.match_id, new.id);
        state.chats.insert(
            new.id,
            ChatEntry {
                stored: stored.clone(),
                watermarks,
                messages: MessageLog::default(),
                by_client: HashMap::new(),
                marks: Vec::new(),
            },
        );
        Ok(Written {
            value: stored,
            created: true,
        })
    }

    async fn chat(&self, id: Uuid) -> Result<Option<StoredChat>, StoreError> {
        Ok(self.state().chats.get(&id).map(|e| e.stored.clone()))
    }

    async fn chats_of(
        &self,
        user_id: Uuid,
        active_only: bool,
        limit: u32,
        before: Option<ChatCursor>,
    ) -> Result<Vec<StoredChat>, StoreError> {
        let state = self.state();
        let Some(chats) = state.by_user.get(&user_id) else {
            return Ok(Vec::new());
        };
        // Without a cursor, one past every chat: the newest page.
        let before = before.map_or((i64::MAX, Uuid::max()), |c| (to_millis(c.created_at), c.id));
        Ok(chats
            .range(..before)
            .rev()
            .filter_map(|(_, id)| state.chats.get(id))
            .filter(|e| !active_only || e.chat().ended_at.is_none())
            .take(limit as usize)
            .map(|e| e.stored.clone())
            .collect())
    }

    async fn end_chat(
        &self,
        chat_id: Uuid,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Written<Chat>, StoreError> {
        let mut state = self.state();
        state.participant_entry(chat_id, user_id)?;
        let entry = state
            .chats
            .get_mut(&chat_id)
            .ok_or(StoreError::ChatNotFound)?;
        let chat = &mut entry.stored.chat;
        if chat.ended_at.is_some() {
            return Ok(Written {
                value: chat.clone(),
                created: false,
            });
        }
        chat.ended_at = Some(kept(now));
        chat.ended_by = Some(user_id);
        Ok(Written {
            value: chat.clone(),
            created: true,
        })
    }

    async fn append(&self, new: &NewMessage) -> Result<Written<Message>, StoreError> {
        sole_outcome(self.append_batch(std::slice::from_ref(new)).await?)
    }

    async fn append_batch(&self, batch: &[NewMessage]) -> Result<Vec<AppendOutcome>, StoreError> {
        let mut state = self.state();
        let steps = state.plan(batch)?;
        Ok(steps
            .into_iter()
            .map(|step| match step {
                Step::Insert(message) => {
                    state.insert(message.clone());
                    Ok(Written {
                        value: message,
                        created: true,
                    })
                }
                Step::Answer(outcome) => outcome,
            })
            .collect())
    }

    async fn messages_after(
        &self,
        chat_id: Uuid,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        Ok(self.read_chat(chat_id, |_, entry| {
            entry.after(after).take(limit as usize).cloned().collect()
        }))
    }

    async fn messages_before(
        &self,
        chat_id: Uuid,
        before: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        Ok(self.read_chat(chat_id, |_, entry| {
            // Seqs below `before` are the first `before - 1` messages.
            let end = usize::try_from(before.saturating_sub(1))
                .unwrap_or(usize::MAX)
                .min(entry.messages.len());
            let start = end.saturating_sub(limit as usize);
            entry.messages.range(start, end).cloned().collect()
        }))
    }

    async fn messages_by_id(
        &self,
        chat_id: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<Message>, StoreError> {
        Ok(self.read_chat(chat_id, |state, entry| {
            ids.iter()
                .filter_map(|id| state.message_ids.get(id))
                .filter(|(chat, _)| *chat == chat_id)
                .filter_map(|(_, seq)| entry.message(*seq).cloned())
                .collect()
        }))
    }

    async fn count_from_others_after(
        &self,
        chat_id: Uuid,
        user_id: Uuid,
        after: u64,
    ) -> Result<u64, StoreError> {
        Ok(self.read_chat(chat_id, |_, entry| count_from_others(entry, user_id, after)))
    }

    async fn advance_watermark(
        &self,
        chat_id: Uuid,
        user_id: Uuid,
        delivered: Option<u64>,
        read: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<Watermark, StoreError> {
        let mut state = self.state();
        let position = state
            .participant_entry(chat_id, user_id)?
            .position(user_id)
            .ok_or(StoreError::ChatNotFound)?;
        let entry = state
            .chats
            .get_mut(&chat_id)
            .ok_or(StoreError::ChatNotFound)?;
        let (delivered, read) = watermark_targets(delivered, read, entry.chat().last_seq);
        let at = kept(now);
        let mark = &mut entry.watermarks[position];
        let mut moves = Vec::new();
        if mark.delivered_seq < delivered {
            mark.delivered_seq = delivered;
            mark.delivered_at = Some(at);
            moves.push((MarkKind::Delivered, delivered));
        }
        if mark.read_seq < read {
            mark.read_seq = read;
            mark.read_at = Some(at);
            moves.push((MarkKind::Read, read));
        }
        let watermark = mark.clone();
        entry
            .marks
            .extend(moves.into_iter().map(|(kind, seq)| WatermarkMark {
                user_id,
                kind,
                seq,
                at,
            }));
        Ok(watermark)
    }

    async fn watermarks(&self, chat_id: Uuid) -> Result<Vec<Watermark>, StoreError> {
        Ok(self.read_chat(chat_id, |_, entry| entry.watermarks.clone()))
    }

    async fn marks(
        &self,
        chat_id: Uuid,
        from: u64,
        to: u64,
    ) -> Result<Vec<WatermarkMark>, StoreError> {
        Ok(self.read_chat(chat_id, |_, entry| {
            let mut marks: Vec<WatermarkMark> = entry
                .marks
                .iter()
                .filter(|m| (from..=to).contains(&m.seq))
                .cloned()
                .collect();
            marks.extend(entry.first_moves_past(to, false));
            marks
        }))
    }

    async fn block(
        &self,
        blocker: Uuid,
        blocked: Uuid,
        now: OffsetDateTime,
    ) -> Result<Written<BlockedUser>, StoreError> {
        let mut state = self.state();
        if let Some(at) = state.blocks.get(&(blocker, blocked)) {
            return Ok(Written {
                value: BlockedUser {
                    user_id: blocked,
                    created_at: *at,
                },
                created: false,
            });
        }
        let at = kept(now);
        state.blocks.insert((blocker, blocked), at);
        state.blockers.entry(blocked).or_default().insert(blocker);
        Ok(Written {
            value: BlockedUser {
                user_id: blocked,
                created_at: at,
            },
            created: true,
        })
    }

    async fn digests(
        &self,
        chats: &[StoredChat],
        viewer: Uuid,
    ) -> Result<Vec<ChatDigest>, StoreError> {
        let state = self.state();
        Ok(chats
            .iter()
            .map(|chat| {
                let Some(entry) = state.chats.get(&chat.chat.id) else {
                    return ChatDigest::default();
                };
                let last_seq = chat.chat.last_seq;
                let read_seq = entry.position(viewer).map(|i| entry.watermarks[i].read_seq);
                ChatDigest {
                    last_message: entry.message(last_seq).cloned(),
                    watermarks: entry.watermarks.clone(),
                    last_marks: entry.first_moves_past(last_seq, true),
                    unread_count: read_seq.map_or(0, |read| count_from_others(entry, viewer, read)),
                }
            })
            .collect())
    }

    async fn unblock(&self, blocker: Uuid, blocked: Uuid) -> Result<bool, StoreError> {
        let mut state = self.state();
        let removed = state.blocks.remove(&(blocker, blocked)).is_some();
        if let Some(blockers) = state.blockers.get_mut(&blocked) {
            blockers.remove(&blocker);
            if blockers.is_empty() {
                state.blockers.remove(&blocked);
            }
        }
        Ok(removed)
    }

    async fn blocks_of(&self, user_id: Uuid) -> Result<Vec<BlockedUser>, StoreError> {
        let state = self.state();
        let mut blocks: Vec<BlockedUser> = state
            .blocks
            .range((user_id, Uuid::nil())..=(user_id, Uuid::max()))
            .map(|((_, blocked), at)| BlockedUser {
                user_id: *blocked,
                created_at: *at,
            })
            .collect();
        // Newest first; as old: by id.
        blocks.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(a.user_id.cmp(&b.user_id))
        });
        Ok(blocks)
    }

    async fn blockers_of(&self, user_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        Ok(self
            .state()
            .blockers
            .get(&user_id)
            .map(|b| b.iter().copied().collect())
            .unwrap_or_default())
    }

    async fn is_blocked(&self, a: Uuid, b: Uuid) -> Result<bool, StoreError> {
        Ok(blocked_either_way(&self.state(), a, b))
    }

    async fn add_report(&self, report: &Report) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.reports.contains_key(&report.id) {
            return Err(StoreError::Backend(format!(
                "report id {} is already taken",
                report.id
            )));
        }
        let mut report = report.clone();
        report.created_at = kept(report.created_at);
        state
            .report_order
            .insert((to_millis(report.created_at), report.id));
        state
            .reports_by
            .entry(report.reporter_id)
            .or_default()
            .push(report.id);
        state
            .reports_of
            .entry(report.reported_id)
            .or_default()
            .push(report.id);
        state.reports.insert(report.id, (report, None));
        Ok(())
    }

    async fn reporters_of(
        &self,
        user_id: Uuid,
        since: OffsetDateTime,
    ) -> Result<Vec<Uuid>, StoreError> {
        let state = self.state();
        let mut reporters: Vec<Uuid> = Vec::new();
        for id in state.reports_of.get(&user_id).into_iter().flatten() {
            let Some((report, resolution)) = state.report(*id) else {
                continue;
            };
            let dismissed = resolution
                .as_ref()
                .is_some_and(|r| r.outcome == ReportOutcome::Dismissed);
            if report.created_at >= since && !dismissed && !reporters.contains(&report.reporter_id)
            {
                reporters.push(report.reporter_id);
            }
        }
        Ok(reporters)
    }

    async fn report_times(
        &self,
        reporter: Uuid,
        since: OffsetDateTime,
    ) -> Result<Vec<OffsetDateTime>, StoreError> {
        let state = self.state();
        let mut times: Vec<OffsetDateTime> = state
            .reports_by
            .get(&reporter)
            .into_iter()
            .flatten()
            .filter_map(|id| state.report(*id))
            .map(|(report, _)| report.created_at)
            .filter(|at| *at >= since)
            .collect();
        times.sort_unstable();
        Ok(times)
    }

    async fn reports(
        &self,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<(Report, Option<ReportResolution>)>, StoreError> {
        let state = self.state();
        Ok(state
            .report_order
            .iter()
            .filter_map(|(_, id)| state.report(*id))
            .filter(|(_, resolution)| !open_only || resolution.is_none())
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn resolve_report(
        &self,
        id: Uuid,
        resolution: &ReportResolution,
    ) -> Result<Option<(Report, ReportResolution)>, StoreError> {
        let mut state = self.state();
        let Some((report, kept_resolution)) = state.reports.get_mut(&id) else {
            return Ok(None);
        };
        let resolution = kept_resolution.get_or_insert_with(|| {
            let mut resolution = resolution.clone();
            resolution.at = kept(resolution.at);
            resolution
        });
        Ok(Some((report.clone(), resolution.clone())))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Whether either user blocked the other.
fn blocked_either_way(state: &State, a: Uuid, b: Uuid) -> bool {
    state.blocks.contains_key(&(a, b)) || state.blocks.contains_key(&(b, a))
}

/// How many messages of the chat not sent by `user_id` have seq above `after`.
fn count_from_others(entry: &ChatEntry, user_id: Uuid, after: u64) -> u64 {
    entry
        .after(after)
        .filter(|m| m.sender_id != user_id)
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64) -> Message {
        Message {
            id: Uuid::now_v7(),
            chat_id: Uuid::nil(),
            seq,
            sender_id: Uuid::nil(),
            client_msg_id: seq.to_string(),
            text: String::new(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_log_reads_across_its_chunks_in_order() {
        let mut log = MessageLog::default();
        let n = 2 * LOG_CHUNK + 5;
        for seq in 1..=n as u64 {
            log.push(message(seq));
        }
        assert_eq!(log.len(), n);
        assert_eq!(log.chunks.len(), 3);
        assert_eq!(
            log.get(LOG_CHUNK).map(|m| m.seq),
            Some(LOG_CHUNK as u64 + 1)
        );
        assert!(log.get(n).is_none());
        let seqs = |start, end| log.range(start, end).map(|m| m.seq).collect::<Vec<_>>();
        let around = (LOG_CHUNK - 2..LOG_CHUNK + 3)
            .map(|i| i as u64 + 1)
            .collect::<Vec<_>>();
        assert_eq!(seqs(LOG_CHUNK - 2, LOG_CHUNK + 3), around);
        assert_eq!(seqs(0, usize::MAX).len(), n);
        assert_eq!(seqs(n - 1, usize::MAX), vec![n as u64]);
        assert!(seqs(n, usize::MAX).is_empty());
        assert!(seqs(7, 3).is_empty());
    }
}
