//! Several instances of a REST service behind the gateway, on real sockets: spreading by
//! requests in flight, ejection of instances that refuse, time out or answer a run of
//! 502/503/504, safe retries, and re-admission once `GET /readyz` answers again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use axum::routing::{any, get};
use bytes::Bytes;
use gateway::{AppState, EjectionPolicy, Limits, UpstreamPool, Upstreams, WsUpstream};
use service_kit::client::ServiceClient;
use service_kit::token::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, TokenSigner, TokenVerifier};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt;
use uuid::Uuid;

/// A stand-in service instance: counts the requests it serves (`/readyz` apart), holds
/// requests to `/slow` until released, and answers the others with `answer` when set.
#[derive(Clone, Default)]
struct FakeInstance {
    served: Arc<AtomicUsize>,
    /// The status of every answer but `/readyz` and `/slow`; 0 is 200 "ok".
    answer: Arc<AtomicU16>,
    probes: Arc<AtomicUsize>,
    not_ready: Arc<AtomicBool>,
    slow_started: Arc<Notify>,
    release: Arc<Notify>,
}

impl FakeInstance {
    fn router(&self) -> Router {
        let (probes, not_ready) = (self.probes.clone(), self.not_ready.clone());
        let (served, started, release) = (
            self.served.clone(),
            self.slow_started.clone(),
            self.release.clone(),
        );
        let served_slow = served.clone();
        let answer = self.answer.clone();
        Router::new()
            .route(
                "/readyz",
                get(move || {
                    probes.fetch_add(1, Ordering::SeqCst);
                    let status = if not_ready.load(Ordering::SeqCst) {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    };
                    async move { status }
                }),
            )
            .route(
                "/slow",
                get(move || {
                    served_slow.fetch_add(1, Ordering::SeqCst);
                    let (started, release) = (started.clone(), release.clone());
                    async move {
                        started.notify_one();
                        release.notified().await;
                        "slow"
                    }
                }),
            )
            .fallback(any(move || {
                served.fetch_add(1, Ordering::SeqCst);
                let status = match answer.load(Ordering::SeqCst) {
                    0 => StatusCode::OK,
                    code => StatusCode::from_u16(code).expect("a valid status"),
                };
                async move { (status, "ok") }
            }))
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    /// Serves on `listener` in the background.
    fn serve_on(&self, listener: TcpListener) {
        let app = self.router();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }

    /// Serves on a free port; its base URL.
    async fn start(&self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        self.serve_on(listener);
        url
    }
}

/// An address where nothing listens (connecting is refused), that a test may later listen
/// on.
async fn refused_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// An instance that accepts connections and never answers.
async fn silent_instance() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    url
}

fn pool(urls: &[String], backoff: Duration) -> UpstreamPool {
    pool_with(
        urls,
        EjectionPolicy {
            backoff,
            max_backoff: backoff * 4,
            server_errors: 3,
        },
    )
}

fn pool_with(urls: &[String], policy: EjectionPolicy) -> UpstreamPool {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    UpstreamPool::http("matching-service", &http, urls, None, policy).unwrap()
}

async fn send(pool: &UpstreamPool, method: Method, path: &str) -> Result<StatusCode, String> {
    pool.send(
        method,
        &Uri::try_from(path).unwrap(),
        &HeaderMap::new(),
        Bytes::from_static(b"{}"),
    )
    .await
    .map(|response| response.status())
    .map_err(|e| e.to_string())
}

/// Polls `condition` until it holds, failing after a generous deadline.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn requests_take_turns_over_idle_instances() {
    let (a, b) = (FakeInstance::default(), FakeInstance::default());
    let urls = vec![a.start().await, b.start().await];
    let pool = pool(&urls, Duration::from_secs(60));
    for _ in 0..10 {
        assert_eq!(
            send(&pool, Method::GET, "/v1/queue").await,
            Ok(StatusCode::OK)
        );
    }
    assert_eq!((a.served(), b.served()), (5, 5));
}

