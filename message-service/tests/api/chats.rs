//! What participants get: their chats newest first with partner, last message and unread
//! count; history pages with each message's status; resends; ending; blocking.

use axum::http::{Method, StatusCode};
use message_service::store::conformance::profile;
use serde_json::{Value, json};

use crate::helpers::TestApp;

fn seqs(page: &Value) -> Vec<u64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn my_chats_list_newest_first_with_partner_last_message_and_unread_count() {
    let app = TestApp::spawn().await;
    let (me, p1, p2) = (app.user(), app.user(), app.user());
    let older = app.chat_between(&[&me, &p1]).await;
    let newer = app.chat_between(&[&p2, &me]).await;
    for i in 0..3 {
        app.send_message(older, &p1, &format!("o{i}")).await;
    }
    app.send_message(older, &me, "mine").await;
    app.send_message(newer, &p2, "n0").await;
    app.mark(older, &me, None, Some(2))
        .await
        .assert_status(StatusCode::OK);

    let list = app.public(Method::GET, "/v1/chats", &me, None).await;
    list.assert_status(StatusCode::OK);
    let chats = list.body["chats"].as_array().unwrap();
    assert_eq!(chats.len(), 2);
    assert_eq!(
        list.body["next_before"],
        json!(null),
        "one page holds them all"
    );
    assert_eq!(chats[0]["id"], json!(newer), "newest first");
    assert_eq!(chats[1]["id"], json!(older));
    assert_eq!(
        chats[0]["partner"],
        serde_json::to_value(profile(p2.id)).unwrap()
    );
    assert_eq!(
        chats[1]["partner"],
        serde_json::to_value(profile(p1.id)).unwrap()
    );
    assert_eq!(chats[0]["unread_count"], 1);
    // Read up to 2 of p1's three; my own message is never unread.
    assert_eq!(chats[1]["unread_count"], 1);
    assert_eq!(chats[1]["last_message"]["client_msg_id"], "mine");
    assert_eq!(chats[1]["last_message"]["status"]["state"], "sent");
    assert_eq!(chats[1]["last_seq"], 4);
    // Every participant's watermarks: mine (read up to 2), the partner's (nothing yet).
    let marks = chats[1]["watermarks"].as_array().unwrap();
    assert_eq!(marks.len(), 2);
    let mine = marks.iter().find(|w| w["user_id"] == json!(me.id)).unwrap();
    assert_eq!(mine["read_seq"], 2);
    let partners = marks.iter().find(|w| w["user_id"] == json!(p1.id)).unwrap();
    assert_eq!(partners["read_seq"], 0);

    let page = app
        .public(Method::GET, "/v1/chats?limit=1", &me, None)
        .await;
    assert_eq!(page.body["chats"].as_array().unwrap().len(), 1);
    assert_eq!(page.body["chats"][0]["id"], json!(newer));
    // The cursor leads to the next (older) page, which is the last.
    let cursor = page.body["next_before"]
        .as_str()
        .expect("a cursor")
        .to_owned();
    let next = app
        .public(
            Method::GET,
            &format!("/v1/chats?limit=1&before={cursor}"),
            &me,
            None,
        )
        .await;
    next.assert_status(StatusCode::OK);
    assert_eq!(next.body["chats"][0]["id"], json!(older));
    assert_eq!(next.body["chats"].as_array().unwrap().len(), 1);
    let theirs = app.public(Method::GET, "/v1/chats", &p1, None).await;
    let theirs = &theirs.body["chats"];
    assert_eq!(theirs.as_array().unwrap().len(), 1);
    assert_eq!(theirs[0]["partner"]["id"], json!(me.id));
    assert_eq!(theirs[0]["unread_count"], 1, "my one message");
}

