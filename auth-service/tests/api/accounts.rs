//! Sign up, log in and their errors.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use auth_service::AuthConfig;
use auth_service::throttle::ThrottleConfig;
use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, username};

#[tokio::test]
async fn sign_up_answers_the_profile_and_working_tokens() {
    let app = TestApp::spawn().await;
    let name = username("Alice");

    let response = app.signup(TestApp::signup_body(&name)).await;

    response.assert_status(StatusCode::CREATED);
    let user = &response.body["user"];
    assert_eq!(user["username"], name.to_lowercase());
    assert_eq!(user["display_name"], "Test User");
    assert_eq!(user["interests"], json!(["rust", "jazz"]));
    assert_eq!(user["preferences"]["min_age"], 18);
    assert_eq!(user["preferences"]["max_age"], 120);
    let tokens = &response.body["tokens"];
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    assert_eq!(tokens["user_id"], user["id"]);
    let access = tokens["access_token"].as_str().unwrap();
    let me = app.me(access).await;
    me.assert_status(StatusCode::OK);
    assert_eq!(me.body["id"], user["id"]);
}

#[tokio::test]
async fn a_duplicate_username_in_another_case_is_409() {
    let app = TestApp::spawn().await;
    let name = username("bob");
    app.signup_user(&name).await;

    let response = app.signup(TestApp::signup_body(&name.to_uppercase())).await;

    response.assert_status(StatusCode::CONFLICT);
    assert_eq!(response.error_code(), "username_taken");
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let app = TestApp::spawn().await;
    let name = username("carol");
    let cases = [
        ("username", json!("ab"), "invalid_username"),
        ("username", json!("has space"), "invalid_username"),
        ("password", json!("short"), "invalid_password"),
        ("password", json!(name.clone()), "invalid_password"),
        ("display_name", json!("   "), "invalid_display_name"),
        (
            "display_name",
            json!("x".repeat(65)),
            "invalid_display_name",
        ),
        (
            "birth_date",
            json!(format!("{}-01-01", wire::domain::today_utc().year() - 17)),
            "too_young",
        ),
        ("interests", json!(["ok", ""]), "invalid_interest"),
        (
            "interests",
            json!((0..21).map(|i| format!("t{i}")).collect::<Vec<_>>()),
            "too_many_interests",
        ),
    ];
    for (field, value, code) in cases {
        let mut body = TestApp::signup_body(&name);
        body[field] = value.clone();

        let response = app.signup(body).await;

        response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(response.error_field(), field, "for {field} = {value}");
        assert_eq!(response.error_code(), code, "for {field} = {value}");
    }
    // Nothing was created by the refused requests.
    app.login(&name, PASSWORD)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_malformed_body_gets_the_uniform_error() {
    let app = TestApp::spawn().await;

    let response = app.signup(json!({"username": "dave"})).await;

    response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "missing_field");
    assert_eq!(response.error_field(), "password");

    // A value of the wrong kind names its field, in our own words.
    let mut body = TestApp::signup_body("dave");
    body["gender"] = json!("robot");
    let response = app.signup(body).await;
    response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(response.error_field(), "gender");

    // A body that is not JSON at all has no field to name.
    let response = app.signup_raw("{not json").await;
    response.assert_error(StatusCode::BAD_REQUEST, "malformed_json");
}

#[tokio::test]
async fn log_in_works_with_the_username_in_any_case() {
    let app = TestApp::spawn().await;
    let name = username("erin");
    let first = app.signup_user(&name).await;

    let tokens = app.login_tokens(&name.to_uppercase(), PASSWORD).await;

    assert_eq!(tokens.user_id, first.user_id);
    assert_ne!(
        tokens.session_id, first.session_id,
        "each log in is a new session"
    );
    app.me(&tokens.access).await.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_user_and_a_wrong_password_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let name = username("frank");
    app.signup_user(&name).await;

    let wrong_password = app.login(&name, "not the password").await;
    let unknown_user = app.login(&username("nobody"), PASSWORD).await;
    let impossible_name = app.login("no such name!", PASSWORD).await;

    for response in [&wrong_password, &unknown_user, &impossible_name] {
        response.assert_status(StatusCode::UNAUTHORIZED);
        assert_eq!(response.body, wrong_password.body);
    }
    assert_eq!(wrong_password.error_code(), "invalid_credentials");
}

fn strict_throttle() -> AuthConfig {
    AuthConfig {
        throttle: ThrottleConfig {
            per_pair: 3,
            per_account: 6,
            per_ip: 50,
            max_lockout: Duration::from_secs(30),
            ..ThrottleConfig::default()
        },
        ..AuthConfig::default()
    }
}