#[tokio::test]
async fn an_instance_busy_with_a_request_gets_none_of_the_next_ones() {
    let (a, b) = (FakeInstance::default(), FakeInstance::default());
    let urls = vec![a.start().await, b.start().await];
    let pool = pool(&urls, Duration::from_secs(60));
    let slow = tokio::spawn({
        let pool = pool.clone();
        async move { send(&pool, Method::GET, "/slow").await }
    });
    // One of them holds the slow request; wait until it has it.
    let busy_is_a = tokio::select! {
        () = a.slow_started.notified() => true,
        () = b.slow_started.notified() => false,
    };
    for _ in 0..6 {
        assert_eq!(
            send(&pool, Method::GET, "/v1/queue").await,
            Ok(StatusCode::OK)
        );
    }
    let (busy, idle) = if busy_is_a { (&a, &b) } else { (&b, &a) };
    assert_eq!(busy.served(), 1, "only the slow request");
    assert_eq!(idle.served(), 6);
    busy.release.notify_one();
    assert_eq!(slow.await.unwrap(), Ok(StatusCode::OK));
}

#[tokio::test]
async fn a_post_to_an_instance_that_refuses_connections_goes_to_another_and_ejects_it() {
    let live = FakeInstance::default();
    let dead = refused_address().await;
    let urls = vec![format!("http://{dead}"), live.start().await];
    let pool = pool(&urls, Duration::from_secs(60));
    assert_eq!(pool.healthy(), 2);
    // The first request of a fresh pool goes to the first instance: the refused one.
    for _ in 0..4 {
        assert_eq!(
            send(&pool, Method::POST, "/v1/queue").await,
            Ok(StatusCode::OK)
        );
    }
    assert_eq!(live.served(), 4);
    assert_eq!(pool.healthy(), 1, "the refusing instance is out");
}

#[tokio::test]
async fn a_post_that_timed_out_is_not_sent_again() {
    let live = FakeInstance::default();
    let urls = vec![silent_instance().await, live.start().await];
    let pool = pool(&urls, Duration::from_secs(60));
    // The first request of a fresh pool goes to the first instance: the silent one.
    let outcome = send(&pool, Method::POST, "/v1/queue").await;
    assert!(outcome.is_err(), "{outcome:?}");
    assert_eq!(
        live.served(),
        0,
        "the POST may have reached the silent instance"
    );
    assert_eq!(pool.healthy(), 1, "the silent instance is out");
    // The next goes to the live one.
    assert_eq!(
        send(&pool, Method::POST, "/v1/queue").await,
        Ok(StatusCode::OK)
    );
}

#[tokio::test]
async fn a_get_that_timed_out_is_sent_to_another_instance() {
    let live = FakeInstance::default();
    let urls = vec![silent_instance().await, live.start().await];
    let pool = pool(&urls, Duration::from_secs(60));
    assert_eq!(
        send(&pool, Method::GET, "/v1/queue").await,
        Ok(StatusCode::OK)
    );
    assert_eq!(live.served(), 1);
    assert_eq!(pool.healthy(), 1);
}

