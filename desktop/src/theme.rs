//! Light or dark: the user's choice, or the system's — from the window system, or on Linux
//! desktops where it says nothing, from the desktop settings portal (`dbus-send`).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use eframe::egui::Theme;

/// How often the portal is asked again, so a change of the system's theme is followed.
const PORTAL_POLL: Duration = Duration::from_secs(5);

/// The theme the user asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ThemeChoice {
    /// Follow the system's light or dark setting (dark when the system does not say).
    #[default]
    System,
    /// Always light.
    Light,
    /// Always dark.
    Dark,
}

impl ThemeChoice {
    /// The theme to show, given what the window system and the portal report.
    pub fn resolve(self, window_system: Option<Theme>, portal: Option<Theme>) -> Option<Theme> {
        match self {
            ThemeChoice::Light => Some(Theme::Light),
            ThemeChoice::Dark => Some(Theme::Dark),
            ThemeChoice::System => window_system.or(portal),
        }
    }
}

/// What the desktop settings portal last said, kept current by a background thread that
/// ends when this is dropped (or at once when the portal cannot be asked).
#[derive(Debug)]
pub struct PortalTheme {
    latest: Arc<AtomicU8>,
}

const UNKNOWN: u8 = 0;
const DARK: u8 = 1;
const LIGHT: u8 = 2;

impl PortalTheme {
    /// Starts asking the portal; `changed` is called when its answer changes.
    pub fn watch(changed: impl Fn() + Send + 'static) -> Self {
        let latest = Arc::new(AtomicU8::new(UNKNOWN));
        let weak: Weak<AtomicU8> = Arc::downgrade(&latest);
        let spawned = std::thread::Builder::new()
            .name("theme-portal".to_owned())
            .spawn(move || {
                loop {
                    let answer = match ask_portal() {
                        Asked::Unavailable => return,
                        Asked::Answered(answer) => answer,
                    };
                    let Some(latest) = weak.upgrade() else {
                        return;
                    };
                    let code = match answer {
                        Some(Theme::Dark) => DARK,
                        Some(Theme::Light) => LIGHT,
                        None => UNKNOWN,
                    };
                    if latest.swap(code, Ordering::Relaxed) != code {
                        changed();
                    }
                    drop(latest);
                    std::thread::sleep(PORTAL_POLL);
                }
            });
        if let Err(err) = spawned {
            tracing::debug!(error = %err, "the theme portal is not watched");
        }
        Self { latest }
    }

    /// The portal's answer, if it gave one.
    pub fn current(&self) -> Option<Theme> {
        match self.latest.load(Ordering::Relaxed) {
            DARK => Some(Theme::Dark),
            LIGHT => Some(Theme::Light),
            _ => None,
        }
    }
}

/// What asking the portal once gave.
enum Asked {
    /// It cannot be asked at all (not Linux, no session bus, no `dbus-send`): stop asking.
    Unavailable,
    /// Its preference; `None` when it has none or could not answer this time.
    Answered(Option<Theme>),
}

/// Asks the portal once.
fn ask_portal() -> Asked {
    if !cfg!(target_os = "linux") || std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        return Asked::Unavailable;
    }
    let output = Command::new("dbus-send")
        .args([
            "--session",
            "--print-reply=literal",
            "--reply-timeout=1000",
            "--dest=org.freedesktop.portal.Desktop",
            "/org/freedesktop/portal/desktop",
            "org.freedesktop.portal.Settings.Read",
            "string:org.freedesktop.appearance",
            "string:color-scheme",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match output {
        Err(_) => Asked::Unavailable,
        Ok(output) if !output.status.success() => Asked::Answered(None),
        Ok(output) => Asked::Answered(parse_color_scheme(&String::from_utf8_lossy(&output.stdout))),
    }
}

/// Reads the portal's `color-scheme` reply: `uint32 1` prefers dark, `uint32 2` prefers
/// light, `uint32 0` has no preference.
pub fn parse_color_scheme(reply: &str) -> Option<Theme> {
    let mut words = reply.split_whitespace();
    while let Some(word) = words.next() {
        if word == "uint32" {
            return match words.next()? {
                "1" => Some(Theme::Dark),
                "2" => Some(Theme::Light),
                _ => None,
            };
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_portal_reply_names_the_preference() {
        assert_eq!(
            parse_color_scheme("   variant       variant          uint32 1\n"),
            Some(Theme::Dark)
        );
        assert_eq!(
            parse_color_scheme("variant variant uint32 2"),
            Some(Theme::Light)
        );
        assert_eq!(parse_color_scheme("variant variant uint32 0"), None);
        assert_eq!(parse_color_scheme(""), None);
        assert_eq!(parse_color_scheme("uint32"), None);
    }

    #[test]
    fn a_choice_wins_over_the_system_and_the_window_system_over_the_portal() {
        assert_eq!(
            ThemeChoice::Light.resolve(Some(Theme::Dark), Some(Theme::Dark)),
            Some(Theme::Light)
        );
        assert_eq!(
            ThemeChoice::Dark.resolve(None, Some(Theme::Light)),
            Some(Theme::Dark)
        );
        assert_eq!(
            ThemeChoice::System.resolve(Some(Theme::Light), Some(Theme::Dark)),
            Some(Theme::Light)
        );
        assert_eq!(
            ThemeChoice::System.resolve(None, Some(Theme::Light)),
            Some(Theme::Light)
        );
        assert_eq!(ThemeChoice::System.resolve(None, None), None);
    }
}
