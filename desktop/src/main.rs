//! `random-chats-desktop`: the Random Chats desktop client.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use desktop::Controller;
use desktop::config::{CONFIG_DIR_ENV, DEFAULT_SERVER, Store};
use desktop::theme::ThemeChoice;
use desktop::ui::DesktopApp;
use eframe::egui;

/// The Random Chats desktop client.
#[derive(Debug, Parser)]
#[command(version, about, after_help = format!(
    "The session is remembered in the user's configuration directory ({CONFIG_DIR_ENV} overrides it)."
))]
struct Args {
    /// The Random Chats server (its gateway) to log in to; the log-in screen can change it.
    #[arg(long, env = "RC_SERVER_URL", default_value = DEFAULT_SERVER)]
    server: String,
    /// Light or dark; `system` follows the desktop's setting (dark when it says nothing).
    #[arg(long, env = "RC_DESKTOP_THEME", value_enum, default_value_t = ThemeChoice::System)]
    theme: ThemeChoice,
}

fn main() -> anyhow::Result<()> {
    desktop::ui::init_local_offset();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let store = Store::from_env().context("finding the configuration directory")?;
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Random Chats")
            .with_app_id("random-chats-desktop")
            .with_inner_size([980.0, 700.0])
            .with_min_inner_size([640.0, 480.0]),
        ..eframe::NativeOptions::default()
    };
    eframe::run_native(
        "Random Chats",
        options,
        Box::new(move |creation| {
            let ctx = creation.egui_ctx.clone();
            let wake = Arc::new(move || ctx.request_repaint());
            let controller = Controller::start(&args.server, store, wake)?;
            let ctx = creation.egui_ctx.clone();
            let repaint = move || ctx.request_repaint();
            Ok(Box::new(DesktopApp::new(controller, args.theme, repaint)))
        }),
    )
    .map_err(|err| anyhow::anyhow!("the window could not be opened: {err}"))
}
