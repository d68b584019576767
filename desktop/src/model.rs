//! The application's state and how it changes: user actions and SDK updates in, commands out.
//!
//! Nothing here touches the network, a window or a clock other than `Instant::now`: the views
//! draw an [`App`] and turn clicks into [`Action`]s, the worker turns [`Command`]s into SDK
//! calls and reports [`Update`]s. Both paths end in [`App::act`] or [`App::apply`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use client_sdk::Event;
use client_sdk::Gender;
use client_sdk::api::auth::{
    Preferences, Profile, PublicProfile, SessionInfo, SignupRequest, UpdateProfileRequest,
};
use client_sdk::api::matching::{
    CriteriaInForce, InterestMode, JoinQueueRequest, MatchInfo, QueueState, QueueStatus,
};
use client_sdk::api::message::{ChatSummary, DeliveryState, Message, MessageView, ReportRequest};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::bridge::{Attempt, Command, LinkUpdate, Request, Update, Welcome};
use crate::words::UiError;

/// Typing is re-announced this often while it goes on.
const TYPING_REPEAT: Duration = Duration::from_secs(3);
/// Typing counts as stopped after this long without a keystroke.
const TYPING_IDLE: Duration = Duration::from_secs(4);
/// A partner's "typing" older than this counts as stopped (a "stopped" can get lost).
const PARTNER_TYPING_STALE: Duration = Duration::from_secs(10);
/// How often the waiting view asks for the criteria in force.
const QUEUE_POLL: Duration = Duration::from_secs(2);

/// Which screen is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Looking for a remembered session.
    Starting,
    /// The log-in form.
    LogIn,
    /// The sign-up form.
    SignUp,
    /// Logged in.
    Home,
}

/// The tabs of the home screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Find a partner and chat.
    Chat,
    /// Past chats.
    History,
    /// Profile, preferences and password.
    Profile,
    /// Sessions on other devices.
    Sessions,
}

/// The real-time connection as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not connected and not trying (logged out, or closed for good).
    Offline {
        /// Why, when there is something to say.
        reason: Option<String>,
    },
    /// Connecting.
    Connecting,
    /// Connected.
    Online,
    /// Lost; trying again by itself.
    Reconnecting {
        /// Since when.
        since: Instant,
        /// When the next attempt starts, if known.
        retry_at: Option<OffsetDateTime>,
    },
}

/// Where the user stands in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queue {
    /// Not looking.
    Idle,
    /// The join was sent.
    Joining,
    /// Waiting for a partner.
    Waiting {
        /// When the wait began (the server's clock).
        since: OffsetDateTime,
        /// The criteria in force now, as they widen.
        criteria: Option<CriteriaInForce>,
    },
    /// Leaving was asked.
    Leaving,
}

/// How a chat ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// I pressed *Next* (or blocked).
    ByMe,
    /// The partner left.
    ByPartner,
}

/// The mark beside one of my messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// Not yet stored: waits for the connection.
    Queued,
    /// On its way to the server.
    Sending,
    /// Stored by the server.
    Sent,
    /// On the partner's device.
    Delivered,
    /// Seen by the partner.
    Read,
    /// Refused for good.
    Failed(String),
}

/// One message in the open chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its seq, once stored.
    pub seq: Option<u64>,
    /// The client message id (mine).
    pub client_msg_id: String,
    /// Whether I sent it.
    pub mine: bool,
    /// The text.
    pub text: String,
    /// When the server stored it.
    pub at: Option<OffsetDateTime>,
    /// Why it could not be sent.
    pub failed: Option<String>,
}

/// The chat going on now (or just ended).
#[derive(Debug, Clone)]
pub struct ChatView {
    /// The chat.
    pub chat_id: Uuid,
    /// Who I talk with.
    pub partner: PublicProfile,
    /// Interests we share.
    pub shared_interests: Vec<String>,
    /// Whether the partner is connected (None: not known yet).
    pub partner_online: Option<bool>,
    /// Since when the partner types.
    pub partner_typing_since: Option<Instant>,
    /// The messages, oldest first; unsent ones last.
    pub lines: Vec<Line>,
    /// The partner has received my messages up to here.
    pub partner_delivered: u64,
    /// The partner has seen my messages up to here.
    pub partner_read: u64,
    /// Whether and how it ended.
    pub ended: Option<Ended>,
    /// What I am writing.
    pub draft: String,
    read_sent: u64,
    typing_sent_at: Option<Instant>,
    last_edit: Option<Instant>,
}

impl ChatView {
    fn new(chat_id: Uuid, partner: PublicProfile, shared_interests: Vec<String>) -> Self {
        Self {
            chat_id,
            partner,
            shared_interests,
            partner_online: None,
            partner_typing_since: None,
            lines: Vec::new(),
            partner_delivered: 0,
            partner_read: 0,
            ended: None,
            draft: String::new(),
            read_sent: 0,
            typing_sent_at: None,
            last_edit: None,
        }
    }

    /// The mark of a line of mine (None for the partner's).
    pub fn mark(&self, line: &Line, online: bool) -> Option<Mark> {
        if !line.mine {
            return None;
        }
        if let Some(reason) = &line.failed {
            return Some(Mark::Failed(reason.clone()));
        }
        Some(match line.seq {
            None if online => Mark::Sending,
            None => Mark::Queued,
            Some(seq) if seq <= self.partner_read => Mark::Read,
            Some(seq) if seq <= self.partner_delivered => Mark::Delivered,
            Some(_) => Mark::Sent,
        })
    }

    /// Whether the partner is typing now.
    pub fn partner_typing(&self) -> bool {
        self.ended.is_none()
            && self
                .partner_typing_since
                .is_some_and(|since| since.elapsed() < PARTNER_TYPING_STALE)
    }

