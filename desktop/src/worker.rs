//! The SDK worker: a tokio runtime on its own threads that runs every network call and the
//! real-time connection, and reports back through a channel. The UI thread never waits on it.

use std::sync::Arc;
use std::time::Duration;

use client_sdk::api::message::{ChatListQuery, HistoryQuery};
use client_sdk::{Client, ConnectOptions, Connection, Error, Event, ResumePoint};
use time::OffsetDateTime;
use tokio::sync::{Mutex, mpsc};
use uuid::Uuid;

use crate::bridge::{Attempt, Command, LinkUpdate, Request, Update, Welcome};
use crate::config::{SavedSession, Store};
use crate::words::UiError;

/// Called after each update is queued, so that the window repaints (and reads it).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// Messages per history page.
const HISTORY_PAGE: u32 = 50;
/// Chats per page of the chat list.
const CHATS_PAGE: u32 = 20;
/// How often the rotating refresh token is checked and remembered.
const PERSIST_EVERY: Duration = Duration::from_secs(2);

/// The handle the UI holds. Dropping it stops the worker.
#[derive(Debug)]
pub struct Worker {
    commands: mpsc::UnboundedSender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker's runtime; updates go to `updates`, each followed by `wake()`.
    pub fn start(
        store: Store,
        updates: std::sync::mpsc::Sender<Update>,
        wake: Wake,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rc-sdk")
            .enable_all()
            .build()?;
        let (commands, receiver) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("rc-worker".to_owned())
            .spawn(move || {
                let out = Out { updates, wake };
                runtime.block_on(run(store, out, receiver));
                runtime.shutdown_timeout(Duration::from_secs(2));
            })?;
        Ok(Self {
            commands,
            thread: Some(thread),
        })
    }

    /// Queues a command; never blocks.
    pub fn send(&self, command: Command) {
        // The worker lives as long as this handle, so the channel is open.
        let _ = self.commands.send(command);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let (closed, _) = mpsc::unbounded_channel();
        self.commands = closed;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where updates go.
#[derive(Clone)]
struct Out {
    updates: std::sync::mpsc::Sender<Update>,
    wake: Wake,
}

impl Out {
    fn send(&self, update: Update) {
        if self.updates.send(update).is_ok() {
            (self.wake)();
        }
    }

    fn failed(&self, what: Request, error: &Error) {
        self.send(Update::Failed {
            what,
            error: error.into(),
        });
    }
}

/// Remembers the refresh token whenever the SDK rotates it.
#[derive(Clone)]
struct Persist {
    store: Store,
    state: Arc<Mutex<PersistState>>,
}

#[derive(Default)]
struct PersistState {
    client: Option<(Client, String)>,
    saved: Option<String>,
}

impl Persist {
    async fn track(&self, client: &Client, server: &str) {
        let mut state = self.state.lock().await;
        state.client = Some((client.clone(), server.to_owned()));
        state.saved = None;
        drop(state);
        self.check().await;
    }

    async fn check(&self) {
        let mut state = self.state.lock().await;
        let Some((client, server)) = state.client.clone() else {
            return;
        };
        let Some(tokens) = client.tokens().await else {
            return;
        };
        if state.saved.as_deref() == Some(tokens.refresh_token.as_str()) {
            return;
        }
        match self
            .store
            .save(&SavedSession::from_tokens(&server, &tokens))
        {
            Ok(()) => state.saved = Some(tokens.refresh_token),
            Err(err) => tracing::warn!(error = %err, "could not remember the session"),
        }
    }

    async fn forget(&self) {
        let mut state = self.state.lock().await;
        state.client = None;
        state.saved = None;
        if let Err(err) = self.store.delete() {
            tracing::warn!(error = %err, "could not forget the session");
        }
    }
}

/// What the worker's loop owns.
struct Core {
    out: Out,
    persist: Persist,
    client: Option<(Client, String)>,
    connection: Option<Connection>,
    /// Bumped on log in and log out, so that late results of an old session are dropped.
    generation: u64,
    connector: mpsc::UnboundedSender<(u64, Option<Connection>)>,
    connecting: bool,
    resume_from: Vec<ResumePoint>,
    outbox: Vec<(Uuid, String, String)>,
    unsent_reads: Vec<(Uuid, u64)>,
    last_disconnect: Option<String>,
}

async fn run(store: Store, out: Out, mut commands: mpsc::UnboundedReceiver<Command>) {
    let (connector, mut connected) = mpsc::unbounded_channel();
    let mut core = Core {
        out,
        persist: Persist {
            store,
            state: Arc::default(),
        },
        client: None,
        connection: None,
        generation: 0,
        connector,
        connecting: false,
        resume_from: Vec::new(),
        outbox: Vec::new(),
        unsent_reads: Vec::new(),
        last_disconnect: None,
    };
    let mut persist_tick = tokio::time::interval(PERSIST_EVERY);
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => core.command(command).await,
                None => break,
            },
            event = next_event(&mut core.connection) => core.event(event),
            Some((generation, connection)) = connected.recv() => core.connected(generation, connection),
            _ = persist_tick.tick() => core.persist.check().await,
        }
    }
    if let Some(connection) = core.connection.take() {
        connection.close();
    }
    core.persist.check().await;
}