#[tokio::test]
async fn history_pages_by_cursor_with_each_status_as_the_caller_sees_it() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user(), app.user());
    let chat = app.chat_between(&[&a, &b]).await;
    for i in 1..=7 {
        app.send_message(chat, &a, &format!("c{i}")).await;
    }
    let delivered = app.mark(chat, &b, Some(5), None).await;
    delivered.assert_status(StatusCode::OK);
    let read = app.mark(chat, &b, None, Some(2)).await;
    read.assert_status(StatusCode::OK);

    let newest = app.history(&a, chat, "limit=3").await;
    newest.assert_status(StatusCode::OK);
    assert_eq!(seqs(&newest.body), [5, 6, 7]);
    assert_eq!(newest.body["has_more"], true);
    let older = app.history(&a, chat, "before=5&limit=3").await;
    assert_eq!(seqs(&older.body), [2, 3, 4]);
    assert_eq!(older.body["has_more"], true);
    let oldest = app.history(&a, chat, "before=2&limit=3").await;
    assert_eq!(seqs(&oldest.body), [1]);
    assert_eq!(oldest.body["has_more"], false);
    let after = app.history(&a, chat, "after=4&limit=2").await;
    assert_eq!(seqs(&after.body), [5, 6]);
    assert_eq!(after.body["has_more"], true);
    let tail = app.history(&a, chat, "after=6").await;
    assert_eq!(seqs(&tail.body), [7]);
    assert_eq!(tail.body["has_more"], false);

    // As the sender sees them: 1–2 read, 3–5 delivered, 6–7 sent, with the times.
    let all = app.history(&a, chat, "").await;
    let messages = all.body["messages"].as_array().unwrap();
    let states: Vec<&str> = messages
        .iter()
        .map(|m| m["status"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "read",
            "read",
            "delivered",
            "delivered",
            "delivered",
            "sent",
            "sent"
        ]
    );
    assert_eq!(messages[0]["status"]["read_at"], read.body["read_at"]);
    assert_eq!(
        messages[0]["status"]["delivered_at"],
        delivered.body["delivered_at"]
    );
    assert_eq!(
        messages[4]["status"]["delivered_at"],
        delivered.body["delivered_at"]
    );
    assert_eq!(messages[4]["status"]["read_at"], Value::Null);
    assert_eq!(messages[6]["status"]["delivered_at"], Value::Null);
    // As the recipient sees them: how far b got.
    let theirs = app.history(&b, chat, "").await;
    let states: Vec<&str> = theirs.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["status"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "read",
            "read",
            "delivered",
            "delivered",
            "delivered",
            "sent",
            "sent"
        ]
    );
}