    /// My messages not yet stored.
    pub fn unsent(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| l.mine && l.seq.is_none() && l.failed.is_none())
            .count()
    }

    /// The highest seq of the partner's messages.
    pub fn last_partner_seq(&self) -> u64 {
        self.lines
            .iter()
            .filter(|l| !l.mine)
            .filter_map(|l| l.seq)
            .max()
            .unwrap_or(0)
    }

    fn insert_stored(&mut self, line: Line) {
        let seq = line.seq;
        if seq.is_some() && self.lines.iter().any(|l| l.seq == seq) {
            return;
        }
        if line.mine
            && let Some(existing) = self
                .lines
                .iter_mut()
                .find(|l| l.mine && l.client_msg_id == line.client_msg_id)
        {
            existing.seq = seq;
            existing.at = line.at;
        } else {
            self.lines.push(line);
        }
        self.sort();
    }

    fn sort(&mut self) {
        // Stored lines by seq; unsent ones keep their order at the end (a stable sort).
        self.lines.sort_by_key(|l| l.seq.unwrap_or(u64::MAX));
    }
}

/// Errors shown beside the form fields they name.
pub type FieldErrors = BTreeMap<String, String>;

/// The log-in form.
#[derive(Debug, Clone, Default)]
pub struct LogInForm {
    /// The server's URL.
    pub server: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Waiting for the answer.
    pub busy: bool,
    /// What went wrong.
    pub error: Option<String>,
}

/// The sign-up form: every field the API takes.
#[derive(Debug, Clone)]
pub struct SignUpForm {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Display name.
    pub display_name: String,
    /// Gender.
    pub gender: Gender,
    /// Birth date as typed (YYYY-MM-DD).
    pub birth_date: String,
    /// Interests, comma-separated.
    pub interests: String,
    /// Waiting for the answer.
    pub busy: bool,
    /// Errors by field.
    pub errors: FieldErrors,
    /// An error not about one field.
    pub error: Option<String>,
}

impl Default for SignUpForm {
    fn default() -> Self {
        Self {
            username: String::new(),
            password: String::new(),
            display_name: String::new(),
            gender: Gender::Other,
            birth_date: String::new(),
            interests: String::new(),
            busy: false,
            errors: FieldErrors::new(),
            error: None,
        }
    }
}

/// The profile form.
#[derive(Debug, Clone)]
pub struct ProfileForm {
    /// Display name.
    pub display_name: String,
    /// Gender.
    pub gender: Gender,
    /// Birth date as typed.
    pub birth_date: String,
    /// Interests, comma-separated.
    pub interests: String,
    /// Waiting for the answer.
    pub busy: bool,
    /// Errors by field.
    pub errors: FieldErrors,
    /// What happened last.
    pub note: Option<String>,
}

/// The preferences form.
#[derive(Debug, Clone)]
pub struct PreferencesForm {
    /// Genders I want to meet (Male, Female, Other).
    pub genders: [bool; 3],
    /// Lowest age.
    pub min_age: u8,
    /// Highest age.
    pub max_age: u8,
    /// Interests, comma-separated.
    pub interests: String,
    /// How interests count by default.
    pub interest_mode: InterestMode,
    /// Years the age range may widen by.
    pub age_widen_years: u8,
    /// Seconds per year of widening.
    pub widen_every_secs: u32,
    /// Fall back from required interests after this many seconds (0: never).
    pub fallback_after_secs: u32,
    /// Waiting for the answer.
    pub busy: bool,
    /// What went wrong.
    pub error: Option<String>,
    /// What happened last.
    pub note: Option<String>,
}

/// The change-password form.
#[derive(Debug, Clone, Default)]
pub struct PasswordForm {
    /// The current password.
    pub current: String,
    /// The new one.
    pub new: String,
    /// The new one again.
    pub repeat: String,
    /// Waiting for the answer.
    pub busy: bool,
    /// What went wrong.
    pub error: Option<String>,
    /// What happened last.
    pub note: Option<String>,
}

/// Past chats.
#[derive(Debug, Clone, Default)]
pub struct HistoryView {
    /// Chats loaded so far, newest first.
    pub chats: Vec<ChatSummary>,
    /// The cursor of the next (older) page.
    pub next_before: Option<String>,
    /// Whether every page is loaded.
    pub complete: bool,
    /// A page is on its way.
    pub loading: bool,
    /// The chat being read.
    pub open: Option<OpenHistory>,
    /// What went wrong.
    pub error: Option<String>,
}

/// One past chat being read.
#[derive(Debug, Clone)]
pub struct OpenHistory {
    /// The chat.
    pub summary: ChatSummary,
    /// Its messages loaded so far, oldest first.
    pub messages: Vec<MessageView>,
    /// Whether older ones exist.
    pub has_more: bool,
    /// A page is on its way.
    pub loading: bool,
}

/// A dialog over the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialog {
    /// Leave this chat and find someone new?
    ConfirmNext,
    /// Block the partner?
    ConfirmBlock,
    /// Report the partner, with a reason.
    Report {
        /// The reason as typed.
        reason: String,
        /// What went wrong.
        error: Option<String>,
    },
}

/// Something the user did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Show the sign-up form.
    ShowSignUp,
    /// Show the log-in form.
    ShowLogIn,
    /// Submit the log-in form.
    LogIn,
    /// Submit the sign-up form.
    SignUp,
    /// Try the remembered session again.
    RetryRestore,
    /// Log out.
    LogOut,
    /// Switch tabs.
    Tab(Tab),
    /// How strictly interests count for the next *Find*.
    SetFindMode(InterestMode),
    /// Find a partner.
    Find,
    /// Stop looking.
    CancelFind,
    /// The draft changed.
    DraftEdited,
    /// Send the draft.
    Send,
    /// The partner's messages up to `seq` are on screen in a focused window.
    Seen {
        /// The chat.
        chat_id: Uuid,
        /// Up to this seq.
        seq: u64,
    },
    /// Ask to leave the chat.
    AskNext,
    /// Leave it and find someone new.
    ConfirmNext,
    /// Ask to block.
    AskBlock,
    /// Block.
    ConfirmBlock,
    /// Ask to report.
    AskReport,
    /// Send the report.
    SubmitReport,
    /// Close the dialog (Esc).
    CloseDialog,
    /// Close the ended chat's view.
    CloseChat,
    /// Load the next page of past chats.
    LoadMoreChats,
    /// Read a past chat.
    OpenHistory(Uuid),
    /// Back to the list.
    CloseHistory,
    /// Load older messages of the chat being read.
    LoadOlderMessages,
    /// Save the profile form.
    SaveProfile,
    /// Save the preferences form.
    SavePreferences,
    /// Change the password.
    ChangePassword,
    /// List sessions again.
    RefreshSessions,
    /// End another session.
    EndSession(Uuid),
    /// Connect again after the connection gave up.
    Reconnect,
    /// The window gained or lost focus.
    Focus(bool),
    /// Time passed (called on every frame; cheap).
    Tick,
    /// Hide the notice.
    DismissNotice,
}

