//! The caller's profile, preferences, password and sessions.

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, username};

#[tokio::test]
async fn the_profile_can_be_edited_field_by_field() {
    let app = TestApp::spawn().await;
    let tokens = app.signup_user(&username("gil")).await;

    let response = app
        .update_me(
            &tokens.access,
            json!({"display_name": "  Gil  ", "interests": ["Chess"]}),
        )
        .await;

    response.assert_status(StatusCode::OK);
    assert_eq!(response.body["display_name"], "Gil");
    assert_eq!(response.body["interests"], json!(["chess"]));
    assert_eq!(response.body["gender"], "female", "untouched fields stay");
    let updated = app
        .update_me(
            &tokens.access,
            json!({"gender": "other", "birth_date": "1990-02-03"}),
        )
        .await;
    updated.assert_status(StatusCode::OK);
    let me = app.me(&tokens.access).await;
    assert_eq!(me.body["display_name"], "Gil");
    assert_eq!(me.body["gender"], "other");
    assert_eq!(me.body["birth_date"], "1990-02-03");
    assert_eq!(me.body["content_filter"], "off", "the default level");

    let filtered = app
        .update_me(&tokens.access, json!({"content_filter": "strict"}))
        .await;
    filtered.assert_status(StatusCode::OK);
    assert_eq!(
        app.me(&tokens.access).await.body["content_filter"],
        "strict"
    );
}

#[tokio::test]
async fn an_invalid_profile_edit_is_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let tokens = app.signup_user(&username("hal")).await;

    let response = app
        .update_me(
            &tokens.access,
            json!({"display_name": "ok", "birth_date": "2020-01-01"}),
        )
        .await;

    response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.error_field(), "birth_date");
    assert_eq!(
        app.me(&tokens.access).await.body["display_name"],
        "Test User"
    );
}

#[tokio::test]
async fn preferences_can_be_read_and_replaced() {
    let app = TestApp::spawn().await;
    let tokens = app.signup_user(&username("ida")).await;
    let defaults = app.preferences(&tokens.access).await;
    defaults.assert_status(StatusCode::OK);
    assert_eq!(
        defaults.body,
        json!({"genders": [], "min_age": 18, "max_age": 120, "interests": ["rust", "jazz"],
               "interest_mode": "preferred", "age_widen_years": 0, "widen_every_secs": 10,
               "fallback_after_secs": null})
    );

    let response = app
        .put_preferences(
            &tokens.access,
            json!({"genders": ["male", "male"], "min_age": 25, "max_age": 40, "interests": [" Go "],
                   "interest_mode": "required", "age_widen_years": 5, "fallback_after_secs": 90}),
        )
        .await;

    response.assert_status(StatusCode::OK);
    // Strictness and widening are kept; an absent `widen_every_secs` takes its default.
    let expected = json!({"genders": ["male"], "min_age": 25, "max_age": 40, "interests": ["go"],
                          "interest_mode": "required", "age_widen_years": 5,
                          "widen_every_secs": 10, "fallback_after_secs": 90});
    assert_eq!(response.body, expected);
    assert_eq!(app.preferences(&tokens.access).await.body, expected);
    assert_eq!(app.me(&tokens.access).await.body["preferences"], expected);
}

#[tokio::test]
async fn invalid_preferences_name_the_field() {
    let app = TestApp::spawn().await;
    let tokens = app.signup_user(&username("jon")).await;
    let cases = [
        (
            json!({"genders": [], "min_age": 17, "max_age": 40, "interests": []}),
            "min_age",
        ),
        (
            json!({"genders": [], "min_age": 18, "max_age": 121, "interests": []}),
            "max_age",
        ),
        (
            json!({"genders": [], "min_age": 40, "max_age": 30, "interests": []}),
            "max_age",
        ),
        (
            json!({"genders": [], "min_age": 18, "max_age": 30, "interests": [""]}),
            "interests",
        ),
        (
            json!({"genders": [], "min_age": 18, "max_age": 30, "interests": [],
                   "interest_mode": "required"}),
            "interests",
        ),
        (
            json!({"genders": [], "min_age": 18, "max_age": 30, "interests": [],
                   "age_widen_years": 200}),
            "age_widen_years",
        ),
        (
            json!({"genders": [], "min_age": 18, "max_age": 30, "interests": [],
                   "widen_every_secs": 0}),
            "widen_every_secs",
        ),
        (
            json!({"genders": [], "min_age": 18, "max_age": 30, "interests": [],
                   "fallback_after_secs": 10_000_000}),
            "fallback_after_secs",
        ),
        (
            json!({"genders": [], "min_age": 18, "max_age": 30, "interests": [],
                   "interest_mode": "sometimes"}),
            "interest_mode",
        ),
    ];
    for (body, field) in cases {
        let response = app.put_preferences(&tokens.access, body.clone()).await;
        response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(response.error_field(), field, "for {body}");
    }
}

#[tokio::test]
async fn a_password_change_ends_every_other_session() {
    let app = TestApp::spawn().await;
    let name = username("kim");
    let here = app.signup_user(&name).await;
    let elsewhere = app.login_tokens(&name, PASSWORD).await;
    let new_password = "a brand new secret";

    app.change_password(&here.access, PASSWORD, new_password)
        .await
        .assert_status(StatusCode::NO_CONTENT);

    app.refresh(&elsewhere.refresh)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    let here = app.refresh_tokens(&here.refresh).await;
    app.login(&name, PASSWORD)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.login_tokens(&name, new_password).await;
    let sessions = app.sessions(&here.access).await;
    let ids: Vec<&str> = sessions
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&here.session_id.as_str()));
    assert!(!ids.contains(&elsewhere.session_id.as_str()));
}

#[tokio::test]
async fn a_password_change_needs_the_current_password() {
    let app = TestApp::spawn().await;
    let name = username("lee");
    let tokens = app.signup_user(&name).await;

    let wrong = app
        .change_password(&tokens.access, "not my password", "a brand new secret")
        .await;
    let invalid = app.change_password(&tokens.access, PASSWORD, &name).await;

    wrong.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(wrong.error_code(), "wrong_password");
    invalid.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid.error_field(), "new_password");
    app.login_tokens(&name, PASSWORD).await;
}

#[tokio::test]
async fn sessions_are_listed_and_one_can_be_ended() {
    let app = TestApp::spawn().await;
    let name = username("max");
    let first = app.signup_user(&name).await;
    let second = app.login_tokens(&name, PASSWORD).await;

    let listed = app.sessions(&first.access).await;

    listed.assert_status(StatusCode::OK);
    let sessions = listed.body.as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0]["id"], first.session_id.as_str());
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[1]["current"], false);

    app.end_session(&first.access, &second.session_id)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.refresh(&second.refresh)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.end_session(&first.access, &second.session_id)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    assert_eq!(
        app.sessions(&first.access)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn another_users_session_cannot_be_ended() {
    let app = TestApp::spawn().await;
    let mine = app.signup_user(&username("ned")).await;
    let theirs = app.signup_user(&username("oli")).await;

    app.end_session(&mine.access, &theirs.session_id)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    app.end_session(&mine.access, "not-a-uuid")
        .await
        .assert_status(StatusCode::NOT_FOUND);

    app.refresh_tokens(&theirs.refresh).await;
}
