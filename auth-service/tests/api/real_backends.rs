//! The account flow on the real backends: users in PostgreSQL, sessions in DynamoDB.

use axum::http::StatusCode;
use test_support::backend_url;

use crate::helpers::{PASSWORD, TestApp, username};

#[tokio::test]
async fn the_account_flow_works_on_postgres_and_dynamodb() {
    let (Some(pg), Some(dynamo)) = (backend_url("POSTGRES_URL"), backend_url("DYNAMODB_URL"))
    else {
        return;
    };
    let app = TestApp::on_real_backends(&pg, &dynamo).await;
    let name = username("real");
    let signup = app.signup_user(&name).await;
    app.signup(TestApp::signup_body(&name.to_uppercase()))
        .await
        .assert_status(StatusCode::CONFLICT);
    let other = app.login_tokens(&name, PASSWORD).await;
    let rotated = app.refresh_tokens(&signup.refresh).await;
    // A retry with the replaced token gets the same successor (the grace window).
    let retried = app.refresh_tokens(&signup.refresh).await;
    assert_eq!(retried.refresh, rotated.refresh);
    // Concurrent refreshes with one token get one new token between them.
    let (a, b) = tokio::join!(app.refresh(&other.refresh), app.refresh(&other.refresh));
    a.assert_status(StatusCode::OK);
    b.assert_status(StatusCode::OK);
    assert_eq!(a.body["refresh_token"], b.body["refresh_token"]);
    // Two rotations later the first token is reuse: the family ends.
    let next = app.refresh_tokens(&rotated.refresh).await;
    app.refresh(&signup.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh_token_reused");
    app.refresh(&next.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    let fresh = app.login_tokens(&name, PASSWORD).await;
    app.change_password(&fresh.access, PASSWORD, "another good secret")
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.refresh_tokens(&fresh.refresh).await;
    app.readyz().await.assert_status(StatusCode::OK);
    app.cleanup().await;
}
