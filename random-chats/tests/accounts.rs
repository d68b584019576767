//! Accounts end to end through the gateway of the one-process platform, over real HTTP:
//! sign up, log in, refresh, log out, profile, password change, sessions, refused tokens,
//! validation and conflicts.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use client_sdk::Client;
use client_sdk::api::auth::{Preferences, SignupRequest, UpdateProfileRequest};
use client_sdk::api::matching::{InterestMode, JoinQueueRequest, QueueState};
use client_sdk::api::message::ReportRequest;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use random_chats::{Platform, PlatformConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wire::domain::Gender;

const PASSWORD: &str = "correct horse battery";

/// A platform with its data in a fresh temporary directory (removed on drop), so that the
/// tests can read the signing key to forge tokens, and restart on the same data.
struct TestPlatform {
    platform: Option<Platform>,
    dir: PathBuf,
    http: reqwest::Client,
}

impl TestPlatform {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(test_support::unique_name("rc_platform"));
        let platform = Platform::start(config(&dir))
            .await
            .expect("platform starts");
        Self {
            platform: Some(platform),
            dir,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.platform().gateway_url())
    }

    fn platform(&self) -> &Platform {
        self.platform.as_ref().expect("running")
    }

    fn client(&self) -> Client {
        Client::new(&self.platform().gateway_url()).unwrap()
    }

    /// Stops the platform and starts it again on the same data directory.
    async fn restart(&mut self) {
        self.platform.take().expect("running").shutdown().await;
        self.platform = Some(Platform::start(config(&self.dir)).await.expect("restarts"));
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the gateway answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, body)
    }

    /// Signs `claims` with the platform's own key, read from its data directory.
    async fn sign(&self, claims: &Value) -> String {
        let pem = std::fs::read_to_string(self.dir.join("signing-key.pem")).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let key = EncodingKey::from_ed_der(&STANDARD.decode(body).unwrap());
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid().await);
        header.typ = Some("at+jwt".to_owned());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    async fn jwks(&self) -> Value {
        let (status, _, body) = self
            .request(reqwest::Method::GET, "/.well-known/jwks.json", None, None)
            .await;
        assert_eq!(status, StatusCode::OK);
        body
    }

    async fn kid(&self) -> String {
        self.jwks().await["keys"][0]["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

impl Drop for TestPlatform {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(dir: &std::path::Path) -> PlatformConfig {
    let mut config = PlatformConfig::new(([127, 0, 0, 1], 0).into(), Some(dir.to_owned()));
    // Tests hammer one IP; the per-IP limit is not under test here.
    config.limits.rate_per_second = 10_000;
    config.limits.rate_burst = 10_000;
    config
}

fn username(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

fn signup_request(username: &str) -> SignupRequest {
    SignupRequest {
        username: username.to_owned(),
        password: PASSWORD.to_owned(),
        display_name: format!("{username} display"),
        gender: Gender::Female,
        birth_date: time::macros::date!(1995 - 04 - 23),
        interests: vec![
            "  Chess ".to_owned(),
            "music".to_owned(),
            "chess".to_owned(),
        ],
    }
}

#[tokio::test]
async fn sign_up_log_in_refresh_edit_and_log_out() {
    let platform = TestPlatform::start().await;
    let name = username("ann");
    let client = platform.client();

    let signup = client.signup(&signup_request(&name)).await.unwrap();
    assert_eq!(signup.user.username, name);
    assert_eq!(signup.user.interests, vec!["chess", "music"], "normalised");
    assert_eq!(client.me().await.unwrap().id, signup.user.id);

    let edited = client
        .update_profile(&UpdateProfileRequest {
            display_name: Some("Ann B.".to_owned()),
            interests: Some(vec!["Hiking".to_owned()]),
            ..UpdateProfileRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(edited.display_name, "Ann B.");
    assert_eq!(edited.interests, vec!["hiking"]);
    let wanted = Preferences {
        genders: vec![Gender::Male, Gender::Other],
        min_age: 20,
        max_age: 35,
        interests: vec!["hiking".to_owned()],
        ..Default::default()
    };
    assert_eq!(client.set_preferences(&wanted).await.unwrap(), wanted);
    assert_eq!(client.me().await.unwrap().preferences, wanted);

    // A second device logs in; both sessions are listed.
    let phone = platform.client();
    phone.login(&name.to_uppercase(), PASSWORD).await.unwrap();
    assert_eq!(client.sessions().await.unwrap().len(), 2);

    let before = client.tokens().await.unwrap();
    let after = client.refresh().await.unwrap();
    assert_ne!(after.refresh_token, before.refresh_token);
    assert_eq!(after.session_id, before.session_id);
    assert_eq!(client.me().await.unwrap().display_name, "Ann B.");

    // Ending the phone's session from the first device ends it there.
    let phone_session = phone.tokens().await.unwrap().session_id;
    client.end_session(phone_session).await.unwrap();
    let err = phone.refresh().await.unwrap_err();
    assert!(matches!(err, client_sdk::Error::SessionEnded), "{err}");

    client.logout().await.unwrap();
    let (status, _, body) = platform
        .request(
            reqwest::Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": after.refresh_token})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn a_password_change_ends_every_other_session() {
    let platform = TestPlatform::start().await;
    let name = username("ben");
    let laptop = platform.client();
    laptop.signup(&signup_request(&name)).await.unwrap();
    let phone = platform.client();
    phone.login(&name, PASSWORD).await.unwrap();

    laptop
        .change_password(PASSWORD, "a much better secret")
        .await
        .unwrap();

    let err = phone.refresh().await.unwrap_err();
    assert!(matches!(err, client_sdk::Error::SessionEnded), "{err}");
    let sessions = laptop.sessions().await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].current);
    laptop
        .refresh()
        .await
        .expect("the changing session lives on");
    let old = platform.client().login(&name, PASSWORD).await.unwrap_err();
    assert_eq!(old.status(), Some(StatusCode::UNAUTHORIZED));
    platform
        .client()
        .login(&name, "a much better secret")
        .await
        .unwrap();
}

/// Opens a WebSocket with `token` and answers the close code the server ends it with.
async fn close_code_of_socket(url: &str, token: &str) -> impl std::future::Future<Output = u16> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let ws_url = format!("{}/v1/ws", url.replacen("http", "ws", 1));
    let mut request = ws_url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "rc.v1".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the socket opens");
    async move {
        while let Some(frame) = socket.next().await {
            if let Ok(tokio_tungstenite::tungstenite::Message::Close(close)) = frame {
                return close.map_or(1005, |c| u16::from(c.code));
            }
            if frame.is_err() {
                break;
            }
        }
        u16::from(CloseCode::Abnormal)
    }
}

#[tokio::test]
async fn an_ended_session_is_refused_at_once_everywhere_and_its_sockets_close() {
    let platform = TestPlatform::start().await;
    let name = username("eve");
    let laptop = platform.client();
    laptop.signup(&signup_request(&name)).await.unwrap();
    let phone = platform.client();
    phone.login(&name, PASSWORD).await.unwrap();
    let tablet = platform.client();
    tablet.login(&name, PASSWORD).await.unwrap();
    let phone_access = phone.tokens().await.unwrap().access_token;
    let laptop_access = laptop.tokens().await.unwrap().access_token;
    let tablet_access = tablet.tokens().await.unwrap().access_token;
    let url = platform.platform().gateway_url();
    let phone_socket = close_code_of_socket(&url, &phone_access).await;

    // Log out: the access token fails at once on REST and the open socket closes with 4001.
    phone.logout().await.unwrap();
    let (status, _, body) = platform
        .request(reqwest::Method::GET, "/v1/me", Some(&phone_access), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "session_ended");
    let (status, _, _) = platform
        .request(reqwest::Method::GET, "/v1/chats", Some(&phone_access), None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "message-service refuses it too"
    );
    assert_eq!(phone_socket.await, 4001);

    // A new socket with the ended session's token is refused at the handshake.
    let ws_url = format!("{}/v1/ws", url.replacen("http", "ws", 1));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url)
            .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {phone_access}").parse().unwrap(),
    );
    assert!(tokio_tungstenite::connect_async(request).await.is_err());

    // Ending a session from another device, and a password change, do the same.
    let tablet_session = tablet.tokens().await.unwrap().session_id;
    let tablet_socket = close_code_of_socket(&url, &tablet_access).await;
    laptop.end_session(tablet_session).await.unwrap();
    assert_eq!(tablet_socket.await, 4001);
    let (status, _, _) = platform
        .request(reqwest::Method::GET, "/v1/me", Some(&tablet_access), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let desktop = platform.client();
    desktop.login(&name, PASSWORD).await.unwrap();
    let desktop_access = desktop.tokens().await.unwrap().access_token;
    let desktop_socket = close_code_of_socket(&url, &desktop_access).await;
    laptop
        .change_password(PASSWORD, "another good secret")
        .await
        .unwrap();
    assert_eq!(desktop_socket.await, 4001);
    let (status, _, _) = platform
        .request(
            reqwest::Method::GET,
            "/v1/queue",
            Some(&desktop_access),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "matching-service refuses it too"
    );

    // The session that changed the password lives on.
    let (status, _, body) = platform
        .request(reqwest::Method::GET, "/v1/me", Some(&laptop_access), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_family() {
    let platform = TestPlatform::start().await;
    let client = platform.client();
    let first = client
        .signup(&signup_request(&username("cat")))
        .await
        .unwrap()
        .tokens;
    let refresh = |token: String| {
        platform.request(
            reqwest::Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": token})),
        )
    };
    let second = client.refresh().await.unwrap();
    // Within the grace window the token just replaced yields the same successor...
    let (status, _, body) = refresh(first.refresh_token.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["refresh_token"], second.refresh_token.as_str());
    // ...but once the successor is replaced too, the first token is reuse.
    let third = client.refresh().await.unwrap();
    let (status, _, body) = refresh(first.refresh_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "refresh_token_reused");
    let (status, _, _) = refresh(third.refresh_token).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the latest token of the family is dead too"
    );
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_get_the_same_new_token() {
    let platform = TestPlatform::start().await;
    for _ in 0..3 {
        let tokens = platform
            .client()
            .signup(&signup_request(&username("dan")))
            .await
            .unwrap()
            .tokens;
        let body = json!({"refresh_token": tokens.refresh_token});

        let (a, b) = tokio::join!(
            platform.request(
                reqwest::Method::POST,
                "/v1/auth/refresh",
                None,
                Some(body.clone())
            ),
            platform.request(
                reqwest::Method::POST,
                "/v1/auth/refresh",
                None,
                Some(body.clone())
            ),
        );

        assert_eq!(
            (a.0, b.0),
            (StatusCode::OK, StatusCode::OK),
            "{} / {}",
            a.2,
            b.2
        );
        assert_eq!(a.2["refresh_token"], b.2["refresh_token"]);
        let winner = a.2["refresh_token"].as_str().unwrap().to_owned();
        let (status, _, _) = platform
            .request(
                reqwest::Method::POST,
                "/v1/auth/refresh",
                None,
                Some(json!({"refresh_token": winner})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "the session lives on");
    }
}

#[tokio::test]
async fn refused_access_tokens_get_401_at_the_gateway() {
    let platform = TestPlatform::start().await;
    let tokens = platform
        .client()
        .signup(&signup_request(&username("eve")))
        .await
        .unwrap()
        .tokens;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let good = json!({
        "iss": service_kit::token::DEFAULT_ISSUER,
        "aud": service_kit::token::DEFAULT_AUDIENCE,
        "sub": tokens.user_id,
        "exp": now + 600,
        "iat": now,
        "jti": uuid::Uuid::new_v4(),
        "typ": "access",
        "sid": tokens.session_id,
    });
    // The hand-signed good token passes, so each variant below fails for its one defect.
    let (status, _, _) = platform
        .request(
            reqwest::Method::GET,
            "/v1/me",
            Some(&platform.sign(&good).await),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let kid = platform.kid().await;
    let payload = URL_SAFE_NO_PAD.encode(good.to_string());
    let alg_none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "at+jwt", "kid": kid}).to_string())
    );
    let public_x = platform.jwks().await["keys"][0]["x"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(kid);
    hs_header.typ = Some("at+jwt".to_owned());
    let hs256_x = jsonwebtoken::encode(
        &hs_header,
        &good,
        &EncodingKey::from_secret(public_x.as_bytes()),
    )
    .unwrap();
    let hs256_raw = jsonwebtoken::encode(
        &hs_header,
        &good,
        &EncodingKey::from_secret(&URL_SAFE_NO_PAD.decode(&public_x).unwrap()),
    )
    .unwrap();
    let with = |field: &str, value: Value| {
        let mut claims = good.clone();
        claims[field] = value;
        claims
    };
    let mut expired = with("exp", json!(now - 60));
    expired["iat"] = json!(now - 3600);

    let cases = vec![
        ("alg none", alg_none),
        ("HS256 keyed with the public key", hs256_x),
        ("HS256 keyed with the raw public key", hs256_raw),
        (
            "wrong aud",
            platform.sign(&with("aud", json!("someone-else"))).await,
        ),
        (
            "wrong iss",
            platform
                .sign(&with("iss", json!("https://evil.example")))
                .await,
        ),
        ("expired", platform.sign(&expired).await),
        ("a refresh token", tokens.refresh_token.clone()),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (what, token) in cases {
        for path in ["/v1/me", "/v1/chats", "/v1/queue"] {
            let (status, headers, body) = platform
                .request(reqwest::Method::GET, path, Some(&token), None)
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} on {path}: {body}");
            assert!(headers.contains_key("www-authenticate"), "{what} on {path}");
            assert!(
                body["error"]["code"].is_string(),
                "{what}: uniform error body {body}"
            );
        }
    }
    let (status, headers, _) = platform
        .request(reqwest::Method::GET, "/v1/me", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn bad_sign_ups_are_422_naming_the_field_and_a_taken_name_is_409() {
    let platform = TestPlatform::start().await;
    let name = username("fay");
    let client = platform.client();
    client.signup(&signup_request(&name)).await.unwrap();

    let taken = client
        .signup(&signup_request(&name.to_uppercase()))
        .await
        .unwrap_err();
    assert_eq!(taken.status(), Some(StatusCode::CONFLICT), "{taken}");

    let base = signup_request(&username("gus"));
    let cases: Vec<(&str, SignupRequest)> = vec![
        (
            "username",
            SignupRequest {
                username: "x!".to_owned(),
                ..base.clone()
            },
        ),
        (
            "password",
            SignupRequest {
                password: "short".to_owned(),
                ..base.clone()
            },
        ),
        (
            "password",
            SignupRequest {
                password: base.username.clone(),
                ..base.clone()
            },
        ),
        (
            "birth_date",
            SignupRequest {
                birth_date: time::OffsetDateTime::now_utc().date(),
                ..base.clone()
            },
        ),
        (
            "interests",
            SignupRequest {
                interests: (0..21).map(|i| format!("tag{i}")).collect(),
                ..base.clone()
            },
        ),
        (
            "interests",
            SignupRequest {
                interests: vec!["x".repeat(33)],
                ..base.clone()
            },
        ),
    ];
    for (field, request) in cases {
        let err = client.signup(&request).await.unwrap_err();
        assert_eq!(
            err.status(),
            Some(StatusCode::UNPROCESSABLE_ENTITY),
            "{field}: {err}"
        );
        assert_eq!(err.field(), Some(field), "{err}");
    }
    // Nothing was created by the refused attempts.
    let err = platform
        .client()
        .login(&base.username, PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));

    let (status, _, body) = platform
        .request(
            reqwest::Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"username": name, "password": "x".repeat(100 * 1024)})),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

#[tokio::test]
async fn the_gateway_serves_health_and_openapi_and_hides_internal_routes() {
    let platform = TestPlatform::start().await;
    let (status, _, _) = platform
        .request(reqwest::Method::GET, "/healthz", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, doc) = platform
        .request(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/auth/signup",
        "/v1/me",
        "/v1/chats",
        "/v1/queue",
        "/v1/ws",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    // Page sizes start at 1, as the server enforces.
    for path in ["/v1/chats", "/v1/chats/{id}/messages"] {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(limit["schema"]["minimum"], 1, "{path}: {limit}");
    }
    let user = platform
        .client()
        .signup(&signup_request(&username("hal")))
        .await
        .unwrap();
    for path in [
        format!("/internal/users/{}", user.user.id),
        "/internal/handlers".to_owned(),
    ] {
        let (status, _, _) = platform
            .request(
                reqwest::Method::GET,
                &path,
                Some(&user.tokens.access_token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn accounts_and_tokens_survive_a_restart_on_the_same_data() {
    let mut platform = TestPlatform::start().await;
    let name = username("ivy");
    let client = platform.client();
    let tokens = client.signup(&signup_request(&name)).await.unwrap().tokens;

    platform.restart().await;

    let (status, _, body) = platform
        .request(
            reqwest::Method::GET,
            "/v1/me",
            Some(&tokens.access_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the signing key persisted: {body}");
    assert_eq!(body["username"], name);
    let (status, _, _) = platform
        .request(
            reqwest::Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": tokens.refresh_token})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the session persisted");
    platform.client().login(&name, PASSWORD).await.unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_its_files_are_owner_only_and_a_loose_key_is_refused() {
    use std::os::unix::fs::PermissionsExt;

    let mut platform = TestPlatform::start().await;
    let mode = |file: &str| {
        std::fs::metadata(platform.dir.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700, "the data directory");
    for file in ["auth.db", "messages.db", "signing-key.pem"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }

    platform.platform.take().unwrap().shutdown().await;
    let key = platform.dir.join("signing-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Platform::start(config(&platform.dir))
        .await
        .expect_err("a key others may read is refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("signing-key.pem") && text.contains("chmod 600"),
        "{text}"
    );
}

#[tokio::test]
async fn the_sdk_refreshes_an_expiring_access_token_by_itself() {
    let dir = std::env::temp_dir().join(test_support::unique_name("rc_platform"));
    let mut short = config(&dir);
    // Below the SDK's refresh margin: every call finds the token about to expire.
    short.auth.access_token_ttl = std::time::Duration::from_secs(1);
    let platform = Platform::start(short).await.expect("platform starts");
    let client = Client::new(&platform.gateway_url()).unwrap();
    let name = username("ria");
    client.signup(&signup_request(&name)).await.unwrap();
    let first = client.tokens().await.unwrap();

    let me = client
        .me()
        .await
        .expect("the call succeeds after a refresh");

    assert_eq!(me.username, name);
    let second = client.tokens().await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token, "rotated");
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(second.session_id, first.session_id, "the same session");
    platform.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_sdk_refreshes_once_after_a_refused_access_token_and_retries() {
    let platform = TestPlatform::start().await;
    let client = platform.client();
    let name = username("rob");
    client.signup(&signup_request(&name)).await.unwrap();
    let good = client.tokens().await.unwrap();
    // The server refuses this access token (401); the refresh token is still good.
    client
        .set_tokens(client_sdk::api::auth::TokenPair {
            access_token: "not.a.token".to_owned(),
            ..good.clone()
        })
        .await;

    let me = client.me().await.expect("refreshed and retried");

    assert_eq!(me.username, name);
    let now = client.tokens().await.unwrap();
    assert_ne!(now.access_token, "not.a.token");
    assert_ne!(now.refresh_token, good.refresh_token);
}

/// Serves the platform's operators' listener (apart from the public one); its base URL.
async fn operator_listener(platform: &Platform) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let operators = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(service_kit::serve::serve(
        listener,
        platform.operator_app(),
        std::future::pending(),
        service_kit::serve::ServeOptions::default(),
    ));
    operators
}

/// A platform on a data directory of its own whose operators' listener is served, with
/// one operator signed up: the directory, the platform, the operators' base URL and the
/// operator's access token.
async fn moderated_platform() -> (PathBuf, Platform, String, String) {
    let dir = std::env::temp_dir().join(test_support::unique_name("rc_platform"));
    let operator = username("op");
    let mut platform_config = config(&dir);
    platform_config.auth.admins = vec![operator.to_lowercase()];
    let platform = Platform::start(platform_config).await.unwrap();
    let operators = operator_listener(&platform).await;
    let admin = Client::new(&platform.gateway_url()).unwrap();
    admin.signup(&signup_request(&operator)).await.unwrap();
    let admin_token = admin.tokens().await.unwrap().access_token;
    (dir, platform, operators, admin_token)
}

#[tokio::test]
async fn a_banned_user_waiting_without_a_socket_leaves_the_queue_at_once() {
    let (dir, platform, operators, admin_token) = moderated_platform().await;
    let url = platform.gateway_url();
    let troll = Client::new(&url).unwrap();
    let troll_id = troll
        .signup(&signup_request(&username("troll")))
        .await
        .unwrap()
        .user
        .id;
    let join = JoinQueueRequest {
        interests: Some(vec![username("topic")]),
        interest_mode: Some(InterestMode::Required),
        ..JoinQueueRequest::default()
    };
    // Queued over REST alone: no socket whose closing would drop the ticket.
    assert_eq!(
        troll.join_queue(&join).await.unwrap().state,
        QueueState::Waiting
    );
    let banned = reqwest::Client::new()
        .post(format!("{operators}/v1/admin/users/{troll_id}/ban"))
        .bearer_auth(&admin_token)
        .json(&json!({"reason": "spam"}))
        .send()
        .await
        .unwrap();
    assert_eq!(banned.status(), StatusCode::NO_CONTENT);
    let newcomer = Client::new(&url).unwrap();
    newcomer
        .signup(&signup_request(&username("newcomer")))
        .await
        .unwrap();
    let status = newcomer.join_queue(&join).await.unwrap();
    assert_eq!(
        status.state,
        QueueState::Waiting,
        "not matched with the banned user: {status:?}"
    );
    platform.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_operator_bans_through_the_operator_listener_and_the_ban_bites_everywhere() {
    let (dir, platform, operators, admin_token) = moderated_platform().await;
    let url = platform.gateway_url();
    let name = username("troll");
    let troll = Client::new(&url).unwrap();
    let troll_id = troll.signup(&signup_request(&name)).await.unwrap().user.id;
    let troll_token = troll.tokens().await.unwrap().access_token;
    // Someone the troll meets reports them.
    let victim = Client::new(&url).unwrap();
    victim
        .signup(&signup_request(&username("victim")))
        .await
        .unwrap();
    let join = JoinQueueRequest {
        interests: Some(vec![username("topic")]),
        interest_mode: Some(InterestMode::Required),
        ..JoinQueueRequest::default()
    };
    victim.join_queue(&join).await.unwrap();
    let chat = troll.join_queue(&join).await.unwrap().matched.unwrap();
    let report = victim
        .report(&ReportRequest {
            user_id: troll_id,
            chat_id: chat.chat_id,
            message_ids: vec![],
            reason: "insults".to_owned(),
        })
        .await
        .unwrap();
    let socket = close_code_of_socket(&url, &troll_token).await;
    let http = reqwest::Client::new();
    let ban = |base: &str| {
        http.post(format!("{base}/v1/admin/users/{troll_id}/ban"))
            .bearer_auth(&admin_token)
            .json(&json!({"reason": "harassment"}))
            .send()
    };

    // Not on the public listener, even for an operator.
    assert_eq!(ban(&url).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(
        ban(&operators).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(socket.await, 4001, "the banned user's socket closes");
    let me = http
        .get(format!("{url}/v1/me"))
        .bearer_auth(&troll_token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    let err = Client::new(&url)
        .unwrap()
        .login(&name, PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(client_sdk::ErrorCode::AccountBanned));
    let audit: serde_json::Value = http
        .get(format!("{operators}/v1/admin/audit"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit[0]["action"], "ban");
    assert_eq!(audit[0]["target_id"], json!(troll_id));

    // Resolving the report lands in the same audit log, once however often it is sent.
    for _ in 0..2 {
        let resolved = http
            .post(format!(
                "{operators}/v1/admin/reports/{}/resolve",
                report.id
            ))
            .bearer_auth(&admin_token)
            .json(&json!({"outcome": "actioned", "note": "banned for it"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resolved.status(), StatusCode::OK);
    }
    let audit: Vec<Value> = http
        .get(format!("{operators}/v1/admin/audit"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[..2], ["resolve_report", "ban"], "{audit:?}");
    assert_eq!(
        actions.iter().filter(|a| **a == "resolve_report").count(),
        1
    );
    assert_eq!(audit[0]["target_id"], json!(troll_id));
    let detail = audit[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&report.id.to_string()) && detail.contains("banned for it"),
        "{detail}"
    );
    platform.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
