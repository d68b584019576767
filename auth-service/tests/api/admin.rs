//! Moderation: operators ban and unban accounts; a ban ends every session at once and
//! refuses log ins; every action is in the audit log; only operators may do any of it.

use axum::http::{Method, StatusCode};
use serde_json::json;

use auth_service::AuthConfig;

use crate::helpers::{PASSWORD, TestApp, username};

async fn app_with_operator() -> (TestApp, String) {
    let operator = username("op");
    let app = TestApp::with_config(AuthConfig {
        admins: vec![operator.to_lowercase()],
        ..AuthConfig::default()
    })
    .await;
    (app, operator)
}

#[tokio::test]
async fn a_ban_ends_every_session_refuses_log_ins_and_is_audited_until_lifted() {
    let (app, operator) = app_with_operator().await;
    let admin = app.signup_user(&operator).await;
    let name = username("troll");
    let victim = app.signup_user(&name).await;
    let other_device = app.login_tokens(&name, PASSWORD).await;
    let ban_path = format!("/v1/admin/users/{}/ban", victim.user_id);

    app.send(
        Method::POST,
        &ban_path,
        Some(&admin.access),
        Some(json!({"reason": "spam in every chat"})),
        &[],
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);

    // Every session ended at once: access tokens refused, refresh tokens dead.
    for tokens in [&victim, &other_device] {
        app.me(&tokens.access)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "session_ended");
        app.refresh(&tokens.refresh)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    }
    // Log in is refused (said only with the right password).
    app.login(&name, PASSWORD)
        .await
        .assert_error(StatusCode::FORBIDDEN, "account_banned");
    app.login(&name, "not the password")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    // The matcher cannot queue the account.
    let credential = app.credential.expose().to_owned();
    app.internal_user(&victim.user_id, Some(&credential))
        .await
        .assert_error(StatusCode::FORBIDDEN, "account_banned");

    app.send(Method::DELETE, &ban_path, Some(&admin.access), None, &[])
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.login_tokens(&name, PASSWORD).await;

    let audit = app
        .send(
            Method::GET,
            "/v1/admin/audit",
            Some(&admin.access),
            None,
            &[],
        )
        .await;
    audit.assert_status(StatusCode::OK);
    let entries = audit.body.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{}", audit.body);
    assert_eq!(entries[0]["action"], "unban", "newest first");
    assert_eq!(entries[1]["action"], "ban");
    assert_eq!(entries[1]["detail"], "spam in every chat");
    for entry in entries {
        assert_eq!(entry["operator_id"], admin.user_id.as_str());
        assert_eq!(entry["target_id"], victim.user_id.as_str());
    }
}

#[tokio::test]
async fn only_operators_may_moderate_and_bad_requests_are_refused() {
    let (app, operator) = app_with_operator().await;
    let admin = app.signup_user(&operator).await;
    let user = app.signup_user(&username("plain")).await;
    let target = format!("/v1/admin/users/{}/ban", admin.user_id);

    let refused = app
        .send(
            Method::POST,
            &target,
            Some(&user.access),
            Some(json!({"reason": "x"})),
            &[],
        )
        .await;
    refused.assert_error(StatusCode::FORBIDDEN, "admin_required");
    app.send(
        Method::GET,
        "/v1/admin/audit",
        Some(&user.access),
        None,
        &[],
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "admin_required");
    app.send(Method::GET, "/v1/admin/audit", None, None, &[])
        .await
        .assert_status(StatusCode::UNAUTHORIZED);

    let unknown = format!("/v1/admin/users/{}/ban", uuid::Uuid::new_v4());
    app.send(
        Method::POST,
        &unknown,
        Some(&admin.access),
        Some(json!({"reason": "x"})),
        &[],
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
    let victim = format!("/v1/admin/users/{}/ban", user.user_id);
    app.send(
        Method::POST,
        &victim,
        Some(&admin.access),
        Some(json!({"reason": "  "})),
        &[],
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "reason_invalid");
    // Nothing was done, so nothing is in the log, and the user is not banned.
    let audit = app
        .send(
            Method::GET,
            "/v1/admin/audit",
            Some(&admin.access),
            None,
            &[],
        )
        .await;
    assert_eq!(audit.body, json!([]));
    app.me(&user.access).await.assert_status(StatusCode::OK);
}
