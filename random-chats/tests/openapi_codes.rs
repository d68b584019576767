//! The OpenAPI documents say which error codes each route answers: every 4xx and 5xx
//! response of every route names its codes (in backticks, in its description), and every
//! code named is one the server has (`ErrorCode`). Generic answers any route may give
//! (`malformed_json`, `body_too_large`, `internal`, ...) are listed in `docs/PROTOCOL.md`
//! section 11, which `wire/tests/error_codes_doc.rs` checks against the enum.

use random_chats::{Platform, PlatformConfig};
use serde_json::Value;
use wire::error::ErrorCode;

/// `(where, status, description)` of every error response in `doc`.
fn error_responses(doc: &Value) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let paths = doc["paths"].as_object().expect("a paths object");
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().expect("operations") {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    found.push((
                        format!("{} {path}", method.to_uppercase()),
                        status.clone(),
                        response["description"].as_str().unwrap_or("").to_owned(),
                    ));
                }
            }
        }
    }
    found
}

/// The snake_case words in backticks: the codes a description names.
fn named_codes(description: &str) -> Vec<&str> {
    description
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .collect()
}

#[tokio::test]
async fn every_error_response_names_codes_the_server_has() {
    let platform = Platform::start(PlatformConfig::in_memory()).await.unwrap();
    let public: Value = reqwest::get(format!("{}/openapi.json", platform.gateway_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    platform.shutdown().await;
    let documents = [
        ("gateway (public)", public),
        (
            "auth-service",
            serde_json::to_value(auth_service::openapi::openapi()).unwrap(),
        ),
        (
            "message-service",
            serde_json::to_value(message_service::openapi::openapi()).unwrap(),
        ),
        (
            "matching-service",
            serde_json::to_value(matching_service::openapi::openapi()).unwrap(),
        ),
        (
            "ws-manager",
            serde_json::to_value(ws_manager::openapi::openapi()).unwrap(),
        ),
        (
            "ws-handler",
            serde_json::to_value(ws_handler::openapi::openapi()).unwrap(),
        ),
    ];
    let mut checked = 0;
    for (service, doc) in &documents {
        for (route, status, description) in error_responses(doc) {
            let codes = named_codes(&description);
            assert!(
                !codes.is_empty(),
                "{service}: {route} {status} names no error code: {description:?}"
            );
            for code in codes {
                assert_ne!(
                    ErrorCode::parse(code),
                    ErrorCode::Unknown,
                    "{service}: {route} {status} names `{code}`, which is no error code"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} error responses found");
}

#[test]
fn only_snake_case_words_in_backticks_count_as_codes() {
    assert_eq!(
        named_codes("`rate_limited`: too many; see `Retry-After`, `x` and `a b`"),
        ["rate_limited", "x"]
    );
    assert!(named_codes("Missing or invalid access token").is_empty());
}