/// A notice at the top of the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The sentence.
    pub text: String,
    /// Whether it is an error.
    pub error: bool,
}

/// The whole state of the client.
#[derive(Debug)]
pub struct App {
    /// The screen shown.
    pub screen: Screen,
    /// The tab shown on the home screen.
    pub tab: Tab,
    /// The real-time connection.
    pub link: Link,
    /// My profile, once logged in.
    pub me: Option<Profile>,
    /// The log-in form.
    pub log_in: LogInForm,
    /// The sign-up form.
    pub sign_up: SignUpForm,
    /// Where I stand in the queue.
    pub queue: Queue,
    /// How strictly interests count for the next *Find*.
    pub find_mode: InterestMode,
    /// The chat shown on the chat tab.
    pub chat: Option<ChatView>,
    /// Past chats.
    pub history: HistoryView,
    /// The profile form.
    pub profile: Option<ProfileForm>,
    /// The preferences form.
    pub preferences: Option<PreferencesForm>,
    /// The change-password form.
    pub password: PasswordForm,
    /// My sessions, once loaded.
    pub sessions: Option<Vec<SessionInfo>>,
    /// What went wrong with sessions.
    pub sessions_error: Option<String>,
    /// The dialog shown.
    pub dialog: Option<Dialog>,
    /// The notice shown.
    pub notice: Option<Notice>,
    /// Whether the window has focus.
    pub focused: bool,
    /// Matches and messages that arrived while the window was unfocused.
    pub unseen: u32,
    /// The window should ask for attention (set on arrival while unfocused; the view clears it).
    pub wants_attention: bool,
    last_queue_poll: Option<Instant>,
}

/// Parses a comma-separated list of interests.
pub fn parse_interests(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses a birth date as typed.
pub fn parse_date(text: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text.trim(), &format).ok()
}

/// The date as the forms show it.
pub fn format_date(date: Date) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    date.format(&format).unwrap_or_default()
}

fn gender_index(gender: Gender) -> usize {
    match gender {
        Gender::Male => 0,
        Gender::Female => 1,
        Gender::Other => 2,
    }
}

impl App {
    /// A client about to look for a remembered session; `server` prefills the log-in form.
    /// Returns the commands to start with.
    pub fn new(server: &str) -> (Self, Vec<Command>) {
        let app = Self {
            screen: Screen::Starting,
            tab: Tab::Chat,
            link: Link::Offline { reason: None },
            me: None,
            log_in: LogInForm {
                server: server.to_owned(),
                ..LogInForm::default()
            },
            sign_up: SignUpForm::default(),
            queue: Queue::Idle,
            find_mode: InterestMode::Preferred,
            chat: None,
            history: HistoryView::default(),
            profile: None,
            preferences: None,
            password: PasswordForm::default(),
            sessions: None,
            sessions_error: None,
            dialog: None,
            notice: None,
            focused: true,
            unseen: 0,
            wants_attention: false,
            last_queue_poll: None,
        };
        (app, vec![Command::Restore])
    }

    /// Whether the real-time connection is up.
    pub fn online(&self) -> bool {
        self.link == Link::Online
    }

    /// The active (not ended) chat, if any.
    pub fn active_chat(&self) -> Option<&ChatView> {
        self.chat.as_ref().filter(|c| c.ended.is_none())
    }

    /// The window title.
    pub fn title(&self) -> String {
        if self.unseen > 0 {
            format!("({}) Random Chats", self.unseen)
        } else {
            "Random Chats".to_owned()
        }
    }

    fn my_id(&self) -> Option<Uuid> {
        self.me.as_ref().map(|p| p.id)
    }

