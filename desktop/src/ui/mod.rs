//! The egui views: each frame draws the [`App`] and turns clicks and keys into [`Action`]s.

mod account;
mod chat;
mod pages;

use std::time::Duration;

use eframe::egui::{self, Color32, RichText};

use crate::controller::Controller;
use crate::model::{Action, App, Dialog, Link, Queue, Screen, Tab};
use crate::theme::{PortalTheme, ThemeChoice};

static LOCAL_OFFSET: std::sync::OnceLock<time::UtcOffset> = std::sync::OnceLock::new();

/// Finds the local time zone's offset. Call it before any thread starts: on some systems
/// the offset can only be read safely while the process has one thread.
pub fn init_local_offset() {
    let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    let _ = LOCAL_OFFSET.set(offset);
}

fn local_offset() -> time::UtcOffset {
    LOCAL_OFFSET.get().copied().unwrap_or(time::UtcOffset::UTC)
}

/// The window: the controller plus what the window itself remembers.
#[derive(Debug)]
pub struct DesktopApp {
    controller: Controller,
    title: String,
    theme: ThemeChoice,
    /// The desktop portal's light/dark setting, asked only when following the system.
    portal: Option<PortalTheme>,
}

impl DesktopApp {
    /// A window showing `controller`'s state in the `theme` asked for; `repaint` wakes the
    /// window when the system's theme changes.
    pub fn new(
        controller: Controller,
        theme: ThemeChoice,
        repaint: impl Fn() + Send + 'static,
    ) -> Self {
        let portal = (theme == ThemeChoice::System).then(|| PortalTheme::watch(repaint));
        Self {
            controller,
            title: String::new(),
            theme,
            portal,
        }
    }

    fn apply_theme(&self, ctx: &egui::Context) {
        let portal = self.portal.as_ref().and_then(PortalTheme::current);
        if let Some(theme) = self.theme.resolve(ctx.system_theme(), portal)
            && ctx.theme() != theme
        {
            ctx.set_theme(theme);
        }
    }
}

impl eframe::App for DesktopApp {
    fn update(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.apply_theme(ctx);
        self.controller.poll();
        let focused = ctx.input(|i| i.viewport().focused.unwrap_or(true));
        if focused != self.controller.app().focused {
            self.controller.act(Action::Focus(focused));
        }
        self.controller.act(Action::Tick);

        let mut actions = Vec::new();
        draw(ctx, self.controller.app_mut(), &mut actions);
        for action in actions {
            self.controller.act(action);
        }

        let app = self.controller.app_mut();
        let title = app.title();
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
        if app.wants_attention {
            app.wants_attention = false;
            ctx.send_viewport_cmd(egui::ViewportCommand::RequestUserAttention(
                egui::UserAttentionType::Informational,
            ));
        }
        // Clocks (waiting time, reconnect countdown, typing) move without input.
        ctx.request_repaint_after(Duration::from_millis(500));
    }
}

/// Draws the whole window.
pub fn draw(ctx: &egui::Context, app: &mut App, actions: &mut Vec<Action>) {
    if app.dialog.is_some() && ctx.input(|i| i.key_pressed(egui::Key::Escape)) {
        actions.push(Action::CloseDialog);
    }
    if app.screen == Screen::Home {
        top_bar(ctx, app, actions);
    }
    notice_bar(ctx, app, actions);
    egui::CentralPanel::default().show(ctx, |ui| match app.screen {
        Screen::Starting => {
            ui.centered_and_justified(|ui| {
                ui.horizontal_centered(|ui| {
                    ui.spinner();
                    ui.label("Opening your account…");
                });
            });
        }
        Screen::LogIn => account::log_in(ui, app, actions),
        Screen::SignUp => account::sign_up(ui, app, actions),
        Screen::Home => match app.tab {
            Tab::Chat => chat::chat_tab(ui, app, actions),
            Tab::History => pages::history(ui, app, actions),
            Tab::Profile => pages::profile(ui, app, actions),
            Tab::Sessions => pages::sessions(ui, app, actions),
        },
    });
    dialogs(ctx, app, actions);
}

fn top_bar(ctx: &egui::Context, app: &App, actions: &mut Vec<Action>) {
    egui::TopBottomPanel::top("top").show(ctx, |ui| {
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            ui.heading("Random Chats");
            ui.add_space(12.0);
            for (tab, label) in [
                (Tab::Chat, "Chat"),
                (Tab::History, "History"),
                (Tab::Profile, "Profile"),
                (Tab::Sessions, "Sessions"),
            ] {
                if ui.selectable_label(app.tab == tab, label).clicked() && app.tab != tab {
                    actions.push(Action::Tab(tab));
                }
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button("Log out").clicked() {
                    actions.push(Action::LogOut);
                }
                if let Some(me) = &app.me {
                    ui.label(RichText::new(&me.display_name).strong());
                }
                ui.separator();
                link_state(ui, app, actions);
                ui.separator();
                ui.label(queue_state(app));
            });
        });
        ui.add_space(4.0);
    });
}

