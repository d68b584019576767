//! Password hashing: argon2id with the OWASP parameters (m = 19 MiB, t = 2, p = 1) on
//! blocking threads, at most `concurrency` at a time so that a burst of log ins queues
//! instead of exhausting memory and the blocking pool, and at most `max_waiting` queued
//! behind them: past that the request is shed at once with 503 `overloaded` rather than
//! making everyone's log in slow.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::error::AuthError;

/// Memory cost in KiB (19 MiB).
pub const M_COST_KIB: u32 = 19 * 1024;
/// Iterations.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;

/// The argon2id instance with the parameters above.
pub fn argon2id() -> Argon2<'static> {
    let params =
        Params::new(M_COST_KIB, T_COST, P_COST, None).expect("the OWASP parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes and verifies passwords with bounded concurrency. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    /// A hash of a random password, verified against when the user is unknown so that
    /// the answer takes as long as for a wrong password.
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("available_permits", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher running at most `concurrency` (at least 1) hashes at once with at most
    /// `max_waiting` more queued. Computes the dummy hash, so it takes as long as one hash.
    pub fn new(concurrency: usize, max_waiting: usize) -> Self {
        let mut random = [0u8; 32];
        rand::fill(&mut random);
        let dummy = hash_blocking(&random).expect("hashing random bytes cannot fail");
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
            dummy_hash: dummy.into(),
        }
    }

    /// The argon2id PHC string of `password` (random salt).
    pub async fn hash(&self, password: SecretString) -> Result<String, AuthError> {
        self.run(move || hash_blocking(password.expose_secret().as_bytes()))
            .await?
    }

    /// Whether `password` matches `stored`; with `None` (unknown user) it verifies against
    /// the dummy hash and answers `false`, taking the same time.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<bool, AuthError> {
        let known = stored.is_some();
        let hash: Arc<str> = match stored {
            Some(hash) => hash.into(),
            None => self.dummy_hash.clone(),
        };
        let matched = self
            .run(move || verify_blocking(password.expose_secret().as_bytes(), &hash))
            .await??;
        Ok(known && matched)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let _permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let queued =
                    WaitingSlot::take(&self.waiting, self.max_waiting).ok_or_else(|| {
                        metrics::counter!("auth_hashes_shed_total").increment(1);
                        AuthError::Overloaded
                    })?;
                // The semaphore is never closed, so acquiring fails only if that changes.
                let permit =
                    self.permits.clone().acquire_owned().await.map_err(|e| {
                        AuthError::Internal(format!("hashing semaphore closed: {e}"))
                    })?;
                drop(queued);
                permit
            }
        };
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AuthError::Internal(format!("hashing task failed: {e}")))
    }
}

/// One place in the hashing queue, given back on drop (also when the request is dropped
/// while waiting).
struct WaitingSlot<'a>(&'a AtomicUsize);

impl<'a> WaitingSlot<'a> {
    fn take(waiting: &'a AtomicUsize, max: usize) -> Option<Self> {
        waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(waiting))
    }
}

impl Drop for WaitingSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn hash_blocking(password: &[u8]) -> Result<String, AuthError> {
    argon2id()
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Internal(format!("argon2 hashing failed: {e}")))
}

fn verify_blocking(password: &[u8], stored: &str) -> Result<bool, AuthError> {
    match argon2id().verify_password(password, stored) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(AuthError::Internal(format!(
            "stored password hash unusable: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[tokio::test]
    async fn a_hashed_password_verifies_and_another_does_not() {
        let hasher = PasswordHasher::new(2, 16);
        let hash = hasher.hash(secret("correct horse")).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            hasher
                .verify(secret("correct horse"), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(secret("wrong horse"), Some(hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let hasher = PasswordHasher::new(1, 16);
        assert!(!hasher.verify(secret("anything"), None).await.unwrap());
    }

    #[tokio::test]
    async fn past_the_queue_bound_hashing_is_shed_at_once_and_the_queue_still_drains() {
        let hasher = PasswordHasher::new(1, 2);
        let busy = hasher.permits.clone().try_acquire_owned().unwrap();
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(secret("queued")).await })
            })
            .collect();
        while hasher.waiting.load(Ordering::Acquire) < 2 {
            tokio::task::yield_now().await;
        }

        let shed = hasher.hash(secret("one too many")).await.unwrap_err();
        assert!(matches!(shed, AuthError::Overloaded), "{shed}");

        drop(busy);
        for task in queued {
            assert!(task.await.unwrap().is_ok());
        }
        assert_eq!(hasher.waiting.load(Ordering::Acquire), 0);
    }
}