    fn error_notice(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            error: true,
        });
    }

    fn info_notice(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice {
            text: text.into(),
            error: false,
        });
    }

    fn attention(&mut self) {
        if !self.focused {
            self.unseen += 1;
            self.wants_attention = true;
        }
    }

    fn join_request(&self) -> JoinQueueRequest {
        JoinQueueRequest {
            interest_mode: Some(self.find_mode),
            ..JoinQueueRequest::default()
        }
    }

    /// Applies something the user did.
    pub fn act(&mut self, action: Action) -> Vec<Command> {
        match action {
            Action::ShowSignUp => {
                self.screen = Screen::SignUp;
                vec![]
            }
            Action::ShowLogIn => {
                self.screen = Screen::LogIn;
                vec![]
            }
            Action::LogIn => self.submit_log_in(),
            Action::SignUp => self.submit_sign_up(),
            Action::RetryRestore => {
                self.screen = Screen::Starting;
                self.notice = None;
                vec![Command::Restore]
            }
            Action::LogOut => vec![Command::LogOut],
            Action::Tab(tab) => self.switch_tab(tab),
            Action::SetFindMode(mode) => {
                self.find_mode = mode;
                vec![]
            }
            Action::Find => {
                if matches!(self.queue, Queue::Idle) && self.active_chat().is_none() {
                    self.queue = Queue::Joining;
                    self.chat = None;
                    vec![Command::Join(Box::new(self.join_request()))]
                } else {
                    vec![]
                }
            }
            Action::CancelFind => {
                if matches!(self.queue, Queue::Waiting { .. } | Queue::Joining) {
                    self.queue = Queue::Leaving;
                    vec![Command::Leave]
                } else {
                    vec![]
                }
            }
            Action::DraftEdited => self.draft_edited(),
            Action::Send => self.send(),
            Action::Seen { chat_id, seq } => self.seen(chat_id, seq),
            Action::AskNext => self.ask(Dialog::ConfirmNext),
            Action::AskBlock => self.ask(Dialog::ConfirmBlock),
            Action::AskReport => self.ask(Dialog::Report {
                reason: String::new(),
                error: None,
            }),
            Action::ConfirmNext => {
                self.dialog = None;
                let Some(chat) = self.active_chat() else {
                    return vec![];
                };
                let chat_id = chat.chat_id;
                // Moving on: the ended chat stays readable under History.
                self.chat = None;
                self.queue = Queue::Joining;
                vec![Command::EndChat {
                    chat_id,
                    then_join: Some(Box::new(self.join_request())),
                }]
            }
            Action::ConfirmBlock => {
                self.dialog = None;
                match &self.chat {
                    Some(chat) => vec![Command::Block {
                        user_id: chat.partner.id,
                    }],
                    None => vec![],
                }
            }
            Action::SubmitReport => self.submit_report(),
            Action::CloseDialog => {
                self.dialog = None;
                vec![]
            }
            Action::CloseChat => {
                if self.chat.as_ref().is_some_and(|c| c.ended.is_some()) {
                    self.chat = None;
                }
                vec![]
            }
            Action::LoadMoreChats => {
                if self.history.loading || self.history.complete {
                    return vec![];
                }
                self.history.loading = true;
                vec![Command::LoadChats {
                    before: self.history.next_before.clone(),
                }]
            }
            Action::OpenHistory(chat_id) => {
                let Some(summary) = self.history.chats.iter().find(|c| c.id == chat_id) else {
                    return vec![];
                };
                self.history.open = Some(OpenHistory {
                    summary: summary.clone(),
                    messages: Vec::new(),
                    has_more: false,
                    loading: true,
                });
                vec![Command::LoadHistory {
                    chat_id,
                    before: None,
                }]
            }
            Action::CloseHistory => {
                self.history.open = None;
                vec![]
            }
            Action::LoadOlderMessages => match &mut self.history.open {
                Some(open) if open.has_more && !open.loading => {
                    open.loading = true;
                    vec![Command::LoadHistory {
                        chat_id: open.summary.id,
                        before: open.messages.first().map(|m| m.message.seq),
                    }]
                }
                _ => vec![],
            },
            Action::SaveProfile => self.save_profile(),
            Action::SavePreferences => self.save_preferences(),
            Action::ChangePassword => self.change_password(),
            Action::RefreshSessions => {
                self.sessions_error = None;
                vec![Command::LoadSessions]
            }
            Action::EndSession(id) => vec![Command::EndSession(id)],
            Action::Reconnect => {
                self.link = Link::Connecting;
                vec![Command::Reconnect]
            }
            Action::Focus(focused) => {
                self.focused = focused;
                if focused {
                    self.unseen = 0;
                    self.wants_attention = false;
                }
                vec![]
            }
            Action::Tick => self.tick(),
            Action::DismissNotice => {
                self.notice = None;
                vec![]
            }
        }
    }

    fn ask(&mut self, dialog: Dialog) -> Vec<Command> {
        if self.active_chat().is_some() {
            self.dialog = Some(dialog);
        }
        vec![]
    }

    fn switch_tab(&mut self, tab: Tab) -> Vec<Command> {
        self.tab = tab;
        match tab {
            Tab::History if !self.history.loading => {
                // The list is read again from the top whenever the tab is opened.
                self.history.loading = true;
                self.history.complete = false;
                vec![Command::LoadChats { before: None }]
            }
            Tab::Sessions => vec![Command::LoadSessions],
            _ => vec![],
        }
    }

    fn submit_log_in(&mut self) -> Vec<Command> {
        let form = &mut self.log_in;
        if form.busy {
            return vec![];
        }
        if form.username.trim().is_empty() || form.password.is_empty() {
            form.error = Some("Please enter your user name and password.".to_owned());
            return vec![];
        }
        form.busy = true;
        form.error = None;
        vec![Command::LogIn {
            server: form.server.trim().to_owned(),
            username: form.username.trim().to_owned(),
            password: form.password.clone(),
        }]
    }

    fn submit_sign_up(&mut self) -> Vec<Command> {
        let form = &mut self.sign_up;
        if form.busy {
            return vec![];
        }
        form.errors.clear();
        form.error = None;
        let Some(birth_date) = parse_date(&form.birth_date) else {
            form.errors.insert(
                "birth_date".to_owned(),
                "Please write the date as year-month-day, for example 1995-04-23.".to_owned(),
            );
            return vec![];
        };
        form.busy = true;
        vec![Command::SignUp {
            server: self.log_in.server.trim().to_owned(),
            request: Box::new(SignupRequest {
                username: form.username.trim().to_owned(),
                password: form.password.clone(),
                display_name: form.display_name.trim().to_owned(),
                gender: form.gender,
                birth_date,
                interests: parse_interests(&form.interests),
            }),
        }]
    }

    fn submit_report(&mut self) -> Vec<Command> {
        let Some(Dialog::Report { reason, error }) = &mut self.dialog else {
            return vec![];
        };
        let Some(chat) = &self.chat else {
            return vec![];
        };
        if reason.trim().is_empty() {
            *error = Some("Please say what happened.".to_owned());
            return vec![];
        }
        let request = ReportRequest {
            user_id: chat.partner.id,
            chat_id: chat.chat_id,
            message_ids: Vec::new(),
            reason: reason.trim().to_owned(),
        };
        vec![Command::Report(Box::new(request))]
    }

    fn draft_edited(&mut self) -> Vec<Command> {
        let Some(chat) = self.chat.as_mut().filter(|c| c.ended.is_none()) else {
            return vec![];
        };
        let now = Instant::now();
        if chat.draft.trim().is_empty() {
            chat.last_edit = None;
            if chat.typing_sent_at.take().is_some() {
                return vec![Command::Typing {
                    chat_id: chat.chat_id,
                    typing: false,
                }];
            }
            return vec![];
        }
        chat.last_edit = Some(now);
        let due = chat
            .typing_sent_at
            .is_none_or(|at| now.duration_since(at) >= TYPING_REPEAT);
        if due {
            chat.typing_sent_at = Some(now);
            vec![Command::Typing {
                chat_id: chat.chat_id,
                typing: true,
            }]
        } else {
            vec![]
        }
    }

    fn send(&mut self) -> Vec<Command> {
        let Some(chat) = self.chat.as_mut().filter(|c| c.ended.is_none()) else {
            return vec![];
        };
        let text = chat.draft.trim_end().to_owned();
        if text.trim().is_empty() {
            return vec![];
        }
        let client_msg_id = Uuid::now_v7().to_string();
        chat.draft.clear();
        chat.last_edit = None;
        chat.lines.push(Line {
            seq: None,
            client_msg_id: client_msg_id.clone(),
            mine: true,
            text: text.clone(),
            at: None,
            failed: None,
        });
        let mut commands = vec![Command::Send {
            chat_id: chat.chat_id,
            client_msg_id,
            text,
        }];
        if chat.typing_sent_at.take().is_some() {
            commands.push(Command::Typing {
                chat_id: chat.chat_id,
                typing: false,
            });
        }
        commands
    }

    fn seen(&mut self, chat_id: Uuid, seq: u64) -> Vec<Command> {
        if !self.focused {
            return vec![];
        }
        let Some(chat) = self.chat.as_mut().filter(|c| c.chat_id == chat_id) else {
            return vec![];
        };
        let seq = seq.min(chat.last_partner_seq());
        if seq <= chat.read_sent {
            return vec![];
        }
        chat.read_sent = seq;
        vec![Command::MarkRead { chat_id, seq }]
    }

    fn tick(&mut self) -> Vec<Command> {
        let now = Instant::now();
        let mut commands = Vec::new();
        if let Some(chat) = self.chat.as_mut()
            && chat.ended.is_none()
            && chat.typing_sent_at.is_some()
            && chat
                .last_edit
                .is_none_or(|at| now.duration_since(at) >= TYPING_IDLE)
        {
            chat.typing_sent_at = None;
            commands.push(Command::Typing {
                chat_id: chat.chat_id,
                typing: false,
            });
        }
        if matches!(self.queue, Queue::Waiting { .. })
            && self
                .last_queue_poll
                .is_none_or(|at| now.duration_since(at) >= QUEUE_POLL)
        {
            self.last_queue_poll = Some(now);
            commands.push(Command::PollQueue);
        }
        commands
    }

    fn save_profile(&mut self) -> Vec<Command> {
        let Some(form) = self.profile.as_mut() else {
            return vec![];
        };
        form.errors.clear();
        form.note = None;
        let Some(birth_date) = parse_date(&form.birth_date) else {
            form.errors.insert(
                "birth_date".to_owned(),
                "Please write the date as year-month-day, for example 1995-04-23.".to_owned(),
            );
            return vec![];
        };
        form.busy = true;
        vec![Command::UpdateProfile(Box::new(UpdateProfileRequest {
            display_name: Some(form.display_name.trim().to_owned()),
            gender: Some(form.gender),
            birth_date: Some(birth_date),
            interests: Some(parse_interests(&form.interests)),
            content_filter: None,
        }))]
    }

    fn save_preferences(&mut self) -> Vec<Command> {
        let Some(form) = self.preferences.as_mut() else {
            return vec![];
        };
        form.error = None;
        form.note = None;
        let genders: Vec<Gender> = Gender::ALL
            .into_iter()
            .filter(|g| form.genders[gender_index(*g)])
            .collect();
        if genders.is_empty() {
            form.error = Some("Please choose at least one gender to meet.".to_owned());
            return vec![];
        }
        if form.min_age > form.max_age {
            form.error = Some("The lowest age must not be above the highest.".to_owned());
            return vec![];
        }
        form.busy = true;
        vec![Command::SetPreferences(Box::new(Preferences {
            genders,
            min_age: form.min_age,
            max_age: form.max_age,
            interests: parse_interests(&form.interests),
            interest_mode: form.interest_mode,
            age_widen_years: form.age_widen_years,
            widen_every_secs: form.widen_every_secs,
            fallback_after_secs: (form.fallback_after_secs > 0).then_some(form.fallback_after_secs),
        }))]
    }

    fn change_password(&mut self) -> Vec<Command> {
        let form = &mut self.password;
        form.error = None;
        form.note = None;
        if form.new != form.repeat {
            form.error = Some("The two new passwords differ.".to_owned());
            return vec![];
        }
        if form.current.is_empty() || form.new.is_empty() {
            form.error = Some("Please fill in both passwords.".to_owned());
            return vec![];
        }
        form.busy = true;
        vec![Command::ChangePassword {
            current: form.current.clone(),
            new: form.new.clone(),
        }]
    }

    /// Applies what the worker reported.
    pub fn apply(&mut self, update: Update) -> Vec<Command> {
        match update {
            Update::NoSession => {
                self.screen = Screen::LogIn;
                vec![]
            }
            Update::LoggedIn(welcome) => {
                self.welcome(*welcome);
                vec![]
            }
            Update::LogInFailed { attempt, error } => {
                self.log_in_failed(attempt, error);
                vec![]
            }
            Update::LoggedOut => {
                let server = self.log_in.server.clone();
                let username = self
                    .me
                    .as_ref()
                    .map(|p| p.username.clone())
                    .unwrap_or_default();
                let (mut fresh, _) = App::new(&server);
                fresh.screen = Screen::LogIn;
                fresh.log_in.username = username;
                fresh.focused = self.focused;
                *self = fresh;
                vec![]
            }
            Update::Link(link) => self.link_update(link),
            Update::Acked {
                chat_id,
                client_msg_id,
                seq,
                created_at,
            } => {
                if let Some(chat) = self.chat.as_mut().filter(|c| c.chat_id == chat_id)
                    && let Some(line) = chat
                        .lines
                        .iter_mut()
                        .find(|l| l.mine && l.client_msg_id == client_msg_id)
                {
                    line.seq = Some(seq);
                    line.at = Some(created_at);
                    // A copy that arrived from another device first would now be twice.
                    let mut seen_once = false;
                    chat.lines.retain(|l| {
                        if l.seq != Some(seq) {
                            return true;
                        }
                        let keep = !seen_once;
                        seen_once = true;
                        keep
                    });
                    chat.sort();
                }
                vec![]
            }
            Update::SendFailed {
                chat_id,
                client_msg_id,
                error,
            } => {
                if let Some(chat) = self.chat.as_mut().filter(|c| c.chat_id == chat_id)
                    && let Some(line) = chat
                        .lines
                        .iter_mut()
                        .find(|l| l.mine && l.client_msg_id == client_msg_id)
                {
                    line.failed = Some(error.message);
                }
                vec![]
            }
            Update::Queue(status) => {
                self.queue_status(*status);
                vec![]
            }
            Update::LeftQueue => {
                if matches!(self.queue, Queue::Leaving) {
                    self.queue = Queue::Idle;
                }
                vec![]
            }
            Update::Chats { first, page } => {
                let history = &mut self.history;
                history.loading = false;
                history.error = None;
                if first {
                    history.chats.clear();
                }
                for chat in page.chats {
                    if !history.chats.iter().any(|c| c.id == chat.id) {
                        history.chats.push(chat);
                    }
                }
                history.complete = page.next_before.is_none();
                history.next_before = page.next_before;
                vec![]
            }
            Update::History {
                chat_id,
                first,
                page,
            } => {
                if let Some(open) = self
                    .history
                    .open
                    .as_mut()
                    .filter(|o| o.summary.id == chat_id)
                {
                    open.loading = false;
                    let mut older = page.messages;
                    older.sort_by_key(|m| m.message.seq);
                    if first {
                        open.messages = older;
                    } else {
                        older.append(&mut open.messages);
                        open.messages = older;
                    }
                    open.has_more = page.has_more;
                }
                vec![]
            }
            Update::Profile(profile) => {
                self.profile = Some(profile_form(&profile));
                if let Some(form) = self.profile.as_mut() {
                    form.note = Some("Saved.".to_owned());
                }
                self.me = Some(*profile);
                vec![]
            }
            Update::Preferences(preferences) => {
                let mut form = preferences_form(&preferences);
                form.note = Some("Saved.".to_owned());
                self.preferences = Some(form);
                if let Some(me) = self.me.as_mut() {
                    me.preferences = *preferences;
                }
                vec![]
            }
            Update::PasswordChanged => {
                self.password = PasswordForm {
                    note: Some(
                        "Your password was changed; your other sessions have ended.".to_owned(),
                    ),
                    ..PasswordForm::default()
                };
                vec![Command::LoadSessions]
            }
            Update::Sessions(sessions) => {
                self.sessions = Some(sessions);
                self.sessions_error = None;
                vec![]
            }
            Update::SessionClosed(id) => {
                if let Some(sessions) = self.sessions.as_mut() {
                    sessions.retain(|s| s.id != id);
                }
                vec![]
            }
            Update::ChatClosed(chat_id) => {
                if let Some(chat) = self.chat.as_mut().filter(|c| c.chat_id == chat_id) {
                    chat.ended.get_or_insert(Ended::ByMe);
                }
                vec![]
            }
            Update::Blocked(user_id) => {
                if let Some(chat) = self.chat.as_mut().filter(|c| c.partner.id == user_id) {
                    chat.ended.get_or_insert(Ended::ByMe);
                    let name = chat.partner.display_name.clone();
                    self.info_notice(format!(
                        "You blocked {name}. You will not be matched again."
                    ));
                }
                vec![]
            }
            Update::Reported => {
                self.dialog = None;
                self.info_notice("Thank you. Your report was sent to the moderators.");
                vec![]
            }
            Update::Failed { what, error } => {
                self.failed(what, error);
                vec![]
            }
        }
    }

    fn welcome(&mut self, welcome: Welcome) {
        self.screen = Screen::Home;
        self.tab = Tab::Chat;
        self.log_in.server = welcome.server;
        self.log_in.busy = false;
        self.log_in.password.clear();
        self.log_in.error = None;
        self.sign_up = SignUpForm::default();
        self.notice = None;
        self.profile = Some(profile_form(&welcome.profile));
        self.preferences = Some(preferences_form(&welcome.profile.preferences));
        self.find_mode = welcome.profile.preferences.interest_mode;
        let me = welcome.profile.id;
        self.me = Some(welcome.profile);
        self.link = Link::Connecting;
        self.chat = welcome.active.map(|(summary, messages)| {
            let mut chat = ChatView::new(summary.id, summary.partner.clone(), Vec::new());
            let mine: Vec<String> = self
                .me
                .as_ref()
                .map(|p| p.interests.clone())
                .unwrap_or_default();
            chat.shared_interests = summary
                .partner
                .interests
                .iter()
                .filter(|i| mine.contains(i))
                .cloned()
                .collect();
            for watermark in &summary.watermarks {
                if watermark.user_id == summary.partner.id {
                    chat.partner_delivered = watermark.delivered_seq;
                    chat.partner_read = watermark.read_seq;
                } else if watermark.user_id == me {
                    chat.read_sent = watermark.read_seq;
                }
            }
            for view in messages {
                chat.insert_stored(line_of(&view.message, me));
            }
            chat
        });
        self.queue = Queue::Idle;
        self.queue_status(welcome.queue);
    }

    fn log_in_failed(&mut self, attempt: Attempt, error: UiError) {
        match attempt {
            Attempt::Restore => {
                self.screen = Screen::LogIn;
                if error.session_over {
                    self.log_in.error = Some(error.message);
                } else {
                    self.error_notice(error.message);
                }
            }
            Attempt::LogIn => {
                self.screen = Screen::LogIn;
                self.log_in.busy = false;
                self.log_in.error = Some(error.message);
            }
            Attempt::SignUp => {
                self.screen = Screen::SignUp;
                let form = &mut self.sign_up;
                form.busy = false;
                match error.field {
                    Some(field) => {
                        form.errors.insert(field, error.message);
                    }
                    None => form.error = Some(error.message),
                }
            }
        }
    }

    fn failed(&mut self, what: Request, error: UiError) {
        if error.session_over {
            self.error_notice(error.message);
            return;
        }
        match what {
            Request::Queue => {
                self.queue = Queue::Idle;
                self.error_notice(error.message);
            }
            Request::History => {
                self.history.loading = false;
                if let Some(open) = self.history.open.as_mut() {
                    open.loading = false;
                }
                self.history.error = Some(error.message);
            }
            Request::Profile => {
                if let Some(form) = self.profile.as_mut() {
                    form.busy = false;
                    let field = error.field.unwrap_or_else(|| "display_name".to_owned());
                    form.errors.insert(field, error.message);
                }
            }
            Request::Preferences => {
                if let Some(form) = self.preferences.as_mut() {
                    form.busy = false;
                    form.error = Some(error.message);
                }
            }
            Request::Password => {
                self.password.busy = false;
                self.password.error = Some(error.message);
            }
            Request::Sessions => self.sessions_error = Some(error.message),
            Request::Report => {
                if let Some(Dialog::Report { error: shown, .. }) = self.dialog.as_mut() {
                    *shown = Some(error.message);
                } else {
                    self.error_notice(error.message);
                }
            }
            Request::Chat | Request::Block => self.error_notice(error.message),
        }
    }

    fn queue_status(&mut self, status: QueueStatus) {
        match status.state {
            QueueState::Waiting => {
                if matches!(self.queue, Queue::Leaving) {
                    return;
                }
                if self.active_chat().is_some() {
                    return;
                }
                self.queue = Queue::Waiting {
                    since: status.waiting_since.unwrap_or_else(OffsetDateTime::now_utc),
                    criteria: status.criteria,
                };
            }
            QueueState::Idle => {
                if !matches!(self.queue, Queue::Joining) {
                    self.queue = Queue::Idle;
                }
            }
            QueueState::Matched => {
                self.queue = Queue::Idle;
                if let Some(info) = status.matched {
                    let known = self
                        .chat
                        .as_ref()
                        .is_some_and(|c| c.chat_id == info.chat_id);
                    // The latest match may be an old one; only a fresh join opens it here
                    // (the `matched` event opens it otherwise).
                    if !known && self.chat.is_none() && status.waiting_since.is_some() {
                        self.matched(info);
                    }
                }
            }
        }
    }

    fn matched(&mut self, info: MatchInfo) {
        if self
            .chat
            .as_ref()
            .is_some_and(|c| c.chat_id == info.chat_id)
        {
            return;
        }
        self.queue = Queue::Idle;
        self.tab = Tab::Chat;
        self.chat = Some(ChatView::new(
            info.chat_id,
            info.partner,
            info.shared_interests,
        ));
        self.attention();
    }

    fn link_update(&mut self, link: LinkUpdate) -> Vec<Command> {
        match link {
            LinkUpdate::Connecting => self.link = Link::Connecting,
            LinkUpdate::RetryingAt { retry_at, .. } => {
                let since = match &self.link {
                    Link::Reconnecting { since, .. } => *since,
                    _ => Instant::now(),
                };
                self.link = Link::Reconnecting {
                    since,
                    retry_at: Some(retry_at),
                };
            }
            LinkUpdate::Closed { reason } => {
                self.link = Link::Offline {
                    reason: Some(reason),
                };
            }
            LinkUpdate::Event(event) => return self.event(*event),
        }
        vec![]
    }

    fn event(&mut self, event: Event) -> Vec<Command> {
        let me = self.my_id();
        match event {
            Event::Connected { .. } | Event::Resumed => self.link = Link::Online,
            Event::Disconnected { .. } => {
                if !matches!(self.link, Link::Reconnecting { .. }) {
                    self.link = Link::Reconnecting {
                        since: Instant::now(),
                        retry_at: None,
                    };
                }
            }
            Event::Reconnecting { delay, .. } => {
                let since = match &self.link {
                    Link::Reconnecting { since, .. } => *since,
                    _ => Instant::now(),
                };
                self.link = Link::Reconnecting {
                    since,
                    retry_at: Some(OffsetDateTime::now_utc() + delay),
                };
            }
            Event::Message(message) => {
                let Some(me) = me else { return vec![] };
                if let Some(chat) = self.chat.as_mut().filter(|c| c.chat_id == message.chat_id) {
                    let line = line_of(&message, me);
                    let theirs = !line.mine;
                    chat.insert_stored(line);
                    if theirs {
                        chat.partner_typing_since = None;
                        self.attention();
                    }
                }
            }
            Event::Status(watermark) => {
                if let Some(chat) = self
                    .chat
                    .as_mut()
                    .filter(|c| c.chat_id == watermark.chat_id)
                {
                    if watermark.user_id == chat.partner.id {
                        chat.partner_delivered =
                            chat.partner_delivered.max(watermark.delivered_seq);
                        chat.partner_read = chat.partner_read.max(watermark.read_seq);
                    } else if Some(watermark.user_id) == me {
                        chat.read_sent = chat.read_sent.max(watermark.read_seq);
                    }
                }
            }
            Event::Typing {
                chat_id,
                user_id,
                typing,
            } => {
                if let Some(chat) = self
                    .chat
                    .as_mut()
                    .filter(|c| c.chat_id == chat_id && c.partner.id == user_id)
                {
                    chat.partner_typing_since = typing.then(Instant::now);
                }
            }
            Event::Presence {
                chat_id,
                user_id,
                online,
            } => {
                if let Some(chat) = self
                    .chat
                    .as_mut()
                    .filter(|c| c.chat_id == chat_id && c.partner.id == user_id)
                {
                    chat.partner_online = Some(online);
                    if !online {
                        chat.partner_typing_since = None;
                    }
                }
            }
            Event::ChatEnded { chat_id, ended_by } => {
                if let Some(chat) = self.chat.as_mut().filter(|c| c.chat_id == chat_id) {
                    let by_me = Some(ended_by) == me;
                    chat.ended
                        .get_or_insert(if by_me { Ended::ByMe } else { Ended::ByPartner });
                    chat.partner_typing_since = None;
                    if self.dialog.is_some() && !by_me {
                        self.dialog = None;
                    }
                    if !by_me {
                        self.attention();
                    }
                }
            }
            Event::Matched(info) => self.matched(info),
            Event::Error { code, .. } => {
                self.error_notice(crate::words::sentence(code));
            }
        }
        vec![]
    }
}

