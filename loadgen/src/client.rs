//! Talking to the gateway as a real client does: accounts (sign up, log in) over REST from
//! many loopback source addresses, the queue, the WebSocket handshake with a bearer token,
//! and reading the server's frames.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use uuid::Uuid;
use wire::api::auth::{LoginRequest, SignupRequest, SignupResponse, TokenPair};
use wire::api::matching::JoinQueueRequest;

use crate::profiles::{Persona, Rng};

/// A WebSocket to the gateway.
pub type Ws = WebSocketStream<TcpStream>;

/// The password of every load-test account.
const PASSWORD: &str = "load-test-password-1";

/// Where the gateway is.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub base: String,
    /// The resolved socket address.
    pub addr: SocketAddr,
}

impl Target {
    /// Parses `http://host:port` (a trailing `/` is ignored).
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let base = url.trim_end_matches('/').to_owned();
        let hostport = base
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("the gateway URL must start with http:// ({url})"))?;
        let addr = hostport
            .to_socket_addrs()
            .with_context(|| format!("resolving {hostport}"))?
            .next()
            .ok_or_else(|| anyhow!("{hostport} resolves to nothing"))?;
        Ok(Self { base, addr })
    }
}

/// How accounts are made.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// First two octets of the client source addresses (`127.77` → 127.77.x.y).
    pub source_net: [u8; 2],
    /// Accounts sharing one source address (the server limits sign-ups and requests per
    /// address, as it should for real users).
    pub users_per_address: usize,
    /// Accounts set up at once.
    pub concurrency: usize,
    /// Log in after signing up (a second session), as a returning user would. Each log in
    /// costs the server one more password hash.
    pub login: bool,
    /// Seed of the population.
    pub seed: u64,
}

impl Default for SetupOptions {
    fn default() -> Self {
        Self {
            source_net: [127, 77],
            users_per_address: 20,
            concurrency: 16,
            login: true,
            seed: 1,
        }
    }
}

/// The source address of account `index`: 127.N.a.b, `users_per_address` accounts each.
pub fn source_address(net: [u8; 2], users_per_address: usize, index: usize) -> IpAddr {
    let n = index / users_per_address.max(1);
    let a = ((n / 250) % 256) as u8;
    let b = 1 + (n % 250) as u8;
    IpAddr::V4(Ipv4Addr::new(net[0], net[1], a, b))
}

/// One account, signed up (and logged in).
#[derive(Debug, Clone)]
pub struct Account {
    /// Position in the run.
    pub index: usize,
    /// The user id.
    pub user_id: Uuid,
    /// The access token for `Authorization: Bearer`.
    pub access_token: String,
    /// Where its traffic comes from.
    pub source: IpAddr,
    /// Who the user is and whom they want.
    pub persona: Persona,
}

/// HTTP clients, one per source address.
#[derive(Debug, Default)]
pub struct Http {
    clients: Mutex<HashMap<IpAddr, reqwest::Client>>,
}

impl Http {
    /// The client bound to `source`.
    pub fn client(&self, source: IpAddr) -> anyhow::Result<reqwest::Client> {
        let mut clients = self
            .clients
            .lock()
            .expect("never poisoned: no panics inside");
        if let Some(client) = clients.get(&source) {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .local_address(source)
            .no_proxy()
            .pool_max_idle_per_host(4)
            .pool_idle_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()?;
        clients.insert(source, client.clone());
        Ok(client)
    }
}

/// POSTs JSON and reads JSON, retrying what the server says is temporary (429, 503) after
/// its `Retry-After` (or a short backoff).
async fn post_json<R: DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &impl serde::Serialize,
) -> anyhow::Result<R> {
    let mut attempt = 0u32;
    loop {
        let mut request = client.post(url).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .with_context(|| format!("reading the answer of POST {url}"));
        }
        let transient = status.as_u16() == 429 || status.as_u16() == 503;
        attempt += 1;
        if !transient || attempt > 60 {
            let text = response.text().await.unwrap_or_default();
            bail!("POST {url}: {status} {text}");
        }
        let wait = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or_else(
                || Duration::from_millis(50 << attempt.min(5)),
                Duration::from_secs,
            );
        tokio::time::sleep(wait).await;
    }
}

/// A name unique to this run, so that runs against a kept database do not collide.
fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:06x}",
        (nanos as u64 ^ u64::from(std::process::id())) & 0xff_ffff
    )
}

