//! Refresh, log out, and refused access tokens.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

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
async fn reusing_a_rotated_refresh_token_ends_the_whole_family() {
    let app = TestApp::spawn().await;
    let first = app.signup_user(&username("ben")).await;
    let second = app.refresh_tokens(&first.refresh).await;

    let reuse = app.refresh(&first.refresh).await;

    reuse.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(reuse.error_code(), "refresh_token_reused");
    // The legitimate latest token of the family is dead too.
    let latest = app.refresh(&second.refresh).await;
    latest.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(latest.error_code(), "invalid_refresh_token");
    let sessions = app.sessions(&second.access).await;
    assert_eq!(sessions.body, json!([]));
}

#[tokio::test]
async fn two_concurrent_refreshes_with_one_token_give_exactly_one_success() {
    let app = TestApp::spawn().await;
    for _ in 0..5 {
        let tokens = app.signup_user(&username("cat")).await;

        let (a, b) = tokio::join!(app.refresh(&tokens.refresh), app.refresh(&tokens.refresh));

        let successes = [&a, &b]
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .count();
        assert_eq!(successes, 1, "answers: {} / {}", a.body, b.body);
        let loser = if a.status == StatusCode::OK { &b } else { &a };
        loser.assert_status(StatusCode::UNAUTHORIZED);
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
    // Logging out twice is harmless.
    app.logout(&signup.access)
        .await
        .assert_status(StatusCode::NO_CONTENT);
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
