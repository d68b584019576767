//! The chat tab: *Find*, the waiting view, and the chat itself.

use client_sdk::api::matching::{CriteriaInForce, InterestMode};
use eframe::egui::{self, Color32, RichText};

use super::account::gender_word;
use super::waited;
use crate::model::{Action, App, ChatView, Ended, Mark, Queue};

/// The chat tab.
pub fn chat_tab(ui: &mut egui::Ui, app: &mut App, actions: &mut Vec<Action>) {
    let online = app.online();
    let focused = app.focused;
    if let Some(chat) = app.chat.as_mut() {
        chat_view(ui, chat, online, focused, actions);
        return;
    }
    match &app.queue {
        Queue::Waiting { since, criteria } => waiting(ui, *since, criteria.as_ref(), actions),
        Queue::Joining | Queue::Leaving => {
            ui.centered_and_justified(|ui| {
                ui.spinner();
            });
        }
        Queue::Idle => find(ui, app, actions),
    }
}

fn mode_words(mode: InterestMode) -> &'static str {
    match mode {
        InterestMode::Required => "must share an interest",
        InterestMode::Preferred => "shared interests preferred",
        InterestMode::Ignored => "interests ignored",
    }
}

fn find(ui: &mut egui::Ui, app: &App, actions: &mut Vec<Action>) {
    ui.vertical_centered(|ui| {
        ui.add_space((ui.available_height() * 0.15).min(100.0));
        ui.heading("Meet someone new");
        ui.add_space(4.0);
        if let Some(me) = &app.me {
            let interests = if me.interests.is_empty() {
                "no interests yet (add some under Profile)".to_owned()
            } else {
                me.interests.join(", ")
            };
            ui.label(format!("Your interests: {interests}"));
        }
        ui.add_space(14.0);
        ui.label("This time, interests should be:");
        ui.add_space(4.0);
        let mut mode = app.find_mode;
        for (choice, words) in [
            (
                InterestMode::Required,
                "Required: only someone who shares an interest",
            ),
            (
                InterestMode::Preferred,
                "Preferred: shared interests first, anyone fitting otherwise",
            ),
            (
                InterestMode::Ignored,
                "Ignored: anyone who fits your other wishes",
            ),
        ] {
            ui.radio_value(&mut mode, choice, words);
        }
        if mode != app.find_mode {
            actions.push(Action::SetFindMode(mode));
        }
        ui.add_space(16.0);
        let find = egui::Button::new(RichText::new("  Find  ").size(20.0));
        if ui.add(find).clicked() {
            actions.push(Action::Find);
        }
    });
}

fn waiting(
    ui: &mut egui::Ui,
    since: time::OffsetDateTime,
    criteria: Option<&CriteriaInForce>,
    actions: &mut Vec<Action>,
) {
    ui.vertical_centered(|ui| {
        ui.add_space((ui.available_height() * 0.15).min(100.0));
        ui.spinner();
        ui.heading("Looking for someone…");
        ui.label(RichText::new(format!("Waiting {}", waited(since))).size(18.0));
        ui.add_space(12.0);
        if let Some(criteria) = criteria {
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.set_max_width(420.0);
                ui.label(RichText::new("Looking for, right now").strong());
                egui::Grid::new("criteria").num_columns(2).show(ui, |ui| {
                    let genders: Vec<&str> =
                        criteria.genders.iter().map(|g| gender_word(*g)).collect();
                    ui.label("Gender");
                    ui.label(if genders.is_empty() || genders.len() == 3 {
                        "anyone".to_owned()
                    } else {
                        genders.join(", ")
                    });
                    ui.end_row();
                    ui.label("Age");
                    ui.label(format!("{}–{}", criteria.min_age, criteria.max_age));
                    ui.end_row();
                    ui.label("Interests");
                    ui.label(if criteria.interests.is_empty() {
                        "none".to_owned()
                    } else {
                        criteria.interests.join(", ")
                    });
                    ui.end_row();
                    ui.label("Matching");
                    ui.label(mode_words(criteria.interest_mode));
                    ui.end_row();
                });
                ui.label(
                    RichText::new(
                        "The age range may widen while you wait, as your preferences allow.",
                    )
                    .weak()
                    .small(),
                );
            });
        }
        ui.add_space(12.0);
        if ui.button("Cancel").clicked() {
            actions.push(Action::CancelFind);
        }
    });
}