fn link_state(ui: &mut egui::Ui, app: &App, actions: &mut Vec<Action>) {
    let (color, text) = match &app.link {
        Link::Online => (Color32::from_rgb(40, 160, 70), "Connected".to_owned()),
        Link::Connecting => (Color32::from_rgb(220, 160, 20), "Connecting…".to_owned()),
        Link::Reconnecting { since, retry_at } => {
            let text = match retry_at {
                Some(at) => {
                    let secs = (*at - time::OffsetDateTime::now_utc())
                        .whole_seconds()
                        .max(0);
                    if secs > 0 {
                        format!("Reconnecting in {secs} s")
                    } else {
                        "Reconnecting…".to_owned()
                    }
                }
                None => format!("Reconnecting… (lost {} s ago)", since.elapsed().as_secs()),
            };
            (Color32::from_rgb(220, 160, 20), text)
        }
        Link::Offline { .. } => (Color32::from_rgb(200, 60, 60), "Offline".to_owned()),
    };
    if matches!(app.link, Link::Offline { .. }) && ui.small_button("Reconnect").clicked() {
        actions.push(Action::Reconnect);
    }
    let response = ui.label(RichText::new(text).color(color));
    if let Link::Offline {
        reason: Some(reason),
    } = &app.link
    {
        response.on_hover_text(reason);
    }
    dot(ui, color);
}

/// A small filled circle (the bundled fonts have no bullet glyph).
pub(crate) fn dot(ui: &mut egui::Ui, color: Color32) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
    ui.painter().circle_filled(rect.center(), 4.5, color);
}

fn queue_state(app: &App) -> String {
    if let Some(chat) = app.active_chat() {
        return format!("Chatting with {}", chat.partner.display_name);
    }
    match &app.queue {
        Queue::Idle => "Not searching".to_owned(),
        Queue::Joining => "Starting the search…".to_owned(),
        Queue::Waiting { since, .. } => format!("Searching · {}", waited(*since)),
        Queue::Leaving => "Stopping the search…".to_owned(),
    }
}

/// How long since `since`, as m:ss.
pub(crate) fn waited(since: time::OffsetDateTime) -> String {
    let secs = (time::OffsetDateTime::now_utc() - since)
        .whole_seconds()
        .max(0);
    format!("{}:{:02}", secs / 60, secs % 60)
}

fn notice_bar(ctx: &egui::Context, app: &App, actions: &mut Vec<Action>) {
    let Some(notice) = &app.notice else { return };
    egui::TopBottomPanel::top("notice").show(ctx, |ui| {
        ui.horizontal(|ui| {
            let color = if notice.error {
                ui.visuals().error_fg_color
            } else {
                ui.visuals().strong_text_color()
            };
            ui.label(RichText::new(&notice.text).color(color));
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.small_button("✕").on_hover_text("Dismiss").clicked() {
                    actions.push(Action::DismissNotice);
                }
            });
        });
    });
}

fn dialogs(ctx: &egui::Context, app: &mut App, actions: &mut Vec<Action>) {
    let partner = app
        .chat
        .as_ref()
        .map(|c| c.partner.display_name.clone())
        .unwrap_or_default();
    let Some(dialog) = app.dialog.as_mut() else {
        return;
    };
    let modal = egui::Modal::new(egui::Id::new("dialog")).show(ctx, |ui| {
        ui.set_width(380.0);
        match dialog {
            Dialog::ConfirmNext => {
                ui.heading("Leave this chat?");
                ui.label(format!(
                    "The chat with {partner} ends for both of you, and the search for someone new starts."
                ));
                ui.add_space(8.0);
                ui.horizontal(|ui| {
                    if ui.button("Leave and find someone new").clicked() {
                        actions.push(Action::ConfirmNext);
                    }
                    if ui.button("Stay").clicked() {
                        actions.push(Action::CloseDialog);
                    }
                });
            }
            Dialog::ConfirmBlock => {
                ui.heading(format!("Block {partner}?"));
                ui.label("The chat ends and you will never be matched again.");
                ui.add_space(8.0);
                ui.horizontal(|ui| {
                    if ui.button("Block").clicked() {
                        actions.push(Action::ConfirmBlock);
                    }
                    if ui.button("Cancel").clicked() {
                        actions.push(Action::CloseDialog);
                    }
                });
            }
            Dialog::Report { reason, error } => {
                ui.heading(format!("Report {partner}"));
                ui.label("What happened? Moderators read every report.");
                ui.add(
                    egui::TextEdit::multiline(reason)
                        .desired_rows(4)
                        .desired_width(f32::INFINITY)
                        .hint_text("For example: insults, spam, threats…"),
                );
                if let Some(error) = error {
                    ui.colored_label(ui.visuals().error_fg_color, error.as_str());
                }
                ui.add_space(8.0);
                ui.horizontal(|ui| {
                    if ui.button("Send report").clicked() {
                        actions.push(Action::SubmitReport);
                    }
                    if ui.button("Cancel").clicked() {
                        actions.push(Action::CloseDialog);
                    }
                });
            }
        }
    });
    if modal.should_close() {
        actions.push(Action::CloseDialog);
    }
}

/// A form label with its error, if any, below the field drawn by `field`.
pub(crate) fn field_row(
    ui: &mut egui::Ui,
    label: &str,
    error: Option<&String>,
    field: impl FnOnce(&mut egui::Ui),
) {
    ui.label(label);
    ui.vertical(|ui| {
        field(ui);
        if let Some(error) = error {
            ui.colored_label(ui.visuals().error_fg_color, error.as_str());
        }
    });
    ui.end_row();
}
