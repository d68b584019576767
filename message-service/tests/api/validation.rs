//! Bad input answers 422 with a field and a stable code; a blocked pair gets no chat.

use axum::http::{Method, StatusCode};
use message_service::MessageConfig;
use message_service::store::conformance::profile;
use serde_json::json;
use uuid::Uuid;
use wire::api::message::MAX_TEXT_CHARS;

use crate::helpers::TestApp;

#[tokio::test]
async fn bad_texts_are_refused_with_their_code_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user(), app.user());
    let chat = app.chat_between(&[&a, &b]).await;
    let too_long = "😀".repeat(MAX_TEXT_CHARS + 1);
    for (i, (text, code)) in [
        ("", "text_empty"),
        (too_long.as_str(), "text_too_long"),
        ("nul \u{0} inside", "text_control_chars"),
        ("carriage\rreturn", "text_control_chars"),
        ("escape \u{1b}[31m", "text_control_chars"),
        ("delete \u{7f}", "text_control_chars"),
        ("c1 \u{85}", "text_control_chars"),
    ]
    .into_iter()
    .enumerate()
    {
        let answer = app.append(chat, a.id, &format!("bad{i}"), text).await;
        answer.assert_error(StatusCode::UNPROCESSABLE_ENTITY, code);
        assert_eq!(answer.error_field(), "text");
    }
    for client_msg_id in ["", &"x".repeat(65), "tab\tinside"] {
        let answer = app.append(chat, a.id, client_msg_id, "fine").await;
        answer.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "client_msg_id_invalid");
        assert_eq!(answer.error_field(), "client_msg_id");
    }
    let stored = app
        .internal(Method::GET, &format!("/internal/chats/{chat}"), None)
        .await;
    assert_eq!(stored.body["last_seq"], 0, "no bad text was stored");

    // The limits themselves are fine: 4000 scalar values (of 4 bytes each), newline, tab.
    let longest = "😀".repeat(MAX_TEXT_CHARS);
    let answer = app.append(chat, a.id, "ok1", &longest).await;
    answer.assert_status(StatusCode::CREATED);
    assert_eq!(answer.body["message"]["text"], longest.as_str());
    app.append(chat, a.id, "ok2", "line one\n\tline two")
        .await
        .assert_status(StatusCode::CREATED);
    app.append(chat, a.id, "ok3", "x")
        .await
        .assert_status(StatusCode::CREATED);
}

#[tokio::test]
async fn malformed_bodies_are_refused() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user(), app.user());
    let chat = app.chat_between(&[&a, &b]).await;
    let answer = app
        .internal(
            Method::POST,
            &format!("/internal/chats/{chat}/messages"),
            Some(json!({ "sender_id": "not-a-uuid", "client_msg_id": "c", "text": "hi" })),
        )
        .await;
    assert!(answer.status.is_client_error(), "{}", answer.body);
    assert!(
        !answer.error_code().is_empty(),
        "a uniform error body: {}",
        answer.body
    );
    let answer = app
        .internal(
            Method::POST,
            &format!("/internal/chats/{chat}/messages"),
            Some(json!({ "sender_id": a.id, "client_msg_id": "c", "text": 5 })),
        )
        .await;
    assert!(answer.status.is_client_error(), "{}", answer.body);
}

