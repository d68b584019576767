//! ws-manager over HTTP, as ws-handlers and the other services call it: the service
//! credential on every route, handler heartbeats and liveness, the connection registry,
//! and delivery onto the relay bus of the handlers holding a user's connections.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};
use service_kit::auth::{SERVICE_TOKEN_HEADER, ServiceCredential};
use service_kit::relay::{RelayBus, RelaySubscription};
use test_support::http::{TestResponse, send};
use uuid::Uuid;
use wire::api::wsmanager::RelayEnvelope;
use ws_manager::{AppState, ManagerConfig, MemoryStore};

struct TestManager {
    router: Router,
    relay: RelayBus,
    credential: ServiceCredential,
}

impl TestManager {
    fn new() -> Self {
        Self::with_config(ManagerConfig::default())
    }

    fn with_config(config: ManagerConfig) -> Self {
        let relay = RelayBus::in_process();
        let credential = ServiceCredential::random();
        let state = AppState::new(
            Arc::new(MemoryStore::new()),
            relay.clone(),
            credential.clone(),
            config,
        );
        Self {
            router: ws_manager::app(state),
            relay,
            credential,
        }
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> TestResponse {
        let headers = [(SERVICE_TOKEN_HEADER, self.credential.expose())];
        send(&self.router, method, uri, None, body, &headers).await
    }

    async fn heartbeat(&self, handler: Uuid, connections: u64) -> TestResponse {
        self.call(
            Method::PUT,
            &format!("/internal/handlers/{handler}"),
            Some(json!({"url": format!("http://{handler}.test"), "connections": connections})),
        )
        .await
    }

    async fn register(&self, user: Uuid, handler: Uuid, connection: Uuid) -> u64 {
        let answer = self
            .call(
                Method::POST,
                "/internal/connections",
                Some(json!({
                    "user_id": user,
                    "connection": {"handler_id": handler, "connection_id": connection},
                })),
            )
            .await;
        answer.assert_status(StatusCode::OK);
        answer.body["connections"].as_u64().unwrap()
    }
}

#[tokio::test]
async fn a_connection_over_the_account_cap_orders_the_oldest_closed_wherever_it_is() {
    let manager = TestManager::with_config(ManagerConfig {
        max_connections_per_user: 2,
        ..ManagerConfig::default()
    });
    let (first_handler, second_handler) = (Uuid::new_v4(), Uuid::new_v4());
    manager
        .heartbeat(first_handler, 1)
        .await
        .assert_status(StatusCode::OK);
    manager
        .heartbeat(second_handler, 2)
        .await
        .assert_status(StatusCode::OK);
    let mut on_first = manager.relay.subscribe(first_handler);
    let mut on_second = manager.relay.subscribe(second_handler);
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    let oldest = Uuid::now_v7();
    let (middle, newest) = (Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(manager.register(user, first_handler, oldest).await, 1);
    assert_eq!(manager.register(user, second_handler, middle).await, 2);
    // Another account's connections do not count.
    manager
        .register(other, second_handler, Uuid::now_v7())
        .await;
    assert_eq!(manager.register(user, second_handler, newest).await, 3);
    let order = tokio::time::timeout(Duration::from_secs(20), next_order(&mut on_first))
        .await
        .expect("a close order reaches the oldest connection's handler");
    assert_eq!(order.connection_ids, vec![oldest]);
    assert_eq!(
        order.close,
        Some(wire::protocol::close::TOO_MANY_CONNECTIONS)
    );
    assert!(order.event.is_none());
    // Orders are published before registration answers, so none is on its way.
    while let Some(Some(envelope)) = on_second.next().now_or_never() {
        assert!(
            is_route_news(&envelope),
            "the handler of the newer connections gets no order"
        );
    }
}

/// Whether an envelope is a route announcement (every handler gets those).
fn is_route_news(envelope: &RelayEnvelope) -> bool {
    !envelope.routes_changed.is_empty() || envelope.routes_reset
}

/// The next envelope that is not a route announcement.
async fn next_order(subscription: &mut RelaySubscription) -> RelayEnvelope {
    loop {
        let envelope = subscription.next().await.expect("subscribed");
        if !is_route_news(&envelope) {
            return envelope;
        }
    }
}

#[tokio::test]
async fn registrations_and_returning_handlers_are_announced_to_every_handler() {
    let manager = TestManager::new();
    let (handler, listener) = (Uuid::new_v4(), Uuid::new_v4());
    let mut news = manager.relay.subscribe(listener);
    manager
        .heartbeat(handler, 0)
        .await
        .assert_status(StatusCode::OK);
    let first = tokio::time::timeout(Duration::from_secs(20), news.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        first.routes_reset,
        "a handler that becomes live resets routes"
    );
    let user = Uuid::new_v4();
    manager.register(user, handler, Uuid::now_v7()).await;
    let changed = tokio::time::timeout(Duration::from_secs(20), news.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.routes_changed, vec![user]);
    assert!(changed.connection_ids.is_empty() && changed.event.is_none());
    // A heartbeat of a handler already live announces nothing.
    manager
        .heartbeat(handler, 1)
        .await
        .assert_status(StatusCode::OK);
    assert!(news.next().now_or_never().is_none());
}

#[tokio::test]
async fn every_route_needs_the_service_credential() {
    let manager = TestManager::new();
    for (method, uri) in [
        (Method::GET, "/internal/handlers".to_owned()),
        (Method::POST, "/internal/connections".to_owned()),
        (Method::POST, "/internal/deliver".to_owned()),
        (
            Method::GET,
            format!("/internal/users/{}/connections", Uuid::new_v4()),
        ),
    ] {
        let without = send(&manager.router, method.clone(), &uri, None, None, &[]).await;
        without.assert_error(StatusCode::UNAUTHORIZED, "invalid_service_credential");
        let forged = send(
            &manager.router,
            method,
            &uri,
            None,
            None,
            &[(SERVICE_TOKEN_HEADER, "not-the-service-credential")],
        )
        .await;
        forged.assert_error(StatusCode::UNAUTHORIZED, "invalid_service_credential");
    }
}

#[tokio::test]
async fn connections_are_registered_listed_delivered_to_and_removed() {
    let manager = TestManager::new();
    let (busy, idle) = (Uuid::new_v4(), Uuid::new_v4());
    manager
        .heartbeat(busy, 7)
        .await
        .assert_status(StatusCode::OK);
    manager
        .heartbeat(idle, 1)
        .await
        .assert_status(StatusCode::OK);
    let live = manager.call(Method::GET, "/internal/handlers", None).await;
    live.assert_status(StatusCode::OK);
    let ids: Vec<&str> = live
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["handler_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [idle.to_string(), busy.to_string()],
        "least loaded first"
    );

    let user = Uuid::new_v4();
    let (phone, laptop) = (Uuid::new_v4(), Uuid::new_v4());
    assert_eq!(manager.register(user, busy, phone).await, 1, "came online");
    assert_eq!(manager.register(user, idle, laptop).await, 2);
    let listed = manager
        .call(
            Method::GET,
            &format!("/internal/users/{user}/connections"),
            None,
        )
        .await;
    assert_eq!(listed.body.as_array().unwrap().len(), 2, "{}", listed.body);

    // Delivery lands on the relay channel of each handler holding a connection.
    let mut on_busy = manager.relay.subscribe(busy);
    let delivered = manager
        .call(
            Method::POST,
            "/internal/deliver",
            Some(json!({
                "user_ids": [user],
                "event": {"type": "pong", "nonce": "n1"},
            })),
        )
        .await;
    delivered.assert_status(StatusCode::OK);
    assert_eq!(delivered.body["routed"], 2, "{}", delivered.body);
    let envelope = tokio::time::timeout(Duration::from_secs(20), on_busy.next())
        .await
        .expect("the envelope reaches the handler's channel")
        .expect("the bus is open");
    assert_eq!(envelope.connection_ids, vec![phone]);

    let left = manager
        .call(
            Method::DELETE,
            &format!("/internal/connections/{user}/{phone}"),
            None,
        )
        .await;
    assert_eq!(left.body["connections"], 1);
    // A handler that shuts down takes its connections with it.
    manager
        .call(Method::DELETE, &format!("/internal/handlers/{idle}"), None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let listed = manager
        .call(
            Method::GET,
            &format!("/internal/users/{user}/connections"),
            None,
        )
        .await;
    assert_eq!(listed.body, json!([]), "the user is offline");
}

#[tokio::test]
async fn a_malformed_body_gets_the_uniform_error_naming_the_field() {
    let manager = TestManager::new();
    let answer = manager
        .call(
            Method::POST,
            "/internal/connections",
            Some(json!({"user_id": "not a uuid"})),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert_eq!(answer.error_field(), "user_id");
}
