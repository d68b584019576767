//! Internal endpoints, health, readiness and the OpenAPI document.

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, username};

#[tokio::test]
async fn internal_endpoints_answer_profiles_to_services() {
    let app = TestApp::spawn().await;
    let tokens = app.signup_user(&username("pia")).await;
    let credential = app.credential.expose().to_owned();

    let profile = app
        .internal_profile(&tokens.user_id, Some(&credential))
        .await;
    let user = app.internal_user(&tokens.user_id, Some(&credential)).await;

    profile.assert_status(StatusCode::OK);
    assert_eq!(profile.body["id"], tokens.user_id.as_str());
    assert_eq!(profile.body["display_name"], "Test User");
    assert!(profile.body["age"].as_u64().unwrap() >= 18);
    assert!(
        profile.body.get("username").is_none(),
        "the username is private"
    );
    user.assert_status(StatusCode::OK);
    assert_eq!(user.body["profile"], profile.body);
    assert_eq!(user.body["preferences"]["min_age"], 18);
    let unknown = app
        .internal_profile(&uuid::Uuid::new_v4().to_string(), Some(&credential))
        .await;
    unknown.assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn internal_endpoints_refuse_calls_without_the_service_credential() {
    let app = TestApp::spawn().await;
    let tokens = app.signup_user(&username("quin")).await;

    for credential in [None, Some("wrong credential value")] {
        let profile = app.internal_profile(&tokens.user_id, credential).await;
        let user = app.internal_user(&tokens.user_id, credential).await;
        profile.assert_status(StatusCode::UNAUTHORIZED);
        user.assert_status(StatusCode::UNAUTHORIZED);
        assert_eq!(profile.error_code(), "invalid_service_credential");
    }
    // A user's access token is not a service credential.
    let response = app
        .send(
            axum::http::Method::GET,
            &format!("/internal/users/{}", tokens.user_id),
            Some(&tokens.access),
            None,
            &[],
        )
        .await;
    response.assert_status(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn health_readiness_and_openapi_answer() {
    let app = TestApp::spawn().await;
    app.send(axum::http::Method::GET, "/healthz", None, None, &[])
        .await
        .assert_status(StatusCode::OK);
    let ready = app.readyz().await;
    ready.assert_status(StatusCode::OK);
    assert_eq!(ready.body, json!({"status": "ready"}));
    let doc = app.openapi().await;
    doc.assert_status(StatusCode::OK);
    assert!(doc.body["paths"]["/v1/auth/login"]["post"].is_object());
    let missing = app
        .send(axum::http::Method::GET, "/v1/nothing", None, None, &[])
        .await;
    missing.assert_status(StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "not_found");
}