#[tokio::test]
async fn a_chat_between_blocked_users_is_refused_with_409_blocked() {
    let app = TestApp::spawn().await;
    let (a, b, c) = (app.user(), app.user(), app.user());
    app.block(&a, &b).await.assert_status(StatusCode::CREATED);
    // Whoever blocked whom, and in either participant order.
    app.create_chat(&[&a, &b])
        .await
        .assert_error(StatusCode::CONFLICT, "blocked");
    app.create_chat(&[&b, &a])
        .await
        .assert_error(StatusCode::CONFLICT, "blocked");
    // Also in a larger chat.
    app.create_chat(&[&c, &b, &a])
        .await
        .assert_error(StatusCode::CONFLICT, "blocked");
    let check = app
        .internal(
            Method::GET,
            &format!("/internal/blocks/check?a={}&b={}", b.id, a.id),
            None,
        )
        .await;
    assert_eq!(check.body, json!({ "blocked": true }));
    let chats = app.public(Method::GET, "/v1/chats", &b, None).await;
    assert_eq!(chats.body["chats"], json!([]));

    app.public(Method::DELETE, &format!("/v1/blocks/{}", b.id), &a, None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.create_chat(&[&a, &b])
        .await
        .assert_status(StatusCode::CREATED);
}

#[tokio::test]
async fn chat_creation_is_idempotent_per_match_and_checks_participants() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user(), app.user());
    let match_id = Uuid::new_v4();
    let body = json!({ "match_id": match_id, "participants": [profile(a.id), profile(b.id)] });
    let first = app
        .internal(Method::POST, "/internal/chats", Some(body.clone()))
        .await;
    first.assert_status(StatusCode::CREATED);
    let again = app
        .internal(Method::POST, "/internal/chats", Some(body))
        .await;
    again.assert_status(StatusCode::OK);
    assert_eq!(again.body, first.body);

    for participants in [
        json!([profile(a.id)]),
        json!([profile(a.id), profile(a.id)]),
        json!([]),
    ] {
        app.internal(
            Method::POST,
            "/internal/chats",
            Some(json!({ "match_id": Uuid::new_v4(), "participants": participants })),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "participants_invalid");
    }
}

#[tokio::test]
async fn history_cursors_and_limits_are_checked() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user(), app.user());
    let chat = app.chat_between(&[&a, &b]).await;
    app.history(&a, chat, "before=5&after=1")
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "cursor_conflict");
    for limit in ["0", "101"] {
        let answer = app.history(&a, chat, &format!("limit={limit}")).await;
        answer.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "limit_invalid");
        assert_eq!(answer.error_field(), "limit");
    }
    app.history(&a, chat, "limit=100")
        .await
        .assert_status(StatusCode::OK);
    let answer = app.history(&a, chat, "after=-1").await;
    assert!(answer.status.is_client_error(), "{}", answer.body);
}

#[tokio::test]
async fn reports_are_validated_and_rate_limited() {
    let app = TestApp::with_config(MessageConfig {
        reports_per_window: 2,
        report_window: std::time::Duration::from_secs(3600),
        ..MessageConfig::default()
    })
    .await;
    let (a, b) = (app.user(), app.user());
    let chat = app.chat_between(&[&a, &b]).await;
    for reason in ["", "   ", "bad \u{0}"] {
        app.report(
            &a,
            json!({ "user_id": b.id, "chat_id": chat, "reason": reason }),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "reason_invalid");
    }
    for _ in 0..2 {
        app.report(
            &a,
            json!({ "user_id": b.id, "chat_id": chat, "reason": "spam" }),
        )
        .await
        .assert_status(StatusCode::CREATED);
    }
    let limited = app
        .report(
            &a,
            json!({ "user_id": b.id, "chat_id": chat, "reason": "spam" }),
        )
        .await;
    limited.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_reports");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    // Per reporter: b may still report a.
    app.report(
        &b,
        json!({ "user_id": a.id, "chat_id": chat, "reason": "spam" }),
    )
    .await
    .assert_status(StatusCode::CREATED);
}

#[tokio::test]
async fn concurrent_reports_cannot_pass_the_limit_together() {
    let app = TestApp::with_config(MessageConfig {
        reports_per_window: 10,
        report_window: std::time::Duration::from_secs(3600),
        ..MessageConfig::default()
    })
    .await;
    let (a, b) = (app.user(), app.user());
    let chat = app.chat_between(&[&a, &b]).await;
    let body = json!({ "user_id": b.id, "chat_id": chat, "reason": "spam" });
    let answers = futures::future::join_all((0..30).map(|_| app.report(&a, body.clone()))).await;
    let created = answers
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let limited = answers
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((created, limited), (10, 20));
}

