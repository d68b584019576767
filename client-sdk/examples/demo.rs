//! A whole conversation against a running platform: two fresh users sign up with
//! compatible wishes, queue, get matched, exchange messages, see them delivered and read,
//! and end the chat. Exits 0 only if every step happened.
//!
//! `cargo run --release -p client-sdk --example demo -- [gateway URL]`
//! (default `http://127.0.0.1:8080`, where `cargo run --release` listens). The
//! `random-chats` tests run [`run`] against the one-process platform.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use client_sdk::api::auth::{Preferences, SignupRequest};
use client_sdk::api::matching::{InterestMode, JoinQueueRequest};
use client_sdk::api::message::{DeliveryState, HistoryQuery};
use client_sdk::{Client, Connection, Event, Gender};
use uuid::Uuid;

/// How long any one step may take.
const STEP: Duration = Duration::from_secs(30);
const PASSWORD: &str = "demo password 123";
const LINES: [&str; 3] = [
    "Hi! The matcher says we both like this topic.",
    "Hello! Yes — what got you into it?",
    "A friend, years ago. Shall we say goodbye and press Next?",
];

#[tokio::main]
async fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
    match run(&url).await {
        Ok(()) => {
            println!("demo: every step happened");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("demo FAILED: {err:#}");
            ExitCode::FAILURE
        }
    }
}

pub async fn run(url: &str) -> anyhow::Result<()> {
    // A topic nobody else has, so that the two demo users are each other's only match.
    let topic = format!("demo-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let ann = sign_up(url, "ann", Gender::Female, Gender::Male, &topic)
        .await
        .context("signing up the first user")?;
    let bob = sign_up(url, "bob", Gender::Male, Gender::Female, &topic)
        .await
        .context("signing up the second user")?;
    println!("1. signed up two users interested in {topic:?}");

    let mut ann_rt = ann.connect().await.context("connecting the first user")?;
    let mut bob_rt = bob.connect().await.context("connecting the second user")?;
    let join = JoinQueueRequest {
        interests: Some(vec![topic.clone()]),
        interest_mode: Some(InterestMode::Required),
        ..JoinQueueRequest::default()
    };
    ann.join_queue(&join)
        .await
        .context("queueing the first user")?;
    bob.join_queue(&join)
        .await
        .context("queueing the second user")?;
    println!("2. both are in the queue");

    let ann_match = step(
        "the first user's matched event",
        wait_for(&mut ann_rt, |e| match e {
            Event::Matched(info) => Some(info),
            _ => None,
        }),
    )
    .await?;
    let bob_match = step(
        "the second user's matched event",
        wait_for(&mut bob_rt, |e| match e {
            Event::Matched(info) => Some(info),
            _ => None,
        }),
    )
    .await?;
    if ann_match.chat_id != bob_match.chat_id {
        bail!("the two users were matched into different chats");
    }
    let chat = ann_match.chat_id;
    println!(
        "3. matched in chat {chat} with {} (shared interests: {:?})",
        ann_match.partner.display_name, ann_match.shared_interests
    );

    let mut last_seq = 0;
    for (i, line) in LINES.iter().enumerate() {
        let (from, to, name) = if i % 2 == 0 {
            (&ann_rt, &mut bob_rt, "second")
        } else {
            (&bob_rt, &mut ann_rt, "first")
        };
        let ack = step("a send's ack", from.send(chat, line)).await?;
        let received = step(
            "the message at the other side",
            wait_for(to, |e| match e {
                Event::Message(m) if m.chat_id == chat && m.seq == ack.seq => Some(m),
                _ => None,
            }),
        )
        .await?;
        if received.text != *line {
            bail!("the {name} user received {:?}, not {line:?}", received.text);
        }
        println!(
            "4. message {} acked (seq {}) and received: {line:?}",
            i + 1,
            ack.seq
        );
        last_seq = ack.seq;
    }

    // The first user sent the last message; the second one's SDK acknowledged delivery by
    // itself. Now the second user reads it, and the first one sees both statuses.
    let bob_id = bob.user_id().await.context("the second user's id")?;
    let watermark_reached = |state: DeliveryState| {
        move |e: Event| match e {
            Event::Status(w)
                if w.chat_id == chat
                    && w.user_id == bob_id
                    && match state {
                        DeliveryState::Read => w.read_seq >= last_seq,
                        _ => w.delivered_seq >= last_seq,
                    } =>
            {
                Some(w)
            }
            _ => None,
        }
    };
    step(
        "the delivered status",
        wait_for(&mut ann_rt, watermark_reached(DeliveryState::Delivered)),
    )
    .await?;
    println!("5. the first user sees the messages delivered");
    bob_rt.mark_read(chat, last_seq).context("marking read")?;
    step(
        "the read status",
        wait_for(&mut ann_rt, watermark_reached(DeliveryState::Read)),
    )
    .await?;
    let history = ann
        .history(chat, &HistoryQuery::default())
        .await
        .context("reading the history")?;
    let mine: Vec<_> = history
        .messages
        .iter()
        .filter(|m| m.message.sender_id != bob_id)
        .collect();
    if history.messages.len() != LINES.len()
        || mine.iter().any(|m| m.status.state != DeliveryState::Read)
    {
        bail!("the history does not show every message of the first user as read");
    }
    println!("6. the first user sees the messages read, also in the history");

    ann.end_chat(chat).await.context("ending the chat")?;
    let ann_id = ann.user_id().await.context("the first user's id")?;
    let ended = step(
        "the chat-ended event",
        wait_for(&mut bob_rt, |e| match e {
            Event::ChatEnded { chat_id, ended_by } if chat_id == chat => Some(ended_by),
            _ => None,
        }),
    )
    .await?;
    if ended != ann_id {
        bail!("the chat-ended event names the wrong user");
    }
    println!("7. the first user pressed Next; the second one was told");
    ann_rt.close();
    bob_rt.close();
    Ok(())
}

async fn sign_up(
    url: &str,
    name: &str,
    gender: Gender,
    wants: Gender,
    topic: &str,
) -> anyhow::Result<Client> {
    let client = Client::new(url)?;
    let username = format!("{name}_{}", &Uuid::new_v4().simple().to_string()[..8]);
    client
        .signup(&SignupRequest {
            username,
            password: PASSWORD.to_owned(),
            display_name: format!("{} (demo)", name[..1].to_uppercase() + &name[1..]),
            gender,
            birth_date: time::macros::date!(1996 - 06 - 15),
            interests: vec![topic.to_owned(), "music".to_owned()],
        })
        .await?;
    client
        .set_preferences(&Preferences {
            genders: vec![wants],
            min_age: 18,
            max_age: 60,
            interests: vec![topic.to_owned()],
            ..Default::default()
        })
        .await?;
    Ok(client)
}

/// Waits up to [`STEP`] for `what`.
async fn step<T, E>(what: &str, future: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
where
    E: Into<anyhow::Error>,
{
    match tokio::time::timeout(STEP, future).await {
        Ok(result) => result
            .map_err(Into::into)
            .with_context(|| format!("waiting for {what}")),
        Err(_) => bail!("{what} did not come within {STEP:?}"),
    }
}

/// The first event `pick` accepts; earlier events are passed over.
async fn wait_for<T>(
    connection: &mut Connection,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> anyhow::Result<T> {
    loop {
        let event = connection
            .next_event()
            .await
            .context("the real-time connection closed")?;
        if let Event::Error { code, message } = &event {
            bail!("the server refused a frame: {message} ({code})");
        }
        if let Some(found) = pick(event) {
            return Ok(found);
        }
    }
}