#[tokio::test]
async fn repeated_failed_log_ins_get_429_with_retry_after() {
    let app = TestApp::with_config(strict_throttle()).await;
    let name = username("grace");
    app.signup_user(&name).await;
    let attacker = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    for _ in 0..3 {
        app.login_from(&name, "wrong password", attacker)
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }

    let response = app.login_from(&name, PASSWORD, attacker).await;

    response.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.error_code(), "too_many_attempts");
    let retry_after: u64 = response.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "retry after {retry_after}");
    // Another client of the same account is not locked out by this one.
    let owner = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
    app.login_from(&name, PASSWORD, owner)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn many_failing_ips_do_not_lock_out_the_owner_at_a_known_ip() {
    let app = TestApp::with_config(strict_throttle()).await;
    let name = username("heidi");
    app.signup_user(&name).await;
    let owner = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2));
    app.login_from(&name, PASSWORD, owner)
        .await
        .assert_status(StatusCode::OK);
    for n in 0..6 {
        let attacker = IpAddr::V4(Ipv4Addr::new(203, 0, 113, n));
        app.login_from(&name, "wrong password", attacker)
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }

    let stranger = app
        .login_from(&name, PASSWORD, IpAddr::V4(Ipv4Addr::new(203, 0, 113, 99)))
        .await;
    let from_owner = app.login_from(&name, PASSWORD, owner).await;

    stranger.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(stranger.headers.contains_key("retry-after"));
    from_owner.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn a_successful_log_in_resets_the_failures_of_its_client() {
    let app = TestApp::with_config(strict_throttle()).await;
    let name = username("ivan");
    app.signup_user(&name).await;
    let ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 3));
    for _ in 0..2 {
        app.login_from(&name, "wrong password", ip).await;
    }
    app.login_from(&name, PASSWORD, ip)
        .await
        .assert_status(StatusCode::OK);

    for _ in 0..3 {
        app.login_from(&name, "wrong password", ip)
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn sign_ups_past_the_per_ip_burst_get_429_and_other_ips_do_not() {
    let app = TestApp::with_config(AuthConfig {
        signup_burst_per_ip: 3,
        signup_refill: Duration::from_secs(600),
        ..AuthConfig::default()
    })
    .await;
    let busy = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    for i in 0..3 {
        app.signup_from(TestApp::signup_body(&username(&format!("s{i}"))), busy)
            .await
            .assert_status(StatusCode::CREATED);
    }

    let refused = app
        .signup_from(TestApp::signup_body(&username("s3")), busy)
        .await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(refused.headers.contains_key("retry-after"));

    let elsewhere = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 8));
    app.signup_from(TestApp::signup_body(&username("s4")), elsewhere)
        .await
        .assert_status(StatusCode::CREATED);
}

#[tokio::test]
async fn a_taken_name_is_refused_before_any_password_is_hashed() {
    // One hash at a time and no queue: a sign-up that reached the hasher while another
    // hashes would be shed with 503. Every one of these must be a plain 409.
    let app = TestApp::with_config(AuthConfig {
        argon2_concurrency: 1,
        argon2_max_queue: 0,
        ..AuthConfig::default()
    })
    .await;
    let name = username("taken");
    app.signup_user(&name).await;

    let attempts = (0..20).map(|i| {
        let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, i));
        app.signup_from(TestApp::signup_body(&name), ip)
    });
    for response in futures::future::join_all(attempts).await {
        response.assert_error(StatusCode::CONFLICT, "username_taken");
    }
}

#[tokio::test]
async fn sign_ups_past_the_hashing_queue_are_shed_with_503() {
    let app = TestApp::with_config(AuthConfig {
        argon2_concurrency: 1,
        argon2_max_queue: 0,
        ..AuthConfig::default()
    })
    .await;
    let attempts = (0..8).map(|i| {
        let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, i));
        app.signup_from(TestApp::signup_body(&username(&format!("q{i}"))), ip)
    });
    let responses = futures::future::join_all(attempts).await;
    let created = responses
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let shed: Vec<_> = responses
        .iter()
        .filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(created >= 1, "the first sign-up gets the hasher");
    assert!(
        !shed.is_empty(),
        "with no queue, concurrent sign-ups are shed"
    );
    assert_eq!(created + shed.len(), responses.len());
    for response in shed {
        assert_eq!(response.error_code(), "overloaded");
        assert!(response.headers.contains_key("retry-after"));
    }
}
