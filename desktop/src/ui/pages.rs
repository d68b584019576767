//! The history, profile and sessions tabs.

use client_sdk::api::matching::InterestMode;
use eframe::egui::{self, RichText};

use super::account::{gender_choice, gender_word};
use super::field_row;
use crate::model::{Action, App, Mark, history_mark};

/// Past chats, newest first, paged as the list scrolls; a chosen chat read-only.
pub fn history(ui: &mut egui::Ui, app: &mut App, actions: &mut Vec<Action>) {
    let me = app.me.as_ref().map(|p| p.id);
    let history = &app.history;
    if let Some(error) = &history.error {
        ui.colored_label(ui.visuals().error_fg_color, error.as_str());
    }
    ui.columns(2, |columns| {
        let ui = &mut columns[0];
        ui.heading("Past chats");
        egui::ScrollArea::vertical()
            .id_salt("chat_list")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                if history.chats.is_empty() && !history.loading {
                    ui.label(RichText::new("No chats yet.").weak());
                }
                for chat in &history.chats {
                    let selected = history
                        .open
                        .as_ref()
                        .is_some_and(|o| o.summary.id == chat.id);
                    let when = chat.created_at.date();
                    let status = if chat.ended_at.is_some() {
                        ""
                    } else {
                        " · ongoing"
                    };
                    let last = chat
                        .last_message
                        .as_ref()
                        .map(|m| m.message.text.lines().next().unwrap_or_default().to_owned())
                        .unwrap_or_else(|| "(no messages)".to_owned());
                    let text = format!(
                        "{} — {}{}\n{}",
                        chat.partner.display_name,
                        crate::model::format_date(when),
                        status,
                        truncate(&last, 48)
                    );
                    if ui.selectable_label(selected, text).clicked() {
                        actions.push(Action::OpenHistory(chat.id));
                    }
                }
                if history.loading {
                    ui.spinner();
                } else if !history.complete {
                    // Reaching the end of the list loads the next page.
                    let marker = ui.label(RichText::new("Loading more…").weak());
                    if ui.is_rect_visible(marker.rect) {
                        actions.push(Action::LoadMoreChats);
                    }
                }
            });

        let ui = &mut columns[1];
        let Some(open) = &history.open else {
            ui.label(RichText::new("Choose a chat to read it.").weak());
            return;
        };
        ui.horizontal(|ui| {
            ui.heading(&open.summary.partner.display_name);
            if ui.button("Close").clicked() {
                actions.push(Action::CloseHistory);
            }
        });
        egui::ScrollArea::vertical()
            .id_salt(("history", open.summary.id))
            .auto_shrink([false, false])
            .stick_to_bottom(true)
            .show(ui, |ui| {
                if open.loading {
                    ui.spinner();
                } else if open.has_more {
                    let marker = ui.label(RichText::new("Loading earlier messages…").weak());
                    if ui.is_rect_visible(marker.rect) {
                        actions.push(Action::LoadOlderMessages);
                    }
                }
                for view in &open.messages {
                    let mine = Some(view.message.sender_id) == me;
                    let who = if mine {
                        "You"
                    } else {
                        open.summary.partner.display_name.as_str()
                    };
                    let mark = if mine {
                        match history_mark(view) {
                            Mark::Read => " · read",
                            Mark::Delivered => " · delivered",
                            _ => " · sent",
                        }
                    } else {
                        ""
                    };
                    ui.label(RichText::new(format!("{who}{mark}")).small().weak());
                    ui.label(&view.message.text);
                    ui.add_space(4.0);
                }
                if open.summary.ended_at.is_some() {
                    ui.label(RichText::new("The chat ended.").italics().weak());
                }
            });
    });
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// Profile, saved preferences and password.
pub fn profile(ui: &mut egui::Ui, app: &mut App, actions: &mut Vec<Action>) {
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            if let Some(form) = app.profile.as_mut() {
                ui.heading("Profile");
                egui::Grid::new("profile")
                    .num_columns(2)
                    .spacing([12.0, 8.0])
                    .show(ui, |ui| {
                        field_row(ui, "Display name", form.errors.get("display_name"), |ui| {
                            ui.text_edit_singleline(&mut form.display_name);
                        });
                        field_row(ui, "Gender", form.errors.get("gender"), |ui| {
                            gender_choice(ui, &mut form.gender)
                        });
                        field_row(ui, "Birth date", form.errors.get("birth_date"), |ui| {
                            ui.add(
                                egui::TextEdit::singleline(&mut form.birth_date)
                                    .hint_text("YYYY-MM-DD"),
                            );
                        });
                        field_row(ui, "Interests", form.errors.get("interests"), |ui| {
                            ui.add(
                                egui::TextEdit::singleline(&mut form.interests)
                                    .hint_text("chess, music"),
                            );
                        });
                    });
                ui.horizontal(|ui| {
                    if ui
                        .add_enabled(!form.busy, egui::Button::new("Save profile"))
                        .clicked()
                    {
                        actions.push(Action::SaveProfile);
                    }
                    if let Some(note) = &form.note {
                        ui.label(note);
                    }
                });
                ui.add_space(12.0);
                ui.separator();
            }
            if let Some(form) = app.preferences.as_mut() {
                ui.heading("Whom I want to meet");
                egui::Grid::new("preferences")
                    .num_columns(2)
                    .spacing([12.0, 8.0])
                    .show(ui, |ui| {
                        ui.label("Genders");
                        ui.horizontal(|ui| {
                            ui.checkbox(&mut form.genders[1], "Female");
                            ui.checkbox(&mut form.genders[0], "Male");
                            ui.checkbox(&mut form.genders[2], "Other");
                        });
                        ui.end_row();
                        ui.label("Ages");
                        ui.horizontal(|ui| {
                            ui.add(egui::DragValue::new(&mut form.min_age).range(18..=120));
                            ui.label("to");
                            ui.add(egui::DragValue::new(&mut form.max_age).range(18..=120));
                        });
                        ui.end_row();
                        ui.label("Interests");
                        ui.add(
                            egui::TextEdit::singleline(&mut form.interests)
                                .hint_text("empty: my profile's"),
                        );
                        ui.end_row();
                        ui.label("Interests count");
                        ui.horizontal(|ui| {
                            ui.radio_value(
                                &mut form.interest_mode,
                                InterestMode::Required,
                                "Required",
                            );
                            ui.radio_value(
                                &mut form.interest_mode,
                                InterestMode::Preferred,
                                "Preferred",
                            );
                            ui.radio_value(
                                &mut form.interest_mode,
                                InterestMode::Ignored,
                                "Ignored",
                            );
                        });
                        ui.end_row();
                        ui.label("Widen the ages by up to");
                        ui.horizontal(|ui| {
                            ui.add(egui::DragValue::new(&mut form.age_widen_years).range(0..=100));
                            ui.label("years, one year per");
                            ui.add(
                                egui::DragValue::new(&mut form.widen_every_secs).range(1..=86_400),
                            );
                            ui.label("seconds of waiting");
                        });
                        ui.end_row();
                        ui.label("Drop required interests after");
                        ui.horizontal(|ui| {
                            ui.add(
                                egui::DragValue::new(&mut form.fallback_after_secs)
                                    .range(0..=604_800),
                            );
                            ui.label("seconds (0: never)");
                        });
                        ui.end_row();
                    });
                if let Some(error) = &form.error {
                    ui.colored_label(ui.visuals().error_fg_color, error.as_str());
                }
                ui.horizontal(|ui| {
                    if ui
                        .add_enabled(!form.busy, egui::Button::new("Save preferences"))
                        .clicked()
                    {
                        actions.push(Action::SavePreferences);
                    }
                    if let Some(note) = &form.note {
                        ui.label(note);
                    }
                });
                ui.add_space(12.0);
                ui.separator();
            }
            let form = &mut app.password;
            ui.heading("Password");
            egui::Grid::new("password")
                .num_columns(2)
                .spacing([12.0, 8.0])
                .show(ui, |ui| {
                    ui.label("Current password");
                    ui.add(egui::TextEdit::singleline(&mut form.current).password(true));
                    ui.end_row();
                    ui.label("New password");
                    ui.add(egui::TextEdit::singleline(&mut form.new).password(true));
                    ui.end_row();
                    ui.label("New password again");
                    ui.add(egui::TextEdit::singleline(&mut form.repeat).password(true));
                    ui.end_row();
                });
            if let Some(error) = &form.error {
                ui.colored_label(ui.visuals().error_fg_color, error.as_str());
            }
            ui.horizontal(|ui| {
                if ui
                    .add_enabled(!form.busy, egui::Button::new("Change password"))
                    .clicked()
                {
                    actions.push(Action::ChangePassword);
                }
                if let Some(note) = &form.note {
                    ui.label(note);
                }
            });
            if let Some(me) = &app.me {
                ui.add_space(12.0);
                ui.label(
                    RichText::new(format!(
                        "Signed in as {} ({}, {}).",
                        me.username,
                        me.age,
                        gender_word(me.gender)
                    ))
                    .weak(),
                );
            }
        });
}