#[tokio::test]
async fn a_resend_answers_the_original_and_watermarks_never_move_back() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user(), app.user());
    let chat = app.chat_between(&[&a, &b]).await;
    let first = app.append(chat, a.id, "same", "hello").await;
    first.assert_status(StatusCode::CREATED);
    assert_eq!(first.body["created"], true);
    assert_eq!(first.body["message"]["seq"], 1);
    let again = app.append(chat, a.id, "same", "hello, edited").await;
    again.assert_status(StatusCode::OK);
    assert_eq!(again.body["created"], false);
    assert_eq!(again.body["message"], first.body["message"]);
    app.send_message(chat, &b, "same").await;

    let w = app.mark(chat, &b, Some(99), Some(1)).await;
    assert_eq!(
        (
            w.body["delivered_seq"].as_u64(),
            w.body["read_seq"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let w = app.mark(chat, &b, Some(1), Some(0)).await;
    assert_eq!(
        (
            w.body["delivered_seq"].as_u64(),
            w.body["read_seq"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let all = app
        .internal(
            Method::GET,
            &format!("/internal/chats/{chat}/watermarks"),
            None,
        )
        .await;
    assert_eq!(all.body[1]["user_id"], json!(b.id));
    assert_eq!(all.body[1]["delivered_seq"], 2);
    let after = app
        .internal(
            Method::GET,
            &format!("/internal/chats/{chat}/messages?after=1"),
            None,
        )
        .await;
    assert_eq!(after.body.as_array().unwrap().len(), 1);
    assert_eq!(after.body[0]["seq"], 2);
}

#[tokio::test]
async fn ending_a_chat_is_idempotent_and_stops_new_messages() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.user(), app.user());
    let chat = app.chat_between(&[&a, &b]).await;
    app.send_message(chat, &a, "before").await;
    let ended = app
        .public(Method::POST, &format!("/v1/chats/{chat}/end"), &b, None)
        .await;
    ended.assert_status(StatusCode::OK);
    assert_eq!(ended.body["ended_by"], json!(b.id));
    assert!(ended.body["ended_at"].is_string());
    let again = app
        .public(Method::POST, &format!("/v1/chats/{chat}/end"), &a, None)
        .await;
    again.assert_status(StatusCode::OK);
    assert_eq!(again.body["ended_by"], json!(b.id), "the first ender wins");
    assert_eq!(again.body["ended_at"], ended.body["ended_at"]);
    app.append(chat, a.id, "after", "too late")
        .await
        .assert_error(StatusCode::CONFLICT, "chat_ended");
    app.append(chat, a.id, "before", "text of before")
        .await
        .assert_status(StatusCode::OK);
    // History stays readable.
    let history = app.history(&a, chat, "").await;
    assert_eq!(seqs(&history.body), [1]);
}

#[tokio::test]
async fn blocking_ends_the_chat_and_lists_the_blocked_user() {
    let app = TestApp::spawn().await;
    let (a, b, c) = (app.user(), app.user(), app.user());
    let chat = app.chat_between(&[&a, &b]).await;
    let blocked = app.block(&a, &b).await;
    blocked.assert_status(StatusCode::CREATED);
    assert_eq!(blocked.body["user_id"], json!(b.id));
    app.block(&a, &b).await.assert_status(StatusCode::OK);
    app.block(&a, &c).await.assert_status(StatusCode::CREATED);
    app.block(&a, &a)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "cannot_block_self");

    let seen = app
        .public(Method::GET, &format!("/v1/chats/{chat}"), &b, None)
        .await;
    assert_eq!(
        seen.body["ended_by"],
        json!(a.id),
        "the block ended the chat"
    );
    let list = app.public(Method::GET, "/v1/blocks", &a, None).await;
    let listed = list.body.as_array().unwrap();
    let mut ids: Vec<&Value> = listed.iter().map(|b| &b["user_id"]).collect();
    // Newest first (both may share a millisecond, so compare the times).
    let times: Vec<time::OffsetDateTime> = listed
        .iter()
        .map(|b| {
            time::OffsetDateTime::parse(
                b["created_at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        })
        .collect();
    assert!(times[0] >= times[1], "newest first: {listed:?}");
    ids.sort_by_key(|v| v.to_string());
    let mut expected = [json!(b.id), json!(c.id)];
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(ids, [&expected[0], &expected[1]]);
    let theirs = app.public(Method::GET, "/v1/blocks", &b, None).await;
    assert_eq!(theirs.body, json!([]), "only one's own blocks are listed");
    app.public(Method::DELETE, &format!("/v1/blocks/{}", b.id), &a, None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let list = app.public(Method::GET, "/v1/blocks", &a, None).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_batch_of_appends_stores_each_item_in_order_or_refuses_it_alone() {
    let app = TestApp::spawn().await;
    let (a, b, c, stranger) = (app.user(), app.user(), app.user(), app.user());
    let first = app.chat_between(&[&a, &b]).await;
    let second = app.chat_between(&[&a, &c]).await;
    let ended = app.chat_between(&[&b, &c]).await;
    let before = app.send_message(first, &a, "before").await;
    app.internal(
        Method::POST,
        &format!("/internal/chats/{ended}/end"),
        Some(json!({ "user_id": b.id })),
    )
    .await
    .assert_status(StatusCode::OK);
    let item = |chat, sender: &crate::helpers::User, client: &str, text: &str| json!({ "chat_id": chat, "sender_id": sender.id, "client_msg_id": client, "text": text });
    let items = vec![
        item(first, &b, "f1", "one"),
        item(second, &c, "s1", "two"),
        item(first, &stranger, "x", "intruder"),
        item(first, &a, "f2", ""),
        item(ended, &c, "e1", "too late"),
        item(first, &a, "before", "resent"),
        item(first, &a, "f3", "three"),
        item(first, &b, "f1", "one again"),
    ];
    let response = app
        .internal(
            Method::POST,
            "/internal/messages/append",
            Some(json!({ "items": items })),
        )
        .await;
    response.assert_status(StatusCode::OK);
    let results = response.body["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 8);
    let stored = |i: usize, seq: u64, created: bool| {
        let r = &results[i];
        assert_eq!(r["outcome"], "stored", "item {i}: {r}");
        assert_eq!(r["message"]["seq"], seq, "item {i}: {r}");
        assert_eq!(r["created"], created, "item {i}: {r}");
        assert_eq!(r["participants"].as_array().unwrap().len(), 2);
    };
    let refused = |i: usize, code: &str| {
        let r = &results[i];
        assert_eq!(r["outcome"], "refused", "item {i}: {r}");
        assert_eq!(r["error"]["code"], code, "item {i}: {r}");
    };
    stored(0, 2, true);
    stored(1, 1, true);
    refused(2, "chat_not_found");
    refused(3, "text_empty");
    refused(4, "chat_ended");
    stored(5, 1, false);
    assert_eq!(results[5]["message"]["id"], before["id"]);
    stored(6, 3, true);
    stored(7, 2, false);
    assert_eq!(results[7]["message"]["id"], results[0]["message"]["id"]);

    let page = app
        .internal(
            Method::GET,
            &format!("/internal/chats/{first}/messages"),
            None,
        )
        .await;
    let texts: Vec<&str> = page
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["text of before", "one", "three"]);

    let too_many: Vec<Value> = (0..1001)
        .map(|i| item(first, &a, &format!("m{i}"), "x"))
        .collect();
    app.internal(
        Method::POST,
        "/internal/messages/append",
        Some(json!({ "items": too_many })),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
}