fn mark_words(mark: &Mark) -> (String, Option<Color32>) {
    match mark {
        Mark::Queued => (
            "queued: goes out when the connection is back".to_owned(),
            Some(Color32::from_rgb(200, 140, 20)),
        ),
        Mark::Sending => ("sending…".to_owned(), None),
        Mark::Sent => ("sent".to_owned(), None),
        Mark::Delivered => ("delivered".to_owned(), None),
        Mark::Read => ("read".to_owned(), Some(Color32::from_rgb(90, 170, 255))),
        Mark::Failed(reason) => (
            format!("not sent: {reason}"),
            Some(Color32::from_rgb(210, 60, 60)),
        ),
    }
}

fn chat_view(
    ui: &mut egui::Ui,
    chat: &mut ChatView,
    online: bool,
    focused: bool,
    actions: &mut Vec<Action>,
) {
    let partner = chat.partner.clone();
    // Header: who, shared interests, online state, and the chat's buttons.
    ui.horizontal(|ui| {
        let (dot, state) = match chat.partner_online {
            _ if chat.ended.is_some() => (Color32::GRAY, "left"),
            Some(true) => (Color32::from_rgb(40, 160, 70), "online"),
            Some(false) => (Color32::GRAY, "offline"),
            None => (Color32::GRAY, ""),
        };
        super::dot(ui, dot);
        ui.heading(&partner.display_name);
        ui.label(format!("{}, {}", partner.age, gender_word(partner.gender)));
        if !state.is_empty() {
            ui.label(RichText::new(state).color(dot));
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            let active = chat.ended.is_none();
            if ui
                .add_enabled(active, egui::Button::new("Report…"))
                .clicked()
            {
                actions.push(Action::AskReport);
            }
            if ui
                .add_enabled(active, egui::Button::new("Block…"))
                .clicked()
            {
                actions.push(Action::AskBlock);
            }
            if ui
                .add_enabled(active, egui::Button::new("Next ⏭"))
                .on_hover_text("Leave this chat and find someone new")
                .clicked()
            {
                actions.push(Action::AskNext);
            }
        });
    });
    ui.horizontal_wrapped(|ui| {
        if chat.shared_interests.is_empty() {
            ui.label(RichText::new("No shared interests — say hi anyway!").weak());
        } else {
            ui.label(RichText::new("You both like:").weak());
            for interest in &chat.shared_interests {
                egui::Frame::new()
                    .fill(ui.visuals().selection.bg_fill.gamma_multiply(0.4))
                    .corner_radius(8.0)
                    .inner_margin(egui::Margin::symmetric(6, 2))
                    .show(ui, |ui| ui.label(interest));
            }
        }
    });
    ui.separator();

    // The composer (and the end-of-chat notice) sit at the bottom; messages fill the rest.
    let composer_height = if chat.ended.is_some() { 70.0 } else { 96.0 };
    let messages_height = (ui.available_height() - composer_height).max(80.0);
    let mut seen_up_to = 0;
    egui::ScrollArea::vertical()
        .id_salt("messages")
        .max_height(messages_height)
        .auto_shrink([false, false])
        .stick_to_bottom(true)
        .show(ui, |ui| {
            if chat.lines.is_empty() {
                ui.add_space(20.0);
                ui.vertical_centered(|ui| {
                    ui.label(
                        RichText::new(format!(
                            "You are now chatting with {}. Say hello!",
                            partner.display_name
                        ))
                        .weak(),
                    );
                });
            }
            for line in &chat.lines {
                let mark = chat.mark(line, online);
                let response = bubble(ui, line.mine, &line.text, line.at, mark.as_ref());
                if !line.mine
                    && let Some(seq) = line.seq
                    && ui.is_rect_visible(response.rect)
                {
                    seen_up_to = seen_up_to.max(seq);
                }
            }
            if chat.partner_typing() {
                ui.label(
                    RichText::new(format!("{} is typing…", partner.display_name))
                        .italics()
                        .weak(),
                );
            }
        });
    if focused && seen_up_to > 0 {
        actions.push(Action::Seen {
            chat_id: chat.chat_id,
            seq: seen_up_to,
        });
    }
    ui.separator();

    match chat.ended {
        Some(ended) => {
            let text = match ended {
                Ended::ByPartner => format!("{} left the chat.", partner.display_name),
                Ended::ByMe => "You left this chat.".to_owned(),
            };
            ui.horizontal(|ui| {
                ui.label(RichText::new(text).strong().size(16.0));
                if ui.button("Find someone new").clicked() {
                    actions.push(Action::CloseChat);
                    actions.push(Action::Find);
                }
                if ui.button("Close").clicked() {
                    actions.push(Action::CloseChat);
                }
            });
        }
        None => composer(ui, chat, online, actions),
    }
}

