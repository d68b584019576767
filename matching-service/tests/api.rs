//! matching-service over HTTP, as clients reach it through the gateway and services
//! through its internal routes: joining with validation, the queue status as criteria
//! widen, leaving, a match delivered to both, the per-user join limit and the internal
//! routes' credential.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
mod support;

use matching_service::store::memory::MemoryQueueStore;
use matching_service::{AppState, MatchingConfig};
use serde_json::{Value, json};
use service_kit::auth::{SERVICE_TOKEN_HEADER, ServiceCredential};
use service_kit::token::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, TokenSigner, TokenVerifier};
use support::PeerStandIns;
use test_support::http::{TestResponse, send};
use uuid::Uuid;
use wire::domain::Gender;

struct TestMatching {
    router: Router,
    state: AppState,
    signer: TokenSigner,
    peers: PeerStandIns,
    credential: ServiceCredential,
}

impl TestMatching {
    fn new(config: MatchingConfig) -> Self {
        let signer = TokenSigner::generate(DEFAULT_ISSUER, DEFAULT_AUDIENCE);
        let verifier =
            TokenVerifier::from_jwks(DEFAULT_ISSUER, DEFAULT_AUDIENCE, &signer.jwks()).unwrap();
        let peers = PeerStandIns::default();
        let credential = ServiceCredential::random();
        let state = AppState::new(
            Arc::new(MemoryQueueStore::default()),
            peers.peers(),
            verifier,
            credential.clone(),
            config,
        );
        Self {
            router: matching_service::app(state.clone()),
            state,
            signer,
            peers,
            credential,
        }
    }

    fn token(&self, user: Uuid) -> String {
        self.signer
            .sign(user, Uuid::new_v4(), Duration::from_secs(600))
            .0
    }

    async fn as_user(&self, user: Uuid, method: Method, body: Option<Value>) -> TestResponse {
        let token = self.token(user);
        send(&self.router, method, "/v1/queue", Some(&token), body, &[]).await
    }
}

#[tokio::test]
async fn a_user_joins_sees_the_status_and_leaves() {
    let app = TestMatching::new(MatchingConfig::default());
    let ann = app.peers.add_user(Gender::Female, 30, &["chess"]);

    let joined = app
        .as_user(
            ann.id,
            Method::POST,
            Some(json!({"min_age": 25, "max_age": 35, "age_widen_years": 3, "interest_mode": "required"})),
        )
        .await;
    joined.assert_status(StatusCode::OK);
    assert_eq!(joined.body["state"], "waiting", "{}", joined.body);
    let status = app.as_user(ann.id, Method::GET, None).await;
    assert_eq!(status.body["state"], "waiting");
    assert_eq!(status.body["criteria"]["min_age"], 25);
    assert_eq!(status.body["criteria"]["interests"], json!(["chess"]));

    app.as_user(ann.id, Method::DELETE, None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let status = app.as_user(ann.id, Method::GET, None).await;
    assert_eq!(status.body["state"], "idle", "{}", status.body);
}

#[tokio::test]
async fn bad_criteria_are_refused_naming_the_field_and_nothing_is_queued() {
    let app = TestMatching::new(MatchingConfig::default());
    let ann = app.peers.add_user(Gender::Female, 30, &[]);
    for (body, field, code) in [
        (
            json!({"min_age": 40, "max_age": 30}),
            "min_age",
            "invalid_age_range",
        ),
        (json!({"min_age": 17}), "min_age", "age_out_of_range"),
        (
            json!({"interest_mode": "required", "interests": []}),
            "interests",
            "interests_required",
        ),
        (
            json!({"widen_every_secs": 0}),
            "widen_every_secs",
            "invalid_widen_every",
        ),
        (
            json!({"interest_mode": "sometimes"}),
            "interest_mode",
            "invalid_field",
        ),
    ] {
        let answer = app.as_user(ann.id, Method::POST, Some(body.clone())).await;
        answer.assert_error(StatusCode::UNPROCESSABLE_ENTITY, code);
        assert_eq!(answer.error_field(), field, "for {body}");
    }
    let status = app.as_user(ann.id, Method::GET, None).await;
    assert_eq!(status.body["state"], "idle");
}

#[tokio::test]
async fn two_compatible_users_are_matched_and_both_are_told() {
    let app = TestMatching::new(MatchingConfig::default());
    let ann = app.peers.add_user(Gender::Female, 30, &["chess"]);
    let bob = app.peers.add_user(Gender::Male, 31, &["chess"]);
    app.as_user(ann.id, Method::POST, Some(json!({})))
        .await
        .assert_status(StatusCode::OK);
    let second = app.as_user(bob.id, Method::POST, Some(json!({}))).await;
    second.assert_status(StatusCode::OK);
    // Matched at join (or by the next sweep, which the test runs itself).
    if second.body["state"] != "matched" {
        matching_service::matcher::sweep(&app.state).await;
    }
    let status = app.as_user(ann.id, Method::GET, None).await;
    assert_eq!(status.body["state"], "matched", "{}", status.body);
    assert_eq!(status.body["matched"]["partner"]["id"], json!(bob.id));
    assert_eq!(app.peers.delivered_to(ann.id).len(), 1);
    assert_eq!(app.peers.delivered_to(bob.id).len(), 1);
    assert_eq!(app.peers.chats().len(), 1);
}

#[tokio::test]
async fn joins_beyond_the_per_user_allowance_get_429() {
    let app = TestMatching::new(MatchingConfig {
        join_burst: 2,
        join_refill: Duration::from_secs(3600),
        ..MatchingConfig::default()
    });
    let ann = app.peers.add_user(Gender::Female, 30, &[]);
    for _ in 0..2 {
        app.as_user(ann.id, Method::POST, Some(json!({})))
            .await
            .assert_status(StatusCode::OK);
    }
    let refused = app.as_user(ann.id, Method::POST, Some(json!({}))).await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(refused.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn internal_routes_need_the_service_credential() {
    let app = TestMatching::new(MatchingConfig::default());
    let ann = app.peers.add_user(Gender::Female, 30, &[]);
    app.as_user(ann.id, Method::POST, Some(json!({})))
        .await
        .assert_status(StatusCode::OK);
    let uri = format!("/internal/queue/{}", ann.id);
    send(&app.router, Method::DELETE, &uri, None, None, &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_service_credential");
    let dropped = send(
        &app.router,
        Method::DELETE,
        &uri,
        None,
        None,
        &[(SERVICE_TOKEN_HEADER, app.credential.expose())],
    )
    .await;
    assert!(dropped.status.is_success(), "{}", dropped.body);
    let status = app.as_user(ann.id, Method::GET, None).await;
    assert_eq!(status.body["state"], "idle", "the ticket was dropped");
}