fn line_of(message: &Message, me: Uuid) -> Line {
    Line {
        seq: Some(message.seq),
        client_msg_id: message.client_msg_id.clone(),
        mine: message.sender_id == me,
        text: message.text.clone(),
        at: Some(message.created_at),
        failed: None,
    }
}

fn profile_form(profile: &Profile) -> ProfileForm {
    ProfileForm {
        display_name: profile.display_name.clone(),
        gender: profile.gender,
        birth_date: format_date(profile.birth_date),
        interests: profile.interests.join(", "),
        busy: false,
        errors: FieldErrors::new(),
        note: None,
    }
}

fn preferences_form(preferences: &Preferences) -> PreferencesForm {
    // No genders saved means anyone.
    let mut genders = [preferences.genders.is_empty(); 3];
    for gender in &preferences.genders {
        genders[gender_index(*gender)] = true;
    }
    PreferencesForm {
        genders,
        min_age: preferences.min_age,
        max_age: preferences.max_age,
        interests: preferences.interests.join(", "),
        interest_mode: preferences.interest_mode,
        age_widen_years: preferences.age_widen_years,
        widen_every_secs: preferences.widen_every_secs,
        fallback_after_secs: preferences.fallback_after_secs.unwrap_or(0),
        busy: false,
        error: None,
        note: None,
    }
}

