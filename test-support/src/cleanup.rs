//! [`Cleanup`]: removes what a test created on a real backend when it is dropped — also
//! when the test panicked, since unwinding drops it too.

use std::future::Future;
use std::pin::Pin;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs an async clean-up job when dropped, on a runtime of its own (the test's runtime
/// may be shutting down). The job must open its own connections: clients bound to the
/// test's runtime may be unusable by then.
#[must_use = "the clean-up runs when this guard is dropped"]
pub struct Cleanup {
    job: Option<Job>,
}

impl std::fmt::Debug for Cleanup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cleanup")
            .field("pending", &self.job.is_some())
            .finish()
    }
}

impl Cleanup {
    /// A guard running `job` on drop.
    pub fn new(job: impl Future<Output = ()> + Send + 'static) -> Self {
        Self {
            job: Some(Box::pin(job)),
        }
    }

    /// A guard with nothing to do (embedded backends that vanish by themselves).
    pub fn none() -> Self {
        Self { job: None }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(job) = self.job.take() else { return };
        let done = std::thread::spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(async {
                    if tokio::time::timeout(std::time::Duration::from_secs(30), job)
                        .await
                        .is_err()
                    {
                        eprintln!("test clean-up did not finish within 30 s");
                    }
                }),
                Err(err) => eprintln!("cannot start a runtime for test clean-up: {err}"),
            }
        })
        .join();
        if done.is_err() {
            eprintln!("test clean-up panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn the_job_runs_when_the_guard_is_dropped() {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        drop(Cleanup::new(
            async move { flag.store(true, Ordering::SeqCst) },
        ));
        assert!(ran.load(Ordering::SeqCst));
    }

    #[test]
    fn the_job_runs_when_a_test_panics() {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let outcome = std::panic::catch_unwind(move || {
            let _guard = Cleanup::new(async move { flag.store(true, Ordering::SeqCst) });
            panic!("a failing case");
        });
        assert!(outcome.is_err());
        assert!(ran.load(Ordering::SeqCst));
    }
}
