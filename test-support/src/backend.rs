//! Real backends for tests: a URL by environment variable, or a printed reason to skip.

/// Environment variable that turns a missing backend into a test failure.
pub const REQUIRE_BACKENDS: &str = "RC_REQUIRE_BACKENDS";

/// The URL in `var`, or `None` after printing why the calling test skips.
///
/// # Panics
/// When `var` is unset and `RC_REQUIRE_BACKENDS=1`.
pub fn backend_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if backends_required() {
                panic!("{var} is not set but {REQUIRE_BACKENDS}=1: the backend is required");
            }
            eprintln!("skipping: {var} is not set, so this real-backend test cannot run");
            None
        }
    }
}

/// Whether missing backends must fail tests.
pub fn backends_required() -> bool {
    std::env::var(REQUIRE_BACKENDS).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// A short random name for a per-test database, keyspace prefix or table.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}
