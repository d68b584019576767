//! Only participants see or touch a chat: everyone else gets the same 404 as for a chat
//! that does not exist, on every path; internal endpoints require the service credential.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestResponse, User};

/// Every public path that names a chat, as `user`.
async fn chat_paths(
    app: &TestApp,
    user: &User,
    chat: Uuid,
    partner: Uuid,
) -> Vec<(String, TestResponse)> {
    let mut answers = Vec::new();
    for (method, uri, body) in [
        (Method::GET, format!("/v1/chats/{chat}"), None),
        (Method::GET, format!("/v1/chats/{chat}/messages"), None),
        (
            Method::GET,
            format!("/v1/chats/{chat}/messages?after=0"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/chats/{chat}/messages?before=9&limit=5"),
            None,
        ),
        (Method::POST, format!("/v1/chats/{chat}/end"), None),
        (
            Method::POST,
            "/v1/reports".to_owned(),
            Some(json!({ "user_id": partner, "chat_id": chat, "reason": "spam" })),
        ),
    ] {
        let label = format!("{method} {uri}");
        answers.push((label, app.public(method, &uri, user, body).await));
    }
    answers
}

#[tokio::test]
async fn a_non_participant_gets_404_on_every_chat_path() {
    let app = TestApp::spawn().await;
    let (a, b, stranger) = (app.user(), app.user(), app.user());
    let chat = app.chat_between(&[&a, &b]).await;
    let message = app.send_message(chat, &a, "m1").await;

    for (label, answer) in chat_paths(&app, &stranger, chat, a.id).await {
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{label}: {}",
            answer.body
        );
        assert_eq!(answer.error_code(), "chat_not_found", "{label}");
        // Exactly what a chat that does not exist answers: existence does not leak.
        let missing = Uuid::new_v4();
        let unknown = chat_paths(&app, &stranger, missing, a.id).await;
        let (_, same_path) = unknown
            .iter()
            .find(|(l, _)| {
                l.replace(&missing.to_string(), "X") == label.replace(&chat.to_string(), "X")
            })
            .expect("the same path");
        assert_eq!(same_path.status, answer.status, "{label}");
        assert_eq!(same_path.body, answer.body, "{label}");
    }
    // A report naming the chat's messages does not get through either.
    app.report(
        &stranger,
        json!({ "user_id": a.id, "chat_id": chat, "message_ids": [message["id"]], "reason": "spam" }),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "chat_not_found");

    let listed = app.public(Method::GET, "/v1/chats", &stranger, None).await;
    listed.assert_status(StatusCode::OK);
    assert_eq!(
        listed.body["chats"],
        json!([]),
        "the chat is not among the stranger's"
    );

    // Nothing changed for the participants: still active, one message.
    let seen = app
        .public(Method::GET, &format!("/v1/chats/{chat}"), &a, None)
        .await;
    seen.assert_status(StatusCode::OK);
    assert_eq!(seen.body["ended_at"], Value::Null);
    let history = app.history(&b, chat, "").await;
    history.assert_status(StatusCode::OK);
    assert_eq!(history.body["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_participant_of_another_chat_cannot_reach_this_one() {
    let app = TestApp::spawn().await;
    let (a, b, c) = (app.user(), app.user(), app.user());
    let chat = app.chat_between(&[&a, &b]).await;
    // c has a chat with a, but not this one.
    app.chat_between(&[&a, &c]).await;
    for (label, answer) in chat_paths(&app, &c, chat, a.id).await {
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{label}: {}",
            answer.body
        );
    }
}

#[tokio::test]
async fn internal_writes_on_behalf_of_a_non_participant_are_refused() {
    let app = TestApp::spawn().await;
    let (a, b, stranger) = (app.user(), app.user(), app.user());
    let chat = app.chat_between(&[&a, &b]).await;

    app.append(chat, stranger.id, "x1", "let me in")
        .await
        .assert_error(StatusCode::NOT_FOUND, "chat_not_found");
    app.mark(chat, &stranger, Some(1), Some(1))
        .await
        .assert_error(StatusCode::NOT_FOUND, "chat_not_found");
    app.internal(
        Method::POST,
        &format!("/internal/chats/{chat}/end"),
        Some(json!({ "user_id": stranger.id })),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "chat_not_found");

    let stored = app
        .internal(Method::GET, &format!("/internal/chats/{chat}"), None)
        .await;
    stored.assert_status(StatusCode::OK);
    assert_eq!(stored.body["last_seq"], 0, "nothing was appended");
    assert_eq!(
        stored.body["ended_at"],
        Value::Null,
        "the chat was not ended"
    );
    let messages = app
        .internal(
            Method::GET,
            &format!("/internal/chats/{chat}/messages"),
            None,
        )
        .await;
    assert_eq!(messages.body, json!([]));
}

#[tokio::test]
async fn a_participant_reports_only_the_partner_of_that_chat() {
    let app = TestApp::spawn().await;
    let (a, b, c) = (app.user(), app.user(), app.user());
    let chat = app.chat_between(&[&a, &b]).await;
    let other = app.chat_between(&[&a, &c]).await;
    let elsewhere = app.send_message(other, &c, "e1").await;
    let here = app.send_message(chat, &b, "h1").await;

    // c is not in this chat.
    app.report(
        &a,
        json!({ "user_id": c.id, "chat_id": chat, "reason": "spam" }),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "chat_not_found");
    // A message of another chat cannot be named.
    app.report(
        &a,
        json!({ "user_id": b.id, "chat_id": chat, "message_ids": [elsewhere["id"]], "reason": "spam" }),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "message_not_in_chat");
    // Nor oneself.
    app.report(
        &a,
        json!({ "user_id": a.id, "chat_id": chat, "reason": "spam" }),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "cannot_report_self");

    let filed = app
        .report(
            &a,
            json!({ "user_id": b.id, "chat_id": chat, "message_ids": [here["id"]], "reason": "rude" }),
        )
        .await;
    filed.assert_status(StatusCode::CREATED);
    assert_eq!(filed.body["reporter_id"], json!(a.id));
    assert_eq!(filed.body["reported_id"], json!(b.id));
    assert_eq!(filed.body["chat_id"], json!(chat));
    assert_eq!(filed.body["message_ids"], json!([here["id"]]));
    assert_eq!(filed.body["reason"], "rude");
}

#[tokio::test]
async fn internal_endpoints_refuse_a_missing_or_wrong_credential() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user(), app.user());
    let chat = app.chat_between(&[&a, &b]).await;
    let profile = |id: Uuid| message_service::store::conformance::profile(id);
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/internal/chats".to_owned(),
            Some(
                json!({ "match_id": Uuid::new_v4(), "participants": [profile(a.id), profile(b.id)] }),
            ),
        ),
        (Method::GET, format!("/internal/chats/{chat}"), None),
        (
            Method::POST,
            format!("/internal/chats/{chat}/messages"),
            Some(json!({ "sender_id": a.id, "client_msg_id": "c1", "text": "hi" })),
        ),
        (
            Method::GET,
            format!("/internal/chats/{chat}/messages?after=0"),
            None,
        ),
        (
            Method::POST,
            format!("/internal/chats/{chat}/watermarks"),
            Some(json!({ "user_id": b.id, "delivered_seq": 1 })),
        ),
        (
            Method::GET,
            format!("/internal/chats/{chat}/watermarks"),
            None,
        ),
        (
            Method::POST,
            format!("/internal/chats/{chat}/end"),
            Some(json!({ "user_id": a.id })),
        ),
        (Method::GET, format!("/internal/users/{}/chats", a.id), None),
        (
            Method::GET,
            format!("/internal/users/{}/blocks", a.id),
            None,
        ),
        (
            Method::GET,
            format!("/internal/blocks/check?a={}&b={}", a.id, b.id),
            None,
        ),
    ];
    let wrong = format!("{}x", app.credential.expose());
    for (method, uri, body) in &calls {
        for credential in [None, Some(""), Some("wrong"), Some(wrong.as_str())] {
            let answer = app
                .internal_as(method.clone(), uri, credential, body.clone())
                .await;
            answer.assert_error(StatusCode::UNAUTHORIZED, "invalid_service_credential");
        }
        // A user's access token is no service credential.
        let answer = app
            .send(method.clone(), uri, Some(&a.token), body.clone(), &[])
            .await;
        answer.assert_error(StatusCode::UNAUTHORIZED, "invalid_service_credential");
    }
    // None of it took effect.
    let stored = app
        .internal(Method::GET, &format!("/internal/chats/{chat}"), None)
        .await;
    assert_eq!(stored.body["last_seq"], 0);
    assert_eq!(stored.body["ended_at"], Value::Null);
    let chats = app
        .internal(
            Method::GET,
            &format!("/internal/users/{}/chats", a.id),
            None,
        )
        .await;
    assert_eq!(chats.body.as_array().unwrap().len(), 1, "no second chat");
    // With the credential every one of them answers.
    for (method, uri, body) in calls {
        let answer = app.internal(method.clone(), &uri, body).await;
        assert!(
            answer.status.is_success(),
            "{method} {uri}: {}",
            answer.body
        );
    }
}