/// The next event of the connection; pending forever without one.
async fn next_event(connection: &mut Option<Connection>) -> Option<Event> {
    match connection {
        Some(connection) => connection.next_event().await,
        None => std::future::pending().await,
    }
}

impl Core {
    fn client(&self) -> Option<Client> {
        self.client.as_ref().map(|(client, _)| client.clone())
    }

    /// Runs `job` with the client off the loop; its update is dropped if the session changed.
    fn spawn<F, Fut>(&self, job: F)
    where
        F: FnOnce(Client, Out) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(client) = self.client() else {
            return;
        };
        let out = self.out.clone();
        let persist = self.persist.clone();
        tokio::spawn(async move {
            job(client, out).await;
            persist.check().await;
        });
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Restore => self.restore().await,
            Command::LogIn {
                server,
                username,
                password,
            } => {
                let client = match Client::new(&server) {
                    Ok(client) => client,
                    Err(err) => return self.log_in_failed(Attempt::LogIn, &err),
                };
                match client.login(&username, &password).await {
                    Ok(_) => self.start_session(client, server, Attempt::LogIn).await,
                    Err(err) => self.log_in_failed(Attempt::LogIn, &err),
                }
            }
            Command::SignUp { server, request } => {
                let client = match Client::new(&server) {
                    Ok(client) => client,
                    Err(err) => return self.log_in_failed(Attempt::SignUp, &err),
                };
                match client.signup(&request).await {
                    Ok(_) => self.start_session(client, server, Attempt::SignUp).await,
                    Err(err) => self.log_in_failed(Attempt::SignUp, &err),
                }
            }
            Command::LogOut => self.log_out().await,
            Command::Join(request) => self.spawn(move |client, out| async move {
                match client.join_queue(&request).await {
                    Ok(status) => out.send(Update::Queue(Box::new(status))),
                    Err(err) => out.failed(Request::Queue, &err),
                }
            }),
            Command::Leave => self.spawn(|client, out| async move {
                match client.leave_queue().await {
                    Ok(()) => out.send(Update::LeftQueue),
                    Err(err) => out.failed(Request::Queue, &err),
                }
            }),
            Command::PollQueue => self.spawn(|client, out| async move {
                // A failed poll is retried by the next one; the connection state says why.
                if let Ok(status) = client.queue_status().await {
                    out.send(Update::Queue(Box::new(status)));
                }
            }),
            Command::Send {
                chat_id,
                client_msg_id,
                text,
            } => match &self.connection {
                Some(connection) => self.send_now(connection, chat_id, client_msg_id, &text),
                None => self.outbox.push((chat_id, client_msg_id, text)),
            },
            Command::MarkRead { chat_id, seq } => {
                let sent = self
                    .connection
                    .as_ref()
                    .is_some_and(|c| c.mark_read(chat_id, seq).is_ok());
                if !sent {
                    self.unsent_reads.push((chat_id, seq));
                }
            }
            Command::Typing { chat_id, typing } => {
                if let Some(connection) = &self.connection {
                    let _ = connection.typing(chat_id, typing);
                }
            }
            Command::EndChat { chat_id, then_join } => self.spawn(move |client, out| async move {
                match client.end_chat(chat_id).await {
                    Ok(_) => out.send(Update::ChatClosed(chat_id)),
                    Err(err) if err.code() == Some(client_sdk::ErrorCode::ChatEnded) => {
                        out.send(Update::ChatClosed(chat_id));
                    }
                    Err(err) => return out.failed(Request::Queue, &err),
                }
                if let Some(request) = then_join {
                    match client.join_queue(&request).await {
                        Ok(status) => out.send(Update::Queue(Box::new(status))),
                        Err(err) => out.failed(Request::Queue, &err),
                    }
                }
            }),
            Command::Block { user_id } => self.spawn(move |client, out| async move {
                match client.block(user_id).await {
                    Ok(_) => out.send(Update::Blocked(user_id)),
                    Err(err) => out.failed(Request::Block, &err),
                }
            }),
            Command::Report(request) => self.spawn(move |client, out| async move {
                match client.report(&request).await {
                    Ok(_) => out.send(Update::Reported),
                    Err(err) => out.failed(Request::Report, &err),
                }
            }),
            Command::LoadChats { before } => self.spawn(move |client, out| async move {
                let first = before.is_none();
                let query = ChatListQuery {
                    limit: Some(CHATS_PAGE),
                    before,
                };
                match client.chats_page(&query).await {
                    Ok(page) => out.send(Update::Chats { first, page }),
                    Err(err) => out.failed(Request::History, &err),
                }
            }),
            Command::LoadHistory { chat_id, before } => {
                self.spawn(move |client, out| async move {
                    let query = HistoryQuery {
                        before,
                        after: None,
                        limit: Some(HISTORY_PAGE),
                    };
                    match client.history(chat_id, &query).await {
                        Ok(page) => out.send(Update::History {
                            chat_id,
                            first: before.is_none(),
                            page,
                        }),
                        Err(err) => out.failed(Request::History, &err),
                    }
                });
            }
            Command::UpdateProfile(request) => self.spawn(move |client, out| async move {
                match client.update_profile(&request).await {
                    Ok(profile) => out.send(Update::Profile(Box::new(profile))),
                    Err(err) => out.failed(Request::Profile, &err),
                }
            }),
            Command::SetPreferences(preferences) => self.spawn(move |client, out| async move {
                match client.set_preferences(&preferences).await {
                    Ok(saved) => out.send(Update::Preferences(Box::new(saved))),
                    Err(err) => out.failed(Request::Preferences, &err),
                }
            }),
            Command::ChangePassword { current, new } => {
                self.spawn(move |client, out| async move {
                    match client.change_password(&current, &new).await {
                        Ok(()) => out.send(Update::PasswordChanged),
                        Err(err) => out.failed(Request::Password, &err),
                    }
                });
            }
            Command::LoadSessions => self.spawn(|client, out| async move {
                match client.sessions().await {
                    Ok(sessions) => out.send(Update::Sessions(sessions)),
                    Err(err) => out.failed(Request::Sessions, &err),
                }
            }),
            Command::EndSession(id) => self.spawn(move |client, out| async move {
                match client.end_session(id).await {
                    Ok(()) => out.send(Update::SessionClosed(id)),
                    Err(err) => out.failed(Request::Sessions, &err),
                }
            }),
            Command::Reconnect => {
                if self.connection.is_none() {
                    self.start_connecting();
                }
            }
        }
    }

    fn send_now(&self, connection: &Connection, chat_id: Uuid, client_msg_id: String, text: &str) {
        let acked = connection.send_detached(chat_id, &client_msg_id, text);
        let out = self.out.clone();
        tokio::spawn(async move {
            match acked.await {
                Ok(ack) => out.send(Update::Acked {
                    chat_id,
                    client_msg_id,
                    seq: ack.seq,
                    created_at: ack.created_at,
                }),
                Err(Error::Closed) => {
                    // The connection was closed (log out, or replaced): the message was not
                    // stored, and it is shown as not sent.
                    out.send(Update::SendFailed {
                        chat_id,
                        client_msg_id,
                        error: UiError::local("Not sent: the connection was closed."),
                    });
                }
                Err(err) => out.send(Update::SendFailed {
                    chat_id,
                    client_msg_id,
                    error: (&err).into(),
                }),
            }
        });
    }

    fn log_in_failed(&self, attempt: Attempt, error: &Error) {
        self.out.send(Update::LogInFailed {
            attempt,
            error: error.into(),
        });
    }

    async fn restore(&mut self) {
        let saved = match self.persist.store.load() {
            Ok(Some(saved)) => saved,
            Ok(None) => return self.out.send(Update::NoSession),
            Err(err) => {
                tracing::warn!(error = %err, "the remembered session is unreadable");
                let _ = self.persist.store.delete();
                return self.out.send(Update::NoSession);
            }
        };
        let client = match Client::new(&saved.server_url) {
            Ok(client) => client,
            Err(err) => return self.log_in_failed(Attempt::Restore, &err),
        };
        client.set_tokens(saved.to_tokens()).await;
        match client.refresh().await {
            Ok(_) => {
                self.start_session(client, saved.server_url, Attempt::Restore)
                    .await;
            }
            Err(err) => {
                if !err.is_transient() {
                    let _ = self.persist.store.delete();
                }
                self.log_in_failed(Attempt::Restore, &err);
            }
        }
    }

    async fn start_session(&mut self, client: Client, server: String, attempt: Attempt) {
        self.persist.track(&client, &server).await;
        match welcome(&client, &server).await {
            Ok(welcome) => {
                self.generation += 1;
                self.resume_from = welcome
                    .active
                    .as_ref()
                    .map(|(summary, messages)| ResumePoint {
                        chat_id: summary.id,
                        last_seq: messages.iter().map(|m| m.message.seq).max().unwrap_or(0),
                    })
                    .into_iter()
                    .collect();
                self.client = Some((client, server));
                self.out.send(Update::LoggedIn(Box::new(welcome)));
                self.start_connecting();
            }
            Err(err) => self.log_in_failed(attempt, &err),
        }
    }

    fn start_connecting(&mut self) {
        if self.connecting {
            return;
        }
        let Some(client) = self.client() else {
            return;
        };
        self.connecting = true;
        let generation = self.generation;
        let options = ConnectOptions {
            resume_from: std::mem::take(&mut self.resume_from),
            ..ConnectOptions::default()
        };
        let out = self.out.clone();
        let connector = self.connector.clone();
        out.send(Update::Link(LinkUpdate::Connecting));
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            loop {
                match client.connect_with(options.clone()).await {
                    Ok(connection) => {
                        let _ = connector.send((generation, Some(connection)));
                        return;
                    }
                    Err(err @ (Error::SessionEnded | Error::NotLoggedIn)) => {
                        out.send(Update::Link(LinkUpdate::Closed {
                            reason: crate::words::describe(&err),
                        }));
                        let _ = connector.send((generation, None));
                        return;
                    }
                    Err(err) => {
                        let retry_at = OffsetDateTime::now_utc() + delay;
                        out.send(Update::Link(LinkUpdate::RetryingAt {
                            retry_at,
                            reason: crate::words::describe(&err),
                        }));
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(15));
                    }
                }
            }
        });
    }

    fn connected(&mut self, generation: u64, connection: Option<Connection>) {
        if generation != self.generation || self.client.is_none() {
            if let Some(connection) = connection {
                connection.close();
            }
            return;
        }
        self.connecting = false;
        let Some(connection) = connection else {
            return;
        };
        for (chat_id, client_msg_id, text) in std::mem::take(&mut self.outbox) {
            self.send_now(&connection, chat_id, client_msg_id, &text);
        }
        for (chat_id, seq) in std::mem::take(&mut self.unsent_reads) {
            let _ = connection.mark_read(chat_id, seq);
        }
        self.connection = Some(connection);
    }

    fn event(&mut self, event: Option<Event>) {
        match event {
            Some(event) => {
                if let Event::Disconnected { reason } = &event {
                    self.last_disconnect = Some(reason.clone());
                }
                self.out
                    .send(Update::Link(LinkUpdate::Event(Box::new(event))));
            }
            None => {
                self.connection = None;
                let reason = match self.last_disconnect.take() {
                    Some(reason) if reason.contains("session") => {
                        "Your session has ended. Please log in again.".to_owned()
                    }
                    _ => "Disconnected: your account was opened in another window or device."
                        .to_owned(),
                };
                self.out.send(Update::Link(LinkUpdate::Closed { reason }));
            }
        }
    }

    async fn log_out(&mut self) {
        self.generation += 1;
        self.connecting = false;
        self.outbox.clear();
        self.unsent_reads.clear();
        if let Some(connection) = self.connection.take() {
            connection.close();
        }
        let client = self.client.take();
        self.persist.forget().await;
        if let Some((client, _)) = client
            && let Err(err) = client.logout().await
        {
            tracing::info!(error = %err, "the server did not take the log out; the session is forgotten here");
        }
        self.out.send(Update::LoggedOut);
    }
}

/// What a fresh session starts with: profile, queue, and the chat going on, if any.
async fn welcome(client: &Client, server: &str) -> Result<Welcome, Error> {
    let profile = client.me().await?;
    let queue = client.queue_status().await?;
    let page = client
        .chats_page(&ChatListQuery {
            limit: Some(10),
            before: None,
        })
        .await?;
    let active = match page.chats.into_iter().find(|c| c.ended_at.is_none()) {
        Some(summary) => {
            let history = client
                .history(
                    summary.id,
                    &HistoryQuery {
                        before: None,
                        after: None,
                        limit: Some(100),
                    },
                )
                .await?;
            Some((summary, history.messages))
        }
        None => None,
    };
    Ok(Welcome {
        server: server.to_owned(),
        profile,
        queue,
        active,
    })
}