/// My sessions; others can be ended.
pub fn sessions(ui: &mut egui::Ui, app: &mut App, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        ui.heading("Where you are logged in");
        if ui.button("Refresh").clicked() {
            actions.push(Action::RefreshSessions);
        }
    });
    if let Some(error) = &app.sessions_error {
        ui.colored_label(ui.visuals().error_fg_color, error.as_str());
    }
    let Some(sessions) = &app.sessions else {
        ui.spinner();
        return;
    };
    egui::Grid::new("sessions")
        .num_columns(4)
        .striped(true)
        .spacing([16.0, 6.0])
        .show(ui, |ui| {
            ui.label(RichText::new("Logged in").strong());
            ui.label(RichText::new("Last used").strong());
            ui.label(RichText::new("Expires").strong());
            ui.label("");
            ui.end_row();
            for session in sessions {
                ui.label(stamp(session.created_at));
                ui.label(stamp(session.last_used_at));
                ui.label(stamp(session.expires_at));
                if session.current {
                    ui.label(RichText::new("this window").weak());
                } else if ui.button("End").clicked() {
                    actions.push(Action::EndSession(session.id));
                }
                ui.end_row();
            }
        });
}

fn stamp(at: time::OffsetDateTime) -> String {
    format!(
        "{} {:02}:{:02} UTC",
        crate::model::format_date(at.date()),
        at.hour(),
        at.minute()
    )
}
