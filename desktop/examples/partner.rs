//! A scripted chat partner for demos and the screenshot script: signs up, queues on the given
//! interests, and once matched greets, reads, types and answers; it leaves the chat when the
//! file named by `--leave-when` appears. It prints one line per step to stdout.
//!
//! ```sh
//! cargo run -p desktop --example partner -- --server http://127.0.0.1:8080 --interests chess
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use client_sdk::api::auth::SignupRequest;
use client_sdk::api::matching::{InterestMode, JoinQueueRequest};
use client_sdk::{Client, Connection, Event, Gender};

/// A scripted chat partner.
#[derive(Debug, Parser)]
struct Args {
    /// The platform's gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The partner's user name (created if new).
    #[arg(long, default_value = "sam")]
    username: String,
    /// The partner's display name.
    #[arg(long, default_value = "Sam")]
    name: String,
    /// Interests, comma-separated.
    #[arg(long, default_value = "chess,films")]
    interests: String,
    /// Leave the chat once this file exists.
    #[arg(long)]
    leave_when: Option<PathBuf>,
}

const PASSWORD: &str = "correct horse battery staple";

async fn next(
    connection: &mut Connection,
    what: &str,
    mut pick: impl FnMut(&Event) -> bool,
) -> anyhow::Result<Event> {
    let wait = async {
        while let Some(event) = connection.next_event().await {
            if pick(&event) {
                return Ok(event);
            }
        }
        bail!("the connection closed while waiting for {what}")
    };
    tokio::time::timeout(Duration::from_secs(300), wait)
        .await
        .with_context(|| format!("timed out waiting for {what}"))?
}

fn step(what: &str) {
    println!("{what}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = Client::new(&args.server)?;
    let interests: Vec<String> = args
        .interests
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    let signup = SignupRequest {
        username: args.username.clone(),
        password: PASSWORD.to_owned(),
        display_name: args.name.clone(),
        gender: Gender::Male,
        birth_date: time::macros::date!(1993 - 05 - 20),
        interests: interests.clone(),
    };
    if client.signup(&signup).await.is_err() {
        client
            .login(&args.username, PASSWORD)
            .await
            .context("logging in")?;
    }
    let mut live = client.connect().await?;
    client
        .join_queue(&JoinQueueRequest {
            interest_mode: Some(InterestMode::Preferred),
            ..JoinQueueRequest::default()
        })
        .await?;
    step("queued");
    let Event::Matched(matched) =
        next(&mut live, "a match", |e| matches!(e, Event::Matched(_))).await?
    else {
        unreachable!("only a match is picked");
    };
    let chat = matched.chat_id;
    let partner = matched.partner.id;
    step("matched");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    live.typing(chat, true)?;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    live.send(
        chat,
        &format!(
            "Hi {}! I see you like chess too.",
            matched.partner.display_name
        ),
    )
    .await?;
    live.typing(chat, false)?;
    step("greeted");

    let Event::Message(message) = next(
        &mut live,
        "an answer",
        |e| matches!(e, Event::Message(m) if m.sender_id == partner),
    )
    .await?
    else {
        unreachable!("only a message is picked");
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    live.mark_read(chat, message.seq)?;
    step("read");
    live.typing(chat, true)?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    live.send(
        chat,
        "Do you play online, or over the board?\nI am around 1500 on most sites.",
    )
    .await?;
    live.typing(chat, true)?;
    step("typing");

    if let Some(file) = args.leave_when {
        let mut polls = 0_u32;
        while !file.exists() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            polls += 1;
            if polls.is_multiple_of(30) {
                // Keep the typing indicator fresh while the screenshot is taken.
                live.typing(chat, true)?;
            }
        }
        live.typing(chat, false)?;
        client.end_chat(chat).await?;
        next(&mut live, "the chat's end", |e| {
            matches!(e, Event::ChatEnded { .. })
        })
        .await?;
        step("left");
    }
    live.close();
    Ok(())
}