/// Signs up (and logs in) `count` accounts, `make` choosing each persona.
pub async fn create_accounts(
    target: &Target,
    http: &Http,
    options: &SetupOptions,
    count: usize,
    make: fn(&mut Rng) -> Persona,
) -> anyhow::Result<Vec<Account>> {
    let tag = run_tag();
    let mut rng = Rng::new(options.seed);
    let personas: Vec<Persona> = (0..count).map(|_| make(&mut rng)).collect();
    let today = time::OffsetDateTime::now_utc().date();
    let mut accounts: Vec<Account> = futures::stream::iter(personas.into_iter().enumerate())
        .map(|(index, persona)| {
            let tag = &tag;
            async move {
                let source = source_address(options.source_net, options.users_per_address, index);
                let client = http.client(source)?;
                let username = format!("lg{tag}_{index}");
                let signup: SignupResponse = post_json(
                    &client,
                    &format!("{}/v1/auth/signup", target.base),
                    None,
                    &SignupRequest {
                        username: username.clone(),
                        password: PASSWORD.to_owned(),
                        display_name: format!("Load {index}"),
                        gender: persona.gender,
                        birth_date: persona.birth_date(today),
                        interests: persona.interests.clone(),
                    },
                )
                .await?;
                let tokens = if options.login {
                    post_json::<TokenPair>(
                        &client,
                        &format!("{}/v1/auth/login", target.base),
                        None,
                        &LoginRequest {
                            username,
                            password: PASSWORD.to_owned(),
                        },
                    )
                    .await?
                } else {
                    signup.tokens
                };
                anyhow::Ok(Account {
                    index,
                    user_id: tokens.user_id,
                    access_token: tokens.access_token,
                    source,
                    persona,
                })
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    accounts.sort_by_key(|a| a.index);
    Ok(accounts)
}

/// `POST /v1/queue` with the account's wishes.
pub async fn join_queue(
    target: &Target,
    http: &Http,
    account: &Account,
    wants: &JoinQueueRequest,
) -> anyhow::Result<()> {
    let client = http.client(account.source)?;
    let _: serde_json::Value = post_json(
        &client,
        &format!("{}/v1/queue", target.base),
        Some(&account.access_token),
        wants,
    )
    .await?;
    Ok(())
}

/// WebSocket buffers of a load client. An idle one holds thousands of connections with
/// small frames, so its buffers are small and it writes at once; a busy one batches its
/// writes until it flushes.
pub fn ws_config(busy: bool) -> WebSocketConfig {
    if busy {
        WebSocketConfig::default().read_buffer_size(64 * 1024)
    } else {
        WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
    }
}

/// Opens `GET /v1/ws` from `source` with the token in `Authorization`.
pub async fn connect_ws(
    target: &Target,
    source: IpAddr,
    token: &str,
    busy: bool,
) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("binding {source}"))?;
    let stream = socket
        .connect(target.addr)
        .await
        .with_context(|| format!("connecting {} from {source}", target.addr))?;
    stream.set_nodelay(true)?;
    let mut request = format!("ws://{}/v1/ws", target.addr).into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config(busy)))
            .await
            .context("WebSocket handshake")?;
    Ok(ws)
}

/// The server frames a load client looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A `send` was stored.
    Ack {
        /// The send's id.
        client_msg_id: String,
    },
    /// A message in one of the user's chats.
    Message {
        /// The chat.
        chat_id: Uuid,
        /// Its seq.
        seq: u64,
        /// The sender's id for it.
        client_msg_id: String,
    },
    /// The user was paired.
    Matched {
        /// The new chat.
        chat_id: Uuid,
        /// The partner.
        partner_id: Uuid,
    },
    /// A frame was refused.
    Error {
        /// The error code.
        code: String,
        /// The refused send's id.
        client_msg_id: Option<String>,
    },
    /// Anything else (hello, status, presence, pong, frames added later).
    Other,
}

#[derive(Deserialize)]
struct AckFrame {
    client_msg_id: String,
}
#[derive(Deserialize)]
struct MessageFrame {
    message: MessageBody,
}
#[derive(Deserialize)]
struct MessageBody {
    chat_id: Uuid,
    seq: u64,
    client_msg_id: String,
}
#[derive(Deserialize)]
struct MatchedFrame {
    chat_id: Uuid,
    partner: Partner,
}
#[derive(Deserialize)]
struct Partner {
    id: Uuid,
}
#[derive(Deserialize)]
struct ErrorFrame {
    code: String,
    #[serde(default)]
    client_msg_id: Option<String>,
}
#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: String,
}

