//! Refresh, log out, and refused access tokens.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use auth_service::AuthConfig;

use crate::helpers::{PASSWORD, TestApp, username};

#[tokio::test]
async fn a_refresh_rotates_the_token_and_keeps_the_session() {
    let app = TestApp::spawn().await;
    let first = app.signup_user(&username("ann")).await;

    let second = app.refresh_tokens(&first.refresh).await;

    assert_eq!(second.session_id, first.session_id);
    assert_ne!(second.refresh, first.refresh);
    app.me(&second.access).await.assert_status(StatusCode::OK);
    let third = app.refresh_tokens(&second.refresh).await;
    assert_eq!(third.session_id, first.session_id);
}

#[tokio::test]
async fn reusing_an_older_refresh_token_ends_the_whole_family() {
    let app = TestApp::spawn().await;
    let first = app.signup_user(&username("ben")).await;
    let second = app.refresh_tokens(&first.refresh).await;
    let third = app.refresh_tokens(&second.refresh).await;

    // `first` is two refreshes old: no grace, whenever it comes back.
    let reuse = app.refresh(&first.refresh).await;

    reuse.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(reuse.error_code(), "refresh_token_reused");
    // The legitimate latest token of the family is dead too, and so is its access token.
    let latest = app.refresh(&third.refresh).await;
    latest.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(latest.error_code(), "invalid_refresh_token");
    let sessions = app.sessions(&second.access).await;
    sessions.assert_error(StatusCode::UNAUTHORIZED, "session_ended");
}

