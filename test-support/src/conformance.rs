//! The one shape of every store conformance suite.
//!
//! A suite is a module of `pub async fn case(fixture: &Fixture)` functions (compiled only
//! into the test binary), a fixture type per crate holding the store under test (and a
//! [`crate::Cleanup`]), and one async factory per backend returning `Option<Fixture>`
//! (`None`: the backend is absent and the test skips, saying why). The fixture derefs to
//! what the cases take (`dyn Store`), and its clean-up runs when it is dropped, also after a
//! panic. [`conformance!`] then writes one `#[tokio::test]` per case and backend, so that a
//! failure names both:
//!
//! ```ignore
//! mod cases; // pub async fn registering_counts(f: &Fixture) { .. } ...
//!
//! test_support::conformance! {
//!     cases: cases,
//!     backends: { memory => memory_fixture(), redis => redis_fixture() },
//!     tests: [registering_counts, deregistering_removes_one],
//! }
//! // → memory::registering_counts, redis::registering_counts, ...
//! ```

/// One `#[tokio::test]` per case and backend; see the [module docs](self).
#[macro_export]
macro_rules! conformance {
    (
        cases: $cases:ident,
        backends: { $($backend:ident => $factory:expr),+ $(,)? },
        tests: $tests:tt $(,)?
    ) => {
        $(
            mod $backend {
                #[allow(unused_imports)]
                use super::*;
                $crate::__conformance_backend!($cases, $factory, $tests);
            }
        )+
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_backend {
    ($cases:ident, $factory:expr, [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture) = $factory.await else {
                    return;
                };
                super::$cases::$case(&*fixture).await;
            }
        )*
    };
}