/// Reads one server frame. The server writes `type` first, so it is read from the front
/// without building a JSON tree; any other order is understood too.
pub fn parse_incoming(text: &str) -> Result<Incoming, serde_json::Error> {
    let sniffed = text
        .strip_prefix("{\"type\":\"")
        .and_then(|rest| rest.split_once('"'))
        .map(|(kind, _)| kind.to_owned());
    let kind = match sniffed {
        Some(kind) => kind,
        None => serde_json::from_str::<TypeOnly>(text)?.kind,
    };
    Ok(match kind.as_str() {
        "ack" => {
            let f: AckFrame = serde_json::from_str(text)?;
            Incoming::Ack {
                client_msg_id: f.client_msg_id,
            }
        }
        "message" => {
            let f: MessageFrame = serde_json::from_str(text)?;
            Incoming::Message {
                chat_id: f.message.chat_id,
                seq: f.message.seq,
                client_msg_id: f.message.client_msg_id,
            }
        }
        "matched" => {
            let f: MatchedFrame = serde_json::from_str(text)?;
            Incoming::Matched {
                chat_id: f.chat_id,
                partner_id: f.partner.id,
            }
        }
        "error" => {
            let f: ErrorFrame = serde_json::from_str(text)?;
            Incoming::Error {
                code: f.code,
                client_msg_id: f.client_msg_id,
            }
        }
        _ => Incoming::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_share_a_source_address_in_groups() {
        let net = [127, 77];
        assert_eq!(source_address(net, 20, 0).to_string(), "127.77.0.1");
        assert_eq!(source_address(net, 20, 19).to_string(), "127.77.0.1");
        assert_eq!(source_address(net, 20, 20).to_string(), "127.77.0.2");
        assert_eq!(source_address(net, 20, 250 * 20).to_string(), "127.77.1.1");
        let distinct: std::collections::HashSet<_> =
            (0..100_000).map(|i| source_address(net, 20, i)).collect();
        assert_eq!(distinct.len(), 5000);
    }

    #[test]
    fn the_frames_a_load_client_needs_are_read() {
        let ack = r#"{"type":"ack","client_msg_id":"w0-7","chat_id":"6f1c2a4e-9a57-4b7a-9d0e-1f6f1d9f2a10","seq":42,"message_id":"01935a5e-7c1e-7b3a-9a60-2f0c8e4d1b22","created_at":"2026-11-23T11:22:26.123456Z","duplicate":false}"#;
        assert_eq!(
            parse_incoming(ack).unwrap(),
            Incoming::Ack {
                client_msg_id: "w0-7".into()
            }
        );
        let message = r#"{"type":"message","message":{"id":"01935a5e-7c1e-7b3a-9a60-2f0c8e4d1b22","chat_id":"6f1c2a4e-9a57-4b7a-9d0e-1f6f1d9f2a10","seq":42,"sender_id":"3b0f7c1e-5d2a-4e8f-9b6c-7a1d2e3f4a5b","client_msg_id":"w1-9","text":"hi!","created_at":"2026-11-23T11:22:26.123456Z"}}"#;
        assert_eq!(
            parse_incoming(message).unwrap(),
            Incoming::Message {
                chat_id: "6f1c2a4e-9a57-4b7a-9d0e-1f6f1d9f2a10".parse().unwrap(),
                seq: 42,
                client_msg_id: "w1-9".into()
            }
        );
        let matched = r#"{"type":"matched","match_id":"5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d","chat_id":"6f1c2a4e-9a57-4b7a-9d0e-1f6f1d9f2a10","partner":{"id":"c4d5e6f7-0819-4a2b-8c3d-4e5f60718293","display_name":"Sam","gender":"female","age":27,"interests":["music"]},"shared_interests":[],"relaxed":[],"matched_at":"2026-11-23T11:25:00Z"}"#;
        assert!(matches!(
            parse_incoming(matched).unwrap(),
            Incoming::Matched { .. }
        ));
        let error = r#"{"type":"error","code":"rate_limited","message":"slow down","in_reply_to":"send","client_msg_id":"w0-3"}"#;
        assert_eq!(
            parse_incoming(error).unwrap(),
            Incoming::Error {
                code: "rate_limited".into(),
                client_msg_id: Some("w0-3".into())
            }
        );
    }

    #[test]
    fn unknown_frames_and_other_field_orders_are_understood() {
        assert_eq!(
            parse_incoming(r#"{"type":"presence","online":true}"#).unwrap(),
            Incoming::Other
        );
        assert_eq!(
            parse_incoming(r#"{"client_msg_id":"a","type":"ack"}"#).unwrap(),
            Incoming::Ack {
                client_msg_id: "a".into()
            }
        );
        assert!(parse_incoming("not json").is_err());
    }
}
