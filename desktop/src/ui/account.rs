//! The log-in and sign-up screens.

use client_sdk::Gender;
use eframe::egui::{self, RichText};

use super::field_row;
use crate::model::{Action, App};

fn card(ui: &mut egui::Ui, add: impl FnOnce(&mut egui::Ui)) {
    ui.vertical_centered(|ui| {
        ui.add_space((ui.available_height() * 0.12).min(80.0));
        ui.set_max_width(440.0);
        egui::Frame::group(ui.style())
            .inner_margin(egui::Margin::same(20))
            .show(ui, |ui| {
                ui.set_width(400.0);
                add(ui);
            });
    });
}

fn enter_pressed(ui: &egui::Ui, response: &egui::Response) -> bool {
    response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter))
}

/// The log-in screen.
pub fn log_in(ui: &mut egui::Ui, app: &mut App, actions: &mut Vec<Action>) {
    card(ui, |ui| {
        ui.heading("Random Chats");
        ui.label("Meet someone new who shares your interests.");
        ui.add_space(12.0);
        let form = &mut app.log_in;
        let mut submit = false;
        egui::Grid::new("log_in")
            .num_columns(2)
            .spacing([12.0, 8.0])
            .show(ui, |ui| {
                ui.label("Server");
                ui.add(egui::TextEdit::singleline(&mut form.server).desired_width(260.0));
                ui.end_row();
                ui.label("User name");
                let name =
                    ui.add(egui::TextEdit::singleline(&mut form.username).desired_width(260.0));
                // The cursor starts in the first empty field people type into.
                if form.username.is_empty() && ui.memory(|m| m.focused().is_none()) {
                    name.request_focus();
                }
                submit |= enter_pressed(ui, &name);
                ui.end_row();
                ui.label("Password");
                let password = ui.add(
                    egui::TextEdit::singleline(&mut form.password)
                        .password(true)
                        .desired_width(260.0),
                );
                submit |= enter_pressed(ui, &password);
                ui.end_row();
            });
        if let Some(error) = &form.error {
            ui.add_space(6.0);
            ui.colored_label(ui.visuals().error_fg_color, error.as_str());
        }
        ui.add_space(10.0);
        ui.horizontal(|ui| {
            let button = ui.add_enabled(!form.busy, egui::Button::new("Log in"));
            if button.clicked() || (submit && !form.busy) {
                actions.push(Action::LogIn);
            }
            if form.busy {
                ui.spinner();
            }
        });
        ui.add_space(10.0);
        ui.separator();
        ui.horizontal(|ui| {
            ui.label("New here?");
            if ui.link("Create an account").clicked() {
                actions.push(Action::ShowSignUp);
            }
        });
        if app.notice.as_ref().is_some_and(|n| n.error)
            && ui.link("Try the saved session again").clicked()
        {
            actions.push(Action::RetryRestore);
        }
    });
}

/// The sign-up screen: every field the API takes, each error beside its field.
pub fn sign_up(ui: &mut egui::Ui, app: &mut App, actions: &mut Vec<Action>) {
    let server = app.log_in.server.clone();
    card(ui, |ui| {
        ui.heading("Create an account");
        ui.label(RichText::new(format!("on {server}")).weak());
        ui.add_space(12.0);
        let form = &mut app.sign_up;
        egui::Grid::new("sign_up")
            .num_columns(2)
            .spacing([12.0, 8.0])
            .show(ui, |ui| {
                field_row(ui, "User name", form.errors.get("username"), |ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut form.username)
                            .hint_text("3–32 of a–z, 0–9, _")
                            .desired_width(240.0),
                    );
                });
                field_row(ui, "Password", form.errors.get("password"), |ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut form.password)
                            .password(true)
                            .hint_text("at least 8 characters")
                            .desired_width(240.0),
                    );
                });
                field_row(ui, "Display name", form.errors.get("display_name"), |ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut form.display_name)
                            .hint_text("what others see")
                            .desired_width(240.0),
                    );
                });
                field_row(ui, "Gender", form.errors.get("gender"), |ui| {
                    gender_choice(ui, &mut form.gender);
                });
                field_row(ui, "Birth date", form.errors.get("birth_date"), |ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut form.birth_date)
                            .hint_text("YYYY-MM-DD")
                            .desired_width(240.0),
                    );
                });
                field_row(ui, "Interests", form.errors.get("interests"), |ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut form.interests)
                            .hint_text("chess, music, hiking")
                            .desired_width(240.0),
                    );
                });
            });
        if let Some(error) = &form.error {
            ui.add_space(6.0);
            ui.colored_label(ui.visuals().error_fg_color, error.as_str());
        }
        ui.add_space(10.0);
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!form.busy, egui::Button::new("Create account"))
                .clicked()
            {
                actions.push(Action::SignUp);
            }
            if form.busy {
                ui.spinner();
            }
            if ui.link("I have an account").clicked() {
                actions.push(Action::ShowLogIn);
            }
        });
    });
}

/// Radio buttons for a gender.
pub(crate) fn gender_choice(ui: &mut egui::Ui, gender: &mut Gender) {
    ui.horizontal(|ui| {
        ui.radio_value(gender, Gender::Female, "Female");
        ui.radio_value(gender, Gender::Male, "Male");
        ui.radio_value(gender, Gender::Other, "Other");
    });
}

/// A gender in words.
pub(crate) fn gender_word(gender: Gender) -> &'static str {
    match gender {
        Gender::Female => "female",
        Gender::Male => "male",
        Gender::Other => "other",
    }
}
