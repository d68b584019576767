//! Ties the model to the worker: actions and updates go through [`App`], commands to the worker.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::bridge::Update;
use crate::config::Store;
use crate::model::{Action, App};
use crate::worker::{Wake, Worker};

/// A wait that ran out of time.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {timeout:?} waiting for {what}; the state was: {state}")]
pub struct TimedOut {
    /// What was awaited.
    pub what: String,
    /// How long.
    pub timeout: Duration,
    /// The model at the end, for the failure message.
    pub state: String,
}

/// The model plus the worker that serves it.
#[derive(Debug)]
pub struct Controller {
    app: App,
    worker: Worker,
    updates: Receiver<Update>,
}

impl Controller {
    /// Starts the worker and looks for a remembered session in `store`.
    pub fn start(server: &str, store: Store, wake: Wake) -> std::io::Result<Self> {
        let (sender, updates) = std::sync::mpsc::channel();
        let worker = Worker::start(store, sender, wake)?;
        let (app, commands) = App::new(server);
        for command in commands {
            worker.send(command);
        }
        Ok(Self {
            app,
            worker,
            updates,
        })
    }

    /// The state.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The state, for the views' text fields.
    pub fn app_mut(&mut self) -> &mut App {
        &mut self.app
    }

    /// Applies a user action.
    pub fn act(&mut self, action: Action) {
        for command in self.app.act(action) {
            self.worker.send(command);
        }
    }

    fn apply(&mut self, update: Update) {
        for command in self.app.apply(update) {
            self.worker.send(command);
        }
    }

    /// Applies every update that has arrived; never blocks. Returns how many there were.
    pub fn poll(&mut self) -> usize {
        let mut count = 0;
        while let Ok(update) = self.updates.try_recv() {
            self.apply(update);
            count += 1;
        }
        count
    }

    /// Applies updates (and ticks) until `done` holds, for at most `timeout`. This blocks, so
    /// it is for tests and scripts, never for the window.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&App) -> bool,
    ) -> Result<(), TimedOut> {
        let deadline = Instant::now() + timeout;
        loop {
            self.act(Action::Tick);
            if done(&self.app) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TimedOut {
                    what: what.to_owned(),
                    timeout,
                    state: format!(
                        "screen {:?}, link {:?}, queue {:?}, chat {:?}, notice {:?}",
                        self.app.screen,
                        self.app.link,
                        self.app.queue,
                        self.app.chat,
                        self.app.notice
                    ),
                });
            }
            match self
                .updates
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(update) => self.apply(update),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(TimedOut {
                        what: format!("{what} (the worker stopped)"),
                        timeout,
                        state: String::new(),
                    });
                }
            }
        }
    }
}