#[tokio::test]
async fn an_ejected_instance_is_readmitted_only_once_its_readiness_answers_200() {
    let comeback = FakeInstance::default();
    comeback.not_ready.store(true, Ordering::SeqCst);
    let live = FakeInstance::default();
    let address = refused_address().await;
    let urls = vec![format!("http://{address}"), live.start().await];
    let pool = pool(&urls, Duration::from_millis(20));
    pool.spawn_probe();
    assert_eq!(
        send(&pool, Method::GET, "/v1/queue").await,
        Ok(StatusCode::OK)
    );
    assert_eq!(pool.healthy(), 1);

    // It comes back, but not ready: probed and kept out.
    comeback.serve_on(TcpListener::bind(address).await.unwrap());
    eventually("two probes of the instance", || {
        comeback.probes.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert_eq!(pool.healthy(), 1, "an instance that is not ready stays out");

    comeback.not_ready.store(false, Ordering::SeqCst);
    eventually("the instance is re-admitted", || pool.healthy() == 2).await;
    for _ in 0..4 {
        assert_eq!(
            send(&pool, Method::GET, "/v1/queue").await,
            Ok(StatusCode::OK)
        );
    }
    assert_eq!(comeback.served(), 2, "back in the rotation");
}

#[tokio::test]
async fn when_every_instance_is_ejected_all_of_them_are_still_tried() {
    let (first, second) = (refused_address().await, refused_address().await);
    let urls = vec![format!("http://{first}"), format!("http://{second}")];
    // No probe runs: only requests can find the instance back.
    let pool = pool(&urls, Duration::from_secs(3600));
    assert!(send(&pool, Method::GET, "/v1/queue").await.is_err());
    assert_eq!(pool.healthy(), 0);

    let back = FakeInstance::default();
    back.serve_on(TcpListener::bind(second).await.unwrap());
    assert_eq!(
        send(&pool, Method::POST, "/v1/queue").await,
        Ok(StatusCode::OK)
    );
    assert_eq!(back.served(), 1);
}

#[tokio::test]
async fn an_instance_answering_a_run_of_503s_leaves_the_rotation_until_ready_again() {
    let (sick, well) = (FakeInstance::default(), FakeInstance::default());
    sick.answer.store(503, Ordering::SeqCst);
    sick.not_ready.store(true, Ordering::SeqCst);
    let urls = vec![sick.start().await, well.start().await];
    let pool = pool(&urls, Duration::from_millis(20));
    pool.spawn_probe();
    // POSTs are not sent again: the caller sees each 503 the sick instance gives, until
    // the third in a row takes it out.
    let mut unavailable = 0;
    for _ in 0..6 {
        match send(&pool, Method::POST, "/v1/queue").await {
            Ok(StatusCode::OK) => {}
            Ok(StatusCode::SERVICE_UNAVAILABLE) => unavailable += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(unavailable, 3, "three answers in a row, then out");
    assert_eq!(pool.healthy(), 1);
    let before = well.served();
    for _ in 0..4 {
        assert_eq!(
            send(&pool, Method::POST, "/v1/queue").await,
            Ok(StatusCode::OK)
        );
    }
    assert_eq!(well.served(), before + 4, "the sick instance gets none");
    eventually("a probe of the ejected instance", || {
        sick.probes.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert_eq!(pool.healthy(), 1, "not ready: it stays out");

    // It recovers: its readiness answers 200 and the probe lets it back in.
    sick.answer.store(0, Ordering::SeqCst);
    sick.not_ready.store(false, Ordering::SeqCst);
    eventually("the instance is re-admitted", || pool.healthy() == 2).await;
    let before = sick.served();
    for _ in 0..4 {
        assert_eq!(
            send(&pool, Method::POST, "/v1/queue").await,
            Ok(StatusCode::OK)
        );
    }
    assert_eq!(sick.served(), before + 2, "back in the rotation");
}

#[tokio::test]
async fn an_instance_answering_502_or_504_is_ejected_when_the_policy_says_one_is_enough() {
    for code in [502, 504] {
        let (sick, well) = (FakeInstance::default(), FakeInstance::default());
        sick.answer.store(code, Ordering::SeqCst);
        let urls = vec![sick.start().await, well.start().await];
        let pool = pool_with(
            &urls,
            EjectionPolicy {
                backoff: Duration::from_secs(3600),
                max_backoff: Duration::from_secs(3600),
                server_errors: 1,
            },
        );
        // The first request of a fresh pool goes to the first instance: the sick one.
        assert_eq!(
            send(&pool, Method::POST, "/v1/queue").await,
            Ok(StatusCode::from_u16(code).unwrap())
        );
        assert_eq!(pool.healthy(), 1, "{code} ejects at once");
        for _ in 0..3 {
            assert_eq!(
                send(&pool, Method::POST, "/v1/queue").await,
                Ok(StatusCode::OK)
            );
        }
        assert_eq!((sick.served(), well.served()), (1, 3));
    }
}

#[tokio::test]
async fn a_get_answered_503_is_sent_to_another_instance_and_a_post_is_not() {
    let (sick, well) = (FakeInstance::default(), FakeInstance::default());
    sick.answer.store(503, Ordering::SeqCst);
    let urls = vec![sick.start().await, well.start().await];
    let pool = pool(&urls, Duration::from_secs(3600));
    // The first request of a fresh pool goes to the first instance: the sick one.
    assert_eq!(
        send(&pool, Method::GET, "/v1/queue").await,
        Ok(StatusCode::OK)
    );
    assert_eq!((sick.served(), well.served()), (1, 1));
    // Two POSTs take one instance each; the sick one's answer reaches the caller.
    let mut statuses = vec![
        send(&pool, Method::POST, "/v1/queue").await.unwrap(),
        send(&pool, Method::POST, "/v1/queue").await.unwrap(),
    ];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE],
        "a POST that reached an instance is not repeated"
    );
    assert_eq!((sick.served(), well.served()), (2, 2));
}

#[tokio::test]
async fn other_answers_break_a_run_and_a_500_never_ejects() {
    let (flaky, well) = (FakeInstance::default(), FakeInstance::default());
    let urls = vec![flaky.start().await, well.start().await];
    let pool = pool(&urls, Duration::from_secs(3600));
    // Requests alternate, the flaky instance taking the even ones: two 503s, a 200, two
    // 503s never make three in a row.
    for answer in [503, 503, 0, 503, 503, 500, 500, 500, 500] {
        flaky.answer.store(answer, Ordering::SeqCst);
        let mut statuses = Vec::new();
        for _ in 0..2 {
            statuses.push(send(&pool, Method::POST, "/v1/queue").await.unwrap());
        }
        assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");
        assert_eq!(pool.healthy(), 2, "after an answer {answer}");
    }
    assert_eq!(flaky.served(), 9);
}

#[tokio::test]
async fn the_gateway_balances_and_reports_upstream_metrics() {
    // Install the recorder before anything is counted.
    let _ = service_kit::telemetry::metrics_handle();
    let signer = TokenSigner::generate(DEFAULT_ISSUER, DEFAULT_AUDIENCE);
    let verifier =
        TokenVerifier::from_jwks(DEFAULT_ISSUER, DEFAULT_AUDIENCE, &signer.jwks()).unwrap();
    let (a, b) = (FakeInstance::default(), FakeInstance::default());
    let dead = refused_address().await;
    let urls = vec![format!("http://{dead}"), a.start().await, b.start().await];
    let unused = || ServiceClient::in_process("unused", Router::new(), None).into();
    let upstreams = Upstreams {
        auth: unused(),
        message: unused(),
        matching: pool(&urls, Duration::from_secs(3600)),
        ws: WsUpstream::InProcess(Router::new()),
    };
    let state = AppState::new(upstreams, verifier, Limits::default());
    let operators = gateway::operator_app(state.clone());
    let app = gateway::app(state);
    let (token, _) = signer.sign(Uuid::new_v4(), Uuid::new_v4(), Duration::from_secs(60));
    for _ in 0..6 {
        let response = app
            .clone()
            .oneshot(
                Request::post("/v1/queue")
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from("{}"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(a.served() + b.served(), 6);
    assert!(
        a.served() >= 2 && b.served() >= 2,
        "{} / {}",
        a.served(),
        b.served()
    );

    let metrics = operators
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(metrics.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let dead_label = format!("upstream=\"http://{dead}\"");
    let line = |name: &str, needles: &[&str]| {
        text.lines()
            .find(|l| l.starts_with(name) && needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned)
    };
    assert!(
        line(
            "gateway_upstream_ejections_total",
            &[&dead_label, "service=\"matching-service\""]
        )
        .is_some_and(|l| l.ends_with(" 1")),
        "{text}"
    );
    assert!(
        line(
            "gateway_upstream_requests_total",
            &[&dead_label, "outcome=\"connect_failed\""]
        )
        .is_some(),
        "{text}"
    );
    assert!(
        line("gateway_upstream_requests_total", &["outcome=\"answered\""]).is_some(),
        "{text}"
    );
    // The gauge is per service; other tests of this binary build pools of the same
    // service, so only its presence is certain here (pool.healthy() is checked above).
    assert!(
        line(
            "gateway_upstream_healthy_instances",
            &["service=\"matching-service\""]
        )
        .is_some(),
        "{text}"
    );
}