#[tokio::test]
async fn public_endpoints_require_a_valid_access_token() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user(), app.user());
    let chat = app.chat_between(&[&a, &b]).await;
    let other = TestApp::spawn().await;
    // Signed by a key this service does not trust.
    let forged = other.user();
    for (method, uri) in [
        (Method::GET, "/v1/chats".to_owned()),
        (Method::GET, format!("/v1/chats/{chat}")),
        (Method::GET, format!("/v1/chats/{chat}/messages")),
        (Method::POST, format!("/v1/chats/{chat}/end")),
        (Method::GET, "/v1/blocks".to_owned()),
        (Method::DELETE, format!("/v1/blocks/{}", b.id)),
    ] {
        app.send(method.clone(), &uri, None, None, &[])
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "missing_token");
        app.send(method.clone(), &uri, Some(&forged.token), None, &[])
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
        // The service credential is no access token.
        let credential = app.credential.expose().to_owned();
        app.send(method, &uri, Some(&credential), None, &[])
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    app.send(
        Method::POST,
        "/v1/blocks",
        None,
        Some(json!({ "user_id": b.id })),
        &[],
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "missing_token");
    let seen = app
        .public(Method::GET, &format!("/v1/chats/{chat}"), &a, None)
        .await;
    assert_eq!(seen.body["ended_at"], Value::Null, "the chat was not ended");
}