/// The delivery state of a past message of mine, for the history view.
pub fn history_mark(view: &MessageView) -> Mark {
    match view.status.state {
        DeliveryState::Read => Mark::Read,
        DeliveryState::Delivered => Mark::Delivered,
        DeliveryState::Sent => Mark::Sent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interests_are_split_on_commas_and_trimmed() {
        assert_eq!(
            parse_interests(" chess, music ,,"),
            vec!["chess".to_owned(), "music".to_owned()]
        );
    }

    #[test]
    fn a_birth_date_in_another_shape_is_refused_before_sending() {
        let (mut app, _) = App::new("http://127.0.0.1:8080");
        app.sign_up.birth_date = "23.04.1995".to_owned();
        assert!(app.act(Action::SignUp).is_empty());
        assert!(app.sign_up.errors.contains_key("birth_date"));
    }

    #[test]
    fn sending_without_a_chat_does_nothing_and_an_empty_draft_is_not_sent() {
        let (mut app, _) = App::new("http://127.0.0.1:8080");
        assert!(app.act(Action::Send).is_empty());
        app.chat = Some(ChatView::new(
            Uuid::new_v4(),
            PublicProfile {
                id: Uuid::new_v4(),
                display_name: "Sam".to_owned(),
                gender: Gender::Female,
                age: 30,
                interests: vec![],
            },
            vec![],
        ));
        app.chat.as_mut().unwrap().draft = "  \n ".to_owned();
        assert!(app.act(Action::Send).is_empty());
    }

    #[test]
    fn messages_are_marked_read_only_while_the_window_has_focus() {
        let (mut app, _) = App::new("http://127.0.0.1:8080");
        let partner = Uuid::new_v4();
        let chat_id = Uuid::new_v4();
        let mut chat = ChatView::new(
            chat_id,
            PublicProfile {
                id: partner,
                display_name: "Sam".to_owned(),
                gender: Gender::Female,
                age: 30,
                interests: vec![],
            },
            vec![],
        );
        chat.insert_stored(Line {
            seq: Some(1),
            client_msg_id: "p-1".to_owned(),
            mine: false,
            text: "hi".to_owned(),
            at: None,
            failed: None,
        });
        app.chat = Some(chat);
        app.act(Action::Focus(false));
        assert!(app.act(Action::Seen { chat_id, seq: 1 }).is_empty());
        app.act(Action::Focus(true));
        let commands = app.act(Action::Seen { chat_id, seq: 1 });
        assert!(matches!(
            commands.as_slice(),
            [Command::MarkRead { seq: 1, .. }]
        ));
        // Once is enough.
        assert!(app.act(Action::Seen { chat_id, seq: 1 }).is_empty());
    }

    #[test]
    fn an_unsent_message_is_queued_offline_and_sending_online() {
        let chat = ChatView::new(
            Uuid::new_v4(),
            PublicProfile {
                id: Uuid::new_v4(),
                display_name: "Sam".to_owned(),
                gender: Gender::Female,
                age: 30,
                interests: vec![],
            },
            vec![],
        );
        let line = Line {
            seq: None,
            client_msg_id: "x".to_owned(),
            mine: true,
            text: "hi".to_owned(),
            at: None,
            failed: None,
        };
        assert_eq!(chat.mark(&line, false), Some(Mark::Queued));
        assert_eq!(chat.mark(&line, true), Some(Mark::Sending));
    }
}