#[tokio::test]
async fn without_a_grace_window_the_replaced_token_is_reuse_at_once() {
    let app = TestApp::with_config(AuthConfig {
        refresh_grace: Duration::ZERO,
        ..AuthConfig::default()
    })
    .await;
    let first = app.signup_user(&username("bea")).await;
    let second = app.refresh_tokens(&first.refresh).await;

    app.refresh(&first.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh_token_reused");
    app.refresh(&second.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
}

#[tokio::test]
async fn a_retried_refresh_within_the_grace_window_gets_the_same_new_token() {
    let app = TestApp::spawn().await;
    let first = app.signup_user(&username("bob")).await;
    // The answer to this refresh is "lost"; the client retries with the same token.
    let lost = app.refresh_tokens(&first.refresh).await;

    let retried = app.refresh_tokens(&first.refresh).await;

    assert_eq!(
        retried.refresh, lost.refresh,
        "the same successor, not a new one"
    );
    assert_eq!(retried.session_id, first.session_id);
    app.me(&retried.access).await.assert_status(StatusCode::OK);
    app.me(&lost.access).await.assert_status(StatusCode::OK);
    // The family carries on from the successor.
    let next = app.refresh_tokens(&retried.refresh).await;
    assert_eq!(next.session_id, first.session_id);
    // Once that successor has itself been replaced, the first token is plain reuse.
    app.refresh(&first.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "refresh_token_reused");
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_all_get_the_same_new_token() {
    let app = TestApp::spawn().await;
    for _ in 0..5 {
        let tokens = app.signup_user(&username("cat")).await;

        let (a, b) = tokio::join!(app.refresh(&tokens.refresh), app.refresh(&tokens.refresh));

        a.assert_status(StatusCode::OK);
        b.assert_status(StatusCode::OK);
        assert_eq!(
            a.body["refresh_token"], b.body["refresh_token"],
            "both get the winner's token"
        );
        // The session lives on: the new token refreshes.
        let winner = a.body["refresh_token"].as_str().unwrap();
        app.refresh(winner).await.assert_status(StatusCode::OK);
    }
}

#[tokio::test]
async fn an_unknown_refresh_token_is_401() {
    let app = TestApp::spawn().await;
    for token in ["", "short", &URL_SAFE_NO_PAD.encode([7u8; 32])] {
        let response = app.refresh(token).await;
        response.assert_status(StatusCode::UNAUTHORIZED);
        assert_eq!(response.error_code(), "invalid_refresh_token");
    }
}

#[tokio::test]
async fn log_out_ends_the_session_of_the_token() {
    let app = TestApp::spawn().await;
    let name = username("dan");
    let signup = app.signup_user(&name).await;
    let other = app.login_tokens(&name, PASSWORD).await;

    app.logout(&signup.access)
        .await
        .assert_status(StatusCode::NO_CONTENT);

    app.refresh(&signup.refresh)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.refresh_tokens(&other.refresh).await;
    // The ended session's access token is refused from now on, log out included.
    app.logout(&signup.access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "session_ended");
    app.me(&other.access).await.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn log_out_needs_an_access_token() {
    let app = TestApp::spawn().await;
    let response = app
        .send(Method::POST, "/v1/auth/logout", None, None, &[])
        .await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert!(response.headers.contains_key("www-authenticate"));
}

fn claims(app: &TestApp, user_id: &str, session_id: &str) -> serde_json::Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let _ = app;
    json!({
        "iss": service_kit::token::DEFAULT_ISSUER,
        "aud": service_kit::token::DEFAULT_AUDIENCE,
        "sub": user_id,
        "exp": now + 600,
        "iat": now,
        "jti": uuid::Uuid::new_v4(),
        "typ": "access",
        "sid": session_id,
    })
}

fn eddsa_header(app: &TestApp) -> Header {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(app.signer.kid().to_owned());
    header.typ = Some("at+jwt".to_owned());
    header
}

fn sign_eddsa(app: &TestApp, claims: &serde_json::Value) -> String {
    let body: String = app
        .signing_key
        .expose()
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let key = EncodingKey::from_ed_der(&der);
    jsonwebtoken::encode(&eddsa_header(app), claims, &key).unwrap()
}

#[tokio::test]
async fn a_token_signed_by_hand_with_our_key_is_accepted() {
    // Proves the forged variants below fail for their one defect, not for the harness.
    let app = TestApp::spawn().await;
    let tokens = app.signup_user(&username("eve")).await;
    let token = sign_eddsa(&app, &claims(&app, &tokens.user_id, &tokens.session_id));
    app.me(&token).await.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn refused_access_tokens_are_401_on_get_me() {
    let app = TestApp::spawn().await;
    let tokens = app.signup_user(&username("fay")).await;
    let good = claims(&app, &tokens.user_id, &tokens.session_id);
    let payload = URL_SAFE_NO_PAD.encode(good.to_string());

    let alg_none = {
        let header = URL_SAFE_NO_PAD
            .encode(json!({"alg": "none", "typ": "at+jwt", "kid": app.signer.kid()}).to_string());
        format!("{header}.{payload}.")
    };
    let hs256_with_public_key = {
        let jwks = app.jwks().await.body;
        let public_x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
        let public_raw = URL_SAFE_NO_PAD.decode(&public_x).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(app.signer.kid().to_owned());
        header.typ = Some("at+jwt".to_owned());
        [
            jsonwebtoken::encode(
                &header,
                &good,
                &EncodingKey::from_secret(public_x.as_bytes()),
            )
            .unwrap(),
            jsonwebtoken::encode(&header, &good, &EncodingKey::from_secret(&public_raw)).unwrap(),
        ]
    };
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.example");
    let mut expired = good.clone();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    expired["iat"] = json!(now - 3600);
    expired["exp"] = json!(now - 60);
    let mut wrong_typ = good.clone();
    wrong_typ["typ"] = json!("refresh");
    let other_key = service_kit::token::TokenSigner::generate(
        service_kit::token::DEFAULT_ISSUER,
        service_kit::token::DEFAULT_AUDIENCE,
    )
    .sign(
        tokens.user_id.parse().unwrap(),
        tokens.session_id.parse().unwrap(),
        Duration::from_secs(600),
    )
    .0;

    let cases: Vec<(&str, String)> = vec![
        ("alg none", alg_none),
        (
            "HS256 keyed with the public key (base64)",
            hs256_with_public_key[0].clone(),
        ),
        (
            "HS256 keyed with the public key (raw)",
            hs256_with_public_key[1].clone(),
        ),
        ("wrong aud", sign_eddsa(&app, &wrong_aud)),
        ("wrong iss", sign_eddsa(&app, &wrong_iss)),
        ("expired", sign_eddsa(&app, &expired)),
        ("wrong typ claim", sign_eddsa(&app, &wrong_typ)),
        ("another key", other_key),
        ("a refresh token", tokens.refresh.clone()),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (what, token) in cases {
        let response = app.me(&token).await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            response.body
        );
        assert!(response.headers.contains_key("www-authenticate"), "{what}");
    }
    let expired = app.me(&sign_eddsa(&app, &expired)).await;
    assert_eq!(expired.error_code(), "token_expired");
}

#[tokio::test]
async fn the_jwks_publishes_the_signing_key() {
    let app = TestApp::spawn().await;
    let response = app.jwks().await;
    response.assert_status(StatusCode::OK);
    let keys = response.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], app.signer.kid());
    assert_eq!(keys[0]["alg"], "EdDSA");
    assert!(keys[0].get("d").is_none(), "no private part");
}

#[tokio::test]
async fn a_log_in_beyond_the_session_cap_ends_the_oldest_session() {
    let app = TestApp::with_config(AuthConfig {
        max_sessions: 2,
        ..AuthConfig::default()
    })
    .await;
    let name = username("eve");
    let first = app.signup_user(&name).await;
    let second = app.login_tokens(&name, PASSWORD).await;

    let third = app.login_tokens(&name, PASSWORD).await;

    app.refresh(&first.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    app.me(&first.access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "session_ended");
    let listed = app.sessions(&third.access).await;
    listed.assert_status(StatusCode::OK);
    let ids: Vec<&str> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{}", listed.body);
    assert!(ids.contains(&second.session_id.as_str()));
    assert!(ids.contains(&third.session_id.as_str()));
}