fn composer(ui: &mut egui::Ui, chat: &mut ChatView, online: bool, actions: &mut Vec<Action>) {
    let id = egui::Id::new(("composer", chat.chat_id));
    // Enter sends; Shift+Enter is left to the text field, which starts a new line.
    let has_focus = ui.memory(|m| m.has_focus(id));
    let send_key =
        has_focus && ui.input_mut(|i| i.consume_key(egui::Modifiers::NONE, egui::Key::Enter));
    ui.horizontal(|ui| {
        let edit = egui::TextEdit::multiline(&mut chat.draft)
            .id(id)
            .desired_rows(2)
            .desired_width(ui.available_width() - 80.0)
            .hint_text("Write a message — Enter sends, Shift+Enter starts a new line");
        let response = ui.add(edit);
        if ui.memory(|m| m.focused().is_none()) {
            response.request_focus();
        }
        if response.changed() {
            actions.push(Action::DraftEdited);
        }
        let send = ui.add_sized([70.0, 36.0], egui::Button::new("Send"));
        if send.clicked() || send_key {
            actions.push(Action::Send);
            response.request_focus();
        }
    });
    let unsent = chat.unsent();
    if !online && unsent > 0 {
        ui.label(
            RichText::new(format!(
                "{unsent} message(s) waiting to be sent; they go out when the connection is back."
            ))
            .color(Color32::from_rgb(200, 140, 20)),
        );
    }
}

fn bubble(
    ui: &mut egui::Ui,
    mine: bool,
    text: &str,
    at: Option<time::OffsetDateTime>,
    mark: Option<&Mark>,
) -> egui::Response {
    // Mine on the right, the partner's on the left; each bubble as wide as its text.
    let layout = if mine {
        egui::Layout::top_down(egui::Align::Max)
    } else {
        egui::Layout::top_down(egui::Align::Min)
    };
    let dark = ui.visuals().dark_mode;
    let fill = match (mine, dark) {
        (true, true) => Color32::from_rgb(20, 70, 105),
        (true, false) => Color32::from_rgb(200, 225, 250),
        (false, true) => Color32::from_gray(55),
        (false, false) => Color32::from_gray(232),
    };
    let max_width = ui.available_width() * 0.7;
    ui.with_layout(layout, |ui| {
        egui::Frame::new()
            .fill(fill)
            .corner_radius(10.0)
            .inner_margin(egui::Margin::symmetric(10, 6))
            .show(ui, |ui| {
                ui.set_max_width(max_width);
                ui.label(RichText::new(text).size(15.0));
                let mut footer = at.map(clock).unwrap_or_default();
                let mut color = None;
                if let Some(mark) = mark {
                    let (words, mark_color) = mark_words(mark);
                    if !footer.is_empty() {
                        footer.push_str(" · ");
                    }
                    footer.push_str(&words);
                    color = mark_color;
                }
                let mut footer = RichText::new(footer).small();
                footer = match color {
                    Some(color) => footer.color(color),
                    None => footer.weak(),
                };
                ui.label(footer);
            })
            .response
    })
    .inner
}

/// A time of day in the local time zone (as found at start-up).
fn clock(at: time::OffsetDateTime) -> String {
    let local = at.to_offset(super::local_offset());
    format!("{:02}:{:02}", local.hour(), local.minute())
}
