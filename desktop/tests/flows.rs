//! The client's state machine driven as a person would drive the window, against the
//! one-process platform: sign up, log in, restore the session, find, a match with a second
//! user driven by the SDK, messages with their marks, typing, the partner leaving, history,
//! *Next*, and log out. Every wait is on a condition with a deadline.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use client_sdk::api::auth::SignupRequest;
use client_sdk::api::matching::{InterestMode, JoinQueueRequest};
use client_sdk::{Client, Connection, Event, Gender};
use desktop::Controller;
use desktop::config::Store;
use desktop::model::{Action, Dialog, Ended, Link, Mark, Queue, Screen, Tab};
use random_chats::{Platform, PlatformConfig};
use tokio::runtime::Runtime;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(20);
const PASSWORD: &str = "correct horse battery staple";

struct World {
    runtime: Runtime,
    platform: Option<Platform>,
    url: String,
    dirs: Vec<PathBuf>,
}

impl World {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let platform = runtime
            .block_on(Platform::start(PlatformConfig::in_memory()))
            .unwrap();
        let url = platform.gateway_url();
        Self {
            runtime,
            platform: Some(platform),
            url,
            dirs: Vec::new(),
        }
    }

    fn store(&mut self) -> Store {
        let dir = std::env::temp_dir().join(format!("rc-desktop-test-{}", Uuid::new_v4()));
        self.dirs.push(dir.clone());
        Store::new(dir)
    }

    fn window(&self, store: &Store) -> Controller {
        Controller::start(&self.url, store.clone(), Arc::new(|| {})).unwrap()
    }

    /// A second user, driven by the SDK.
    fn sdk_user(&self, name: &str, interests: Vec<String>) -> (Client, Uuid, Connection) {
        self.runtime.block_on(async {
            let client = Client::new(&self.url).unwrap();
            let response = client
                .signup(&SignupRequest {
                    username: unique(name),
                    password: PASSWORD.to_owned(),
                    display_name: name.to_owned(),
                    gender: Gender::Male,
                    birth_date: time::macros::date!(1992 - 06 - 15),
                    interests,
                })
                .await
                .unwrap();
            let connection = client.connect().await.unwrap();
            (client, response.user.id, connection)
        })
    }

    /// `client` queues with required interests; waits until its connection hears of the
    /// match and returns the chat id.
    fn join_and_match(&self, client: &Client, connection: &mut Connection, who: &str) -> Uuid {
        self.runtime.block_on(async {
            client
                .join_queue(&JoinQueueRequest {
                    interest_mode: Some(InterestMode::Required),
                    ..JoinQueueRequest::default()
                })
                .await
                .unwrap();
        });
        self.next(connection, &format!("{who} matched"), |e| match e {
            Event::Matched(info) => Some(info.chat_id),
            _ => None,
        })
    }

    /// `window` finds with required interests, and a new SDK user sharing `topic` queues and
    /// is matched with it. Returns that user (client, id, live connection) and the chat id,
    /// once the window shows the chat.
    fn chat_with(
        &self,
        window: &mut Controller,
        name: &str,
        topic: &str,
    ) -> (Client, Uuid, Connection, Uuid) {
        window.act(Action::SetFindMode(InterestMode::Required));
        window.act(Action::Find);
        window
            .wait_until("waiting", DEADLINE, |a| {
                matches!(a.queue, Queue::Waiting { .. })
            })
            .unwrap();
        let (client, id, mut live) = self.sdk_user(name, vec![topic.to_owned()]);
        let chat_id = self.join_and_match(&client, &mut live, name);
        window
            .wait_until("the chat", DEADLINE, |a| a.active_chat().is_some())
            .unwrap();
        (client, id, live, chat_id)
    }

    /// The next event of `connection` that `pick` accepts.
    fn next<T>(
        &self,
        connection: &mut Connection,
        what: &str,
        mut pick: impl FnMut(Event) -> Option<T>,
    ) -> T {
        self.runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + DEADLINE;
            loop {
                let event = tokio::time::timeout_at(deadline, connection.next_event())
                    .await
                    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                    .unwrap_or_else(|| panic!("connection closed waiting for {what}"));
                if let Some(found) = pick(event) {
                    return found;
                }
            }
        })
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(platform) = self.platform.take() {
            self.runtime.block_on(platform.shutdown());
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn unique(name: &str) -> String {
    format!(
        "{}_{}",
        name.to_lowercase(),
        &Uuid::new_v4().simple().to_string()[..10]
    )
}

/// Fills in and submits the sign-up form; waits until the home screen is connected.
fn sign_up(window: &mut Controller, name: &str, interests: &str) -> String {
    window
        .wait_until("the log-in screen", DEADLINE, |a| a.screen == Screen::LogIn)
        .unwrap();
    window.act(Action::ShowSignUp);
    let username = unique(name);
    let form = &mut window.app_mut().sign_up;
    form.username = username.clone();
    form.password = PASSWORD.to_owned();
    form.display_name = name.to_owned();
    form.gender = Gender::Female;
    form.birth_date = "1994-03-02".to_owned();
    form.interests = interests.to_owned();
    window.act(Action::SignUp);
    window
        .wait_until("home, connected", DEADLINE, |a| {
            a.screen == Screen::Home && a.link == Link::Online
        })
        .unwrap();
    username
}

#[test]
fn signing_up_restoring_logging_out_and_logging_in_again() {
    let mut world = World::start();
    let store = world.store();
    let mut window = world.window(&store);
    window
        .wait_until("the log-in screen", DEADLINE, |a| a.screen == Screen::LogIn)
        .unwrap();

    // A refused field is shown beside that field, in words.
    window.act(Action::ShowSignUp);
    let form = &mut window.app_mut().sign_up;
    form.username = "Not Valid!".to_owned();
    form.password = PASSWORD.to_owned();
    form.display_name = "Ann".to_owned();
    form.birth_date = "1994-03-02".to_owned();
    window.act(Action::SignUp);
    window
        .wait_until("the user name error", DEADLINE, |a| {
            !a.sign_up.busy && a.sign_up.errors.contains_key("username")
        })
        .unwrap();
    let error = &window.app().sign_up.errors["username"];
    assert!(error.starts_with("A user name is 3 to 32"), "{error}");
    assert_eq!(window.app().screen, Screen::SignUp);

    let form = &mut window.app_mut().sign_up;
    form.birth_date = "2020-01-01".to_owned();
    form.username = unique("ann");
    window.act(Action::SignUp);
    window
        .wait_until("the birth date error", DEADLINE, |a| {
            !a.sign_up.busy && a.sign_up.errors.contains_key("birth_date")
        })
        .unwrap();
    assert_eq!(
        window.app().sign_up.errors["birth_date"],
        "You must be 18 or older to use Random Chats."
    );

    // A valid sign-up logs in and remembers the session, for the owner only.
    window.app_mut().sign_up.birth_date = "1994-03-02".to_owned();
    let username = window.app().sign_up.username.clone();
    window.act(Action::SignUp);
    window
        .wait_until("home, connected", DEADLINE, |a| {
            a.screen == Screen::Home && a.link == Link::Online
        })
        .unwrap();
    assert_eq!(window.app().me.as_ref().unwrap().username, username);
    let saved = store.load().unwrap().expect("the session is remembered");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.session_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    drop(window);

    // The next start resumes the session without the password, rotating the refresh token.
    let mut window = world.window(&store);
    window
        .wait_until("the restored home screen", DEADLINE, |a| {
            a.screen == Screen::Home && a.link == Link::Online
        })
        .unwrap();
    assert_eq!(window.app().me.as_ref().unwrap().username, username);
    window
        .wait_until("the rotated token remembered", DEADLINE, |_| {
            store
                .load()
                .unwrap()
                .is_some_and(|s| s.refresh_token != saved.refresh_token)
        })
        .unwrap();

    // Log out forgets the session.
    window.act(Action::LogOut);
    window
        .wait_until("the log-in screen", DEADLINE, |a| a.screen == Screen::LogIn)
        .unwrap();
    assert_eq!(store.load().unwrap(), None);
    assert_eq!(window.app().log_in.username, username);
    drop(window);
    let mut window = world.window(&store);
    window
        .wait_until("the log-in screen after a restart", DEADLINE, |a| {
            a.screen == Screen::LogIn
        })
        .unwrap();

    // A wrong password is said in words; the right one logs in.
    window.app_mut().log_in.username = username.clone();
    window.app_mut().log_in.password = "wrong password here".to_owned();
    window.act(Action::LogIn);
    window
        .wait_until("the log-in error", DEADLINE, |a| a.log_in.error.is_some())
        .unwrap();
    assert_eq!(
        window.app().log_in.error.as_deref(),
        Some("The user name or the password is wrong.")
    );
    window.app_mut().log_in.password = PASSWORD.to_owned();
    window.act(Action::LogIn);
    window
        .wait_until("home after log in", DEADLINE, |a| {
            a.screen == Screen::Home && a.link == Link::Online
        })
        .unwrap();
    assert!(store.load().unwrap().is_some());
}

#[test]
fn finding_a_partner_chatting_with_marks_and_typing_then_the_partner_leaves() {
    let mut world = World::start();
    let store = world.store();
    let mut window = world.window(&store);
    let topic = unique("topic");
    sign_up(&mut window, "Ann", &format!("{topic}, music"));

    // Find with required interests: the waiting view shows the criteria in force.
    window.act(Action::SetFindMode(InterestMode::Required));
    window.act(Action::Find);
    window
        .wait_until("waiting with criteria", DEADLINE, |a| {
            matches!(&a.queue, Queue::Waiting { criteria: Some(c), .. }
                if c.interest_mode == InterestMode::Required && c.interests.contains(&topic))
        })
        .unwrap();

    let (bob, bob_id, mut bob_live) =
        world.sdk_user("Bob", vec![topic.clone(), "chess".to_owned()]);
    let chat_id = world.join_and_match(&bob, &mut bob_live, "bob");
    window
        .wait_until("the chat with Bob", DEADLINE, |a| {
            a.chat.as_ref().is_some_and(|c| c.chat_id == chat_id)
        })
        .unwrap();
    {
        let chat = window.app().chat.as_ref().unwrap();
        assert_eq!(chat.partner.display_name, "Bob");
        assert_eq!(chat.partner.id, bob_id);
        assert_eq!(chat.shared_interests, vec![topic.clone()]);
        assert_eq!(window.app().queue, Queue::Idle);
    }
    window
        .wait_until("Bob shown online", DEADLINE, |a| {
            a.chat.as_ref().unwrap().partner_online == Some(true)
        })
        .unwrap();

    // Typing reaches Bob.
    window.app_mut().chat.as_mut().unwrap().draft = "hel".to_owned();
    window.act(Action::DraftEdited);
    world.next(&mut bob_live, "Ann typing", |e| match e {
        Event::Typing { typing: true, .. } => Some(()),
        _ => None,
    });

    // A message goes out and its mark moves sent → delivered → read.
    window.app_mut().chat.as_mut().unwrap().draft = "hello bob".to_owned();
    window.act(Action::Send);
    assert!(window.app().chat.as_ref().unwrap().draft.is_empty());
    let (seq, text) = world.next(&mut bob_live, "Ann's message", |e| match e {
        Event::Message(m) => Some((m.seq, m.text)),
        _ => None,
    });
    assert_eq!((seq, text.as_str()), (1, "hello bob"));
    let mark = |a: &desktop::App| {
        let chat = a.chat.as_ref().unwrap();
        chat.mark(&chat.lines[0], a.online())
    };
    window
        .wait_until("delivered", DEADLINE, |a| mark(a) == Some(Mark::Delivered))
        .unwrap();
    bob_live.mark_read(chat_id, 1).unwrap();
    window
        .wait_until("read", DEADLINE, |a| mark(a) == Some(Mark::Read))
        .unwrap();

    // Bob types and answers; Ann sees both, and reading it (focused, on screen) tells Bob.
    bob_live.typing(chat_id, true).unwrap();
    window
        .wait_until("Bob typing", DEADLINE, |a| {
            a.chat.as_ref().unwrap().partner_typing()
        })
        .unwrap();
    world.runtime.block_on(async {
        bob_live.send(chat_id, "hi ann!").await.unwrap();
    });
    window
        .wait_until("Bob's answer", DEADLINE, |a| {
            let chat = a.chat.as_ref().unwrap();
            chat.lines.len() == 2 && !chat.lines[1].mine && chat.lines[1].text == "hi ann!"
        })
        .unwrap();
    assert!(!window.app().chat.as_ref().unwrap().partner_typing());
    window.act(Action::Seen { chat_id, seq: 2 });
    let read = world.next(&mut bob_live, "Ann read it", |e| match e {
        Event::Status(w) if w.user_id != bob_id && w.read_seq >= 2 => Some(w.read_seq),
        _ => None,
    });
    assert_eq!(read, 2);

    // Bob leaves: a clear notice, and nothing more can be sent.
    world.runtime.block_on(async {
        bob.end_chat(chat_id).await.unwrap();
    });
    window
        .wait_until("the chat ended by Bob", DEADLINE, |a| {
            a.chat.as_ref().unwrap().ended == Some(Ended::ByPartner)
        })
        .unwrap();
    window.app_mut().chat.as_mut().unwrap().draft = "anyone?".to_owned();
    window.act(Action::Send);
    assert_eq!(window.app().chat.as_ref().unwrap().lines.len(), 2);

    // History: the chat is listed (newest first) and reads back with both messages.
    window.act(Action::Tab(Tab::History));
    window
        .wait_until("the chat in history", DEADLINE, |a| {
            !a.history.loading && a.history.chats.first().is_some_and(|c| c.id == chat_id)
        })
        .unwrap();
    window.act(Action::OpenHistory(chat_id));
    window
        .wait_until("the chat's messages", DEADLINE, |a| {
            a.history.open.as_ref().is_some_and(|o| !o.loading)
        })
        .unwrap();
    let texts: Vec<String> = window
        .app()
        .history
        .open
        .as_ref()
        .unwrap()
        .messages
        .iter()
        .map(|m| m.message.text.clone())
        .collect();
    assert_eq!(texts, vec!["hello bob".to_owned(), "hi ann!".to_owned()]);

    window.act(Action::LogOut);
    window
        .wait_until("logged out", DEADLINE, |a| a.screen == Screen::LogIn)
        .unwrap();
    assert_eq!(store.load().unwrap(), None);
}

#[test]
fn next_asks_first_then_ends_the_chat_for_both_and_searches_again() {
    let mut world = World::start();
    let store = world.store();
    let mut window = world.window(&store);
    let topic = unique("next");
    sign_up(&mut window, "Cleo", &topic);
    let (_dan, _, mut dan_live, chat_id) = world.chat_with(&mut window, "Dan", &topic);

    // Next only asks; Esc (closing the dialog) keeps the chat.
    window.act(Action::AskNext);
    assert!(window.app().dialog.is_some());
    window.act(Action::CloseDialog);
    assert!(window.app().dialog.is_none());
    assert!(window.app().active_chat().is_some());

    window.act(Action::AskNext);
    window.act(Action::ConfirmNext);
    let ended_by = world.next(&mut dan_live, "the chat ended", |e| match e {
        Event::ChatEnded {
            chat_id: ended,
            ended_by,
        } if ended == chat_id => Some(ended_by),
        _ => None,
    });
    assert_eq!(Some(ended_by), window.app().me.as_ref().map(|p| p.id));
    window
        .wait_until("searching again", DEADLINE, |a| {
            matches!(a.queue, Queue::Waiting { .. })
        })
        .unwrap();
    window.act(Action::CancelFind);
    window
        .wait_until("search stopped", DEADLINE, |a| a.queue == Queue::Idle)
        .unwrap();
}

#[test]
fn a_message_written_offline_is_queued_visibly_and_stored_once_after_reconnecting() {
    let mut world = World::start();
    // This test restarts the platform on the same address with its data kept on disk.
    let data = std::env::temp_dir().join(format!("rc-desktop-data-{}", Uuid::new_v4()));
    world.dirs.push(data.clone());
    let first = world.platform.take().unwrap();
    world.runtime.block_on(first.shutdown());
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let platform = world
        .runtime
        .block_on(Platform::start(PlatformConfig::new(
            listen,
            Some(data.clone()),
        )))
        .unwrap();
    let addr = platform.addr();
    world.url = platform.gateway_url();
    world.platform = Some(platform);

    let store = world.store();
    let mut window = world.window(&store);
    let topic = unique("offline");
    sign_up(&mut window, "Eve", &topic);
    let (fred, _, mut fred_live, chat_id) = world.chat_with(&mut window, "Fred", &topic);

    // The server goes away: the window says so, and a message written now waits, visibly.
    let platform = world.platform.take().unwrap();
    world.runtime.block_on(platform.shutdown());
    // The window counts down to the next attempt ("reconnecting in N s").
    window
        .wait_until(
            "reconnecting, with the next attempt's time",
            DEADLINE,
            |a| {
                matches!(
                    a.link,
                    Link::Reconnecting {
                        retry_at: Some(_),
                        ..
                    }
                )
            },
        )
        .unwrap();
    window.app_mut().chat.as_mut().unwrap().draft = "written offline".to_owned();
    window.act(Action::Send);
    {
        let app = window.app();
        let chat = app.chat.as_ref().unwrap();
        assert_eq!(chat.mark(&chat.lines[0], app.online()), Some(Mark::Queued));
        assert_eq!(chat.unsent(), 1);
    }

    // It comes back on the same address: the message goes out and is stored once.
    let platform = world
        .runtime
        .block_on(Platform::start(PlatformConfig::new(addr, Some(data))))
        .unwrap();
    world.platform = Some(platform);
    window
        .wait_until("the queued message stored", DEADLINE, |a| {
            let chat = a.chat.as_ref().unwrap();
            chat.lines[0].seq.is_some() && chat.unsent() == 0
        })
        .unwrap();
    let text = world.next(&mut fred_live, "the queued message", |e| match e {
        Event::Message(m) => Some(m.text),
        _ => None,
    });
    assert_eq!(text, "written offline");
    let stored = world.runtime.block_on(async {
        fred.history(chat_id, &client_sdk::api::message::HistoryQuery::default())
            .await
            .unwrap()
    });
    let copies = stored
        .messages
        .iter()
        .filter(|m| m.message.text == "written offline")
        .count();
    assert_eq!(copies, 1);
}

#[test]
fn editing_the_profile_preferences_password_and_other_sessions() {
    let mut world = World::start();
    let store = world.store();
    let mut window = world.window(&store);
    let username = sign_up(&mut window, "Gia", "films");

    // Profile: a refused field is shown beside it; a valid edit is saved and shown.
    window.act(Action::Tab(Tab::Profile));
    window.app_mut().profile.as_mut().unwrap().display_name = "   ".to_owned();
    window.act(Action::SaveProfile);
    window
        .wait_until("the display name error", DEADLINE, |a| {
            let form = a.profile.as_ref().unwrap();
            !form.busy && form.errors.contains_key("display_name")
        })
        .unwrap();
    let form = window.app_mut().profile.as_mut().unwrap();
    form.display_name = "Gia M.".to_owned();
    form.interests = "films, hiking".to_owned();
    window.act(Action::SaveProfile);
    window
        .wait_until("the profile saved", DEADLINE, |a| {
            a.profile.as_ref().unwrap().note.as_deref() == Some("Saved.")
        })
        .unwrap();
    let me = window.app().me.clone().unwrap();
    assert_eq!(me.display_name, "Gia M.");
    assert_eq!(me.interests, vec!["films".to_owned(), "hiking".to_owned()]);

    // Preferences: nonsense is refused before it leaves the window; a valid set is saved.
    let form = window.app_mut().preferences.as_mut().unwrap();
    form.genders = [false; 3];
    window.act(Action::SavePreferences);
    assert_eq!(
        window.app().preferences.as_ref().unwrap().error.as_deref(),
        Some("Please choose at least one gender to meet.")
    );
    let form = window.app_mut().preferences.as_mut().unwrap();
    form.genders = [true, false, true];
    form.min_age = 25;
    form.max_age = 40;
    form.interests = "hiking".to_owned();
    window.act(Action::SavePreferences);
    window
        .wait_until("the preferences saved", DEADLINE, |a| {
            a.preferences.as_ref().unwrap().note.as_deref() == Some("Saved.")
        })
        .unwrap();
    let saved = window.app().me.as_ref().unwrap().preferences.clone();
    assert_eq!((saved.min_age, saved.max_age), (25, 40));
    assert_eq!(saved.genders, vec![Gender::Male, Gender::Other]);
    assert_eq!(saved.interests, vec!["hiking".to_owned()]);

    // Sessions: another device's session is listed and can be ended from here.
    let other = world.runtime.block_on(async {
        let other = Client::new(&world.url).unwrap();
        other.login(&username, PASSWORD).await.unwrap();
        other
    });
    window.act(Action::Tab(Tab::Sessions));
    window
        .wait_until("two sessions", DEADLINE, |a| {
            a.sessions.as_ref().is_some_and(|s| s.len() == 2)
        })
        .unwrap();
    let sessions = window.app().sessions.clone().unwrap();
    assert_eq!(sessions.iter().filter(|s| s.current).count(), 1);
    let other_id = sessions.iter().find(|s| !s.current).unwrap().id;
    window.act(Action::EndSession(other_id));
    window
        .wait_until("one session", DEADLINE, |a| {
            a.sessions.as_ref().is_some_and(|s| s.len() == 1)
        })
        .unwrap();
    let refreshed = world.runtime.block_on(other.refresh());
    assert!(refreshed.is_err(), "the ended session still refreshes");

    // Password: a wrong current one is said in words; the change ends other sessions.
    let third = world.runtime.block_on(async {
        let third = Client::new(&world.url).unwrap();
        third.login(&username, PASSWORD).await.unwrap();
        third
    });
    let form = &mut window.app_mut().password;
    form.current = "not my password".to_owned();
    form.new = "a brand new passphrase".to_owned();
    form.repeat = "a brand new passphrase".to_owned();
    window.act(Action::ChangePassword);
    window
        .wait_until("the wrong password error", DEADLINE, |a| {
            !a.password.busy && a.password.error.is_some()
        })
        .unwrap();
    window.app_mut().password.current = PASSWORD.to_owned();
    window.act(Action::ChangePassword);
    window
        .wait_until("the password changed", DEADLINE, |a| {
            a.password.note.is_some() && a.password.error.is_none()
        })
        .unwrap();
    assert_eq!(
        window.app().link,
        Link::Online,
        "this window stays logged in"
    );
    world.runtime.block_on(async {
        assert!(third.refresh().await.is_err(), "the other session survived");
        let fresh = Client::new(&world.url).unwrap();
        assert!(fresh.login(&username, PASSWORD).await.is_err());
        fresh
            .login(&username, "a brand new passphrase")
            .await
            .unwrap();
    });
}

#[test]
fn reporting_and_blocking_the_partner() {
    let mut world = World::start();
    let store = world.store();
    let mut window = world.window(&store);
    let topic = unique("report");
    sign_up(&mut window, "Hana", &topic);
    let (_ivan, ivan_id, mut ivan_live, chat_id) = world.chat_with(&mut window, "Ivan", &topic);

    // Report: a reason is required; the report is sent and the chat goes on.
    window.act(Action::AskReport);
    window.act(Action::SubmitReport);
    assert!(matches!(
        &window.app().dialog,
        Some(Dialog::Report { error: Some(_), .. })
    ));
    if let Some(Dialog::Report { reason, .. }) = window.app_mut().dialog.as_mut() {
        *reason = "Rude messages".to_owned();
    }
    window.act(Action::SubmitReport);
    window
        .wait_until("the report sent", DEADLINE, |a| {
            a.dialog.is_none()
                && a.notice
                    .as_ref()
                    .is_some_and(|n| !n.error && n.text.contains("report"))
        })
        .unwrap();
    assert!(window.app().active_chat().is_some());

    // Block: asks first, then ends the chat for both and says so.
    window.act(Action::AskBlock);
    assert_eq!(window.app().dialog, Some(Dialog::ConfirmBlock));
    window.act(Action::ConfirmBlock);
    world.next(&mut ivan_live, "the chat ended", |e| match e {
        Event::ChatEnded { chat_id: ended, .. } if ended == chat_id => Some(()),
        _ => None,
    });
    window
        .wait_until("the block confirmed", DEADLINE, |a| {
            a.chat
                .as_ref()
                .is_some_and(|c| c.ended == Some(Ended::ByMe))
                && a.notice.as_ref().is_some_and(|n| n.text.contains("Ivan"))
        })
        .unwrap();
    let blocked = world.runtime.block_on(async {
        let hana = Client::new(&world.url).unwrap();
        let username = window.app().me.as_ref().unwrap().username.clone();
        hana.login(&username, PASSWORD).await.unwrap();
        hana.blocked().await.unwrap()
    });
    assert!(blocked.iter().any(|b| b.user_id == ivan_id));
}