#[tokio::test]
async fn blocks_are_capped_and_rate_limited_per_user() {
    let app = TestApp::with_config(MessageConfig {
        blocks_burst: 3,
        blocks_refill: std::time::Duration::from_secs(3600),
        max_blocks: 2,
        ..MessageConfig::default()
    })
    .await;
    let (a, b, c, d) = (app.user(), app.user(), app.user(), app.user());
    app.block(&a, &b).await.assert_status(StatusCode::CREATED);
    app.block(&a, &c).await.assert_status(StatusCode::CREATED);
    // The cap: a third user cannot be blocked (nothing is stored)...
    let refused = app.block(&a, &d).await;
    refused.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "too_many_blocks");
    assert_eq!(refused.error_field(), "user_id");
    let listed = app.public(Method::GET, "/v1/blocks", &a, None).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 2);
    // ...and the burst of three is spent: the next block waits.
    let limited = app.block(&a, &b).await;
    limited.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    // Others are not affected.
    app.block(&d, &a).await.assert_status(StatusCode::CREATED);
}

#[tokio::test]
async fn ending_chats_is_rate_limited_per_user() {
    let app = TestApp::with_config(MessageConfig {
        ends_burst: 2,
        ends_refill: std::time::Duration::from_secs(3600),
        ..MessageConfig::default()
    })
    .await;
    let (a, b) = (app.user(), app.user());
    for expected in [
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        let chat = app.chat_between(&[&a, &b]).await;
        let answer = app
            .public(Method::POST, &format!("/v1/chats/{chat}/end"), &a, None)
            .await;
        answer.assert_status(expected);
    }
    // The partner's own allowance is untouched.
    let chat = app.chat_between(&[&a, &b]).await;
    app.public(Method::POST, &format!("/v1/chats/{chat}/end"), &b, None)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn operators_review_reports_with_their_evidence_and_resolve_them_once() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user(), app.user());
    let chat = app.chat_between(&[&a, &b]).await;
    let rude = app.send_message(chat, &b, "rude").await;
    let rude_id = rude["id"].as_str().unwrap().to_owned();
    let filed = app
        .report(
            &a,
            json!({ "user_id": b.id, "chat_id": chat, "reason": "insults", "message_ids": [rude_id] }),
        )
        .await;
    filed.assert_status(StatusCode::CREATED);
    let report_id = filed.body["id"].as_str().unwrap().to_owned();

    // Not for users.
    app.public(Method::GET, "/v1/admin/reports", &a, None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "admin_required");

    let operator = app.admin();
    let open = app
        .public(Method::GET, "/v1/admin/reports", &operator, None)
        .await;
    open.assert_status(StatusCode::OK);
    let review = open
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["report"]["id"] == json!(report_id))
        .expect("the report is open")
        .clone();
    assert_eq!(review["report"]["reason"], "insults");
    assert_eq!(review["evidence"][0]["id"], json!(rude_id));
    assert_eq!(review["evidence"][0]["client_msg_id"], "rude");
    assert_eq!(review["resolution"], json!(null));

    let path = format!("/v1/admin/reports/{report_id}/resolve");
    let resolved = app
        .public(
            Method::POST,
            &path,
            &operator,
            Some(json!({ "outcome": "actioned", "note": "banned for a week" })),
        )
        .await;
    resolved.assert_status(StatusCode::OK);
    assert_eq!(resolved.body["resolution"]["outcome"], "actioned");
    assert_eq!(resolved.body["resolution"]["by"], json!(operator.id));
    // Resolved once: a second resolution is answered with the first.
    let again = app
        .public(
            Method::POST,
            &path,
            &operator,
            Some(json!({ "outcome": "dismissed" })),
        )
        .await;
    assert_eq!(again.body["resolution"]["outcome"], "actioned");
    let open = app
        .public(Method::GET, "/v1/admin/reports", &operator, None)
        .await;
    assert!(
        open.body
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["report"]["id"] != json!(report_id)),
        "no longer open"
    );
    app.public(
        Method::POST,
        &format!("/v1/admin/reports/{}/resolve", Uuid::new_v4()),
        &operator,
        Some(json!({ "outcome": "dismissed" })),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
}
