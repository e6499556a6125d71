//! The web phone SDK's `/platform` WebSocket, black box: the real gateway on a
//! private Redis, spoken to over a real WebSocket the way the SDK speaks (SPEC §1b).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use authgate_tests::app::{hash, limit, parts};
use authgate_tests::{redis_or_skip, spawn_app, spawn_app_with, TestApp, TestRedis, WebUser};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The longest any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(10);

/// A client that speaks the SDK's protocol.
struct Sdk {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended.
#[derive(Debug, PartialEq)]
enum Ended {
    /// A close frame with this code.
    Closed(CloseCode),
    /// The connection ended without a close frame.
    Dropped,
}

impl Sdk {
    /// Connects with the query string the SDK sends and reads the greeting.
    async fn connect(app: &TestApp) -> Self {
        let url = format!(
            "ws://{}/platform?version=3&client=chrome&ccheck=true&referrer=&extra=&video=false\
             &client_version=4.3.71928&client_platform=chrome&im_version=2&acd_version=2",
            app.addr
        );
        let (ws, resp) = timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("the upgrade succeeds");
        assert_eq!(resp.status(), 101);
        let mut sdk = Self { ws };
        let greeting = sdk.recv().await;
        assert_eq!(
            greeting,
            json!({"name": "__connectionSuccessful", "params": []})
        );
        sdk
    }

    async fn send_text(&mut self, text: String) {
        timeout(WAIT, self.ws.send(Message::text(text)))
            .await
            .expect("send in time")
            .expect("send");
    }

    async fn send(&mut self, name: &str, params: Value) {
        self.send_text(json!({"name": name, "params": params}).to_string())
            .await;
    }

    /// The next text frame, parsed.
    async fn recv(&mut self) -> Value {
        loop {
            let msg = timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("the socket is open")
                .expect("a frame");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).expect("JSON frame"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Sends a frame and returns the next answer that is not a pong.
    async fn call(&mut self, name: &str, params: Value) -> Value {
        self.send(name, params).await;
        loop {
            let frame = self.recv().await;
            if frame["name"] != "__pong" {
                return frame;
            }
        }
    }

    /// Waits for the end of the socket, ignoring text frames before it.
    async fn ended(&mut self) -> Ended {
        loop {
            match timeout(WAIT, self.ws.next())
                .await
                .expect("the socket ends in time")
            {
                Some(Ok(Message::Close(Some(CloseFrame { code, .. })))) => {
                    return Ended::Closed(code)
                }
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return Ended::Dropped,
                Some(Ok(_)) => continue,
            }
        }
    }

    async fn ping(&mut self) {
        self.send("__ping", json!([[]])).await;
        let frame = self.recv().await;
        assert_eq!(frame, json!({"name": "__pong", "params": []}));
    }

    /// Requests a key; returns it.
    async fn key(&mut self, username: &str) -> String {
        let frame = self
            .call("loginGenerateOneTimeKey", json!([username]))
            .await;
        assert_eq!(frame["name"], "loginFailed", "{frame}");
        assert_eq!(frame["params"][0], json!(302), "302 is a number: {frame}");
        let key = frame["params"][1].as_str().expect("the key").to_owned();
        assert_eq!(key.len(), 32, "{frame}");
        key
    }
}

/// The `OAuth` object of a `loginSuccessful` frame, checked.
fn oauth_of_login(frame: &Value, display_name: &str) -> Value {
    assert_eq!(frame["name"], "loginSuccessful", "{frame}");
    assert_eq!(frame["params"][0], display_name, "{frame}");
    assert_eq!(
        frame["params"][1]["iceConfig"],
        json!({"iceServers": []}),
        "{frame}"
    );
    let oauth = frame["params"][1]["OAuth"].clone();
    assert_eq!(oauth["accessExpire"], 48 * 3600, "{frame}");
    assert_eq!(oauth["refreshExpire"], 30 * 86400, "{frame}");
    assert!(oauth["accessToken"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(oauth["refreshToken"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    oauth
}

fn failed(frame: &Value) -> Value {
    assert_eq!(frame["name"], "loginFailed", "{frame}");
    frame["params"][0].clone()
}

fn token(oauth: &Value, which: &str) -> String {
    oauth[which].as_str().expect(which).to_owned()
}

async fn app_with_user(redis: &TestRedis) -> (TestApp, WebUser) {
    let app = spawn_app(Some(redis)).await;
    let u = app.web_user("myuser", "mypass123").await;
    (app, u)
}

#[tokio::test]
async fn the_socket_greets_at_once_and_answers_pings() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let mut sdk = Sdk::connect(&app).await;
    for _ in 0..3 {
        sdk.ping().await;
    }
}

#[tokio::test]
async fn a_key_from_the_socket_logs_in_with_the_documented_hash() {
    let redis = redis_or_skip!();
    let (app, u) = app_with_user(&redis).await;
    let mut sdk = Sdk::connect(&app).await;
    let key = sdk.key(&u.username).await;
    let digest = hash(&key, &u.user, &u.password);
    let frame = sdk
        .call(
            "loginUsingOneTimeKey",
            json!([u.username, digest, {"receiveCalls": true, "serverPresenceControl": false}]),
        )
        .await;
    let oauth = oauth_of_login(&frame, "myuser display");
    let (status, user) = app.verify(&token(&oauth, "accessToken")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user.as_deref(), Some("myuser@app.acct"));
}

#[tokio::test]
async fn a_wrong_hash_is_refused_with_401_and_burns_the_key() {
    let redis = redis_or_skip!();
    let (app, u) = app_with_user(&redis).await;
    let mut sdk = Sdk::connect(&app).await;
    let key = sdk.key(&u.username).await;
    let wrong = hash(&key, &u.user, "not-the-password");
    let frame = sdk
        .call("loginUsingOneTimeKey", json!([u.username, wrong, {}]))
        .await;
    assert_eq!(failed(&frame), json!(401));
    // The right hash for the same key no longer works: one guess per key.
    let right = hash(&key, &u.user, &u.password);
    let frame = sdk
        .call("loginUsingOneTimeKey", json!([u.username, right, {}]))
        .await;
    assert_eq!(failed(&frame), json!(401));
}

#[tokio::test]
async fn an_unknown_user_gets_a_decoy_key_that_never_logs_in() {
    let redis = redis_or_skip!();
    let (app, u) = app_with_user(&redis).await;
    let mut sdk = Sdk::connect(&app).await;
    let known = sdk.key(&u.username).await;
    let username = "nobody@app.acct.voximplant.com";
    let decoy = sdk.key(username).await;
    assert_ne!(known, decoy);
    let frame = sdk
        .call(
            "loginUsingOneTimeKey",
            json!([username, hash(&decoy, "nobody", "anything1"), {}]),
        )
        .await;
    assert_eq!(failed(&frame), json!(401));
}

#[tokio::test]
async fn keys_are_shared_with_the_rest_endpoints() {
    let redis = redis_or_skip!();
    let (app, u) = app_with_user(&redis).await;
    let mut sdk = Sdk::connect(&app).await;
    let key = sdk.key(&u.username).await;
    let (status, body) = app
        .login_key(&u.username, &hash(&key, &u.user, &u.password))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A REST key voids the socket's earlier one, and the other way round.
    let old = sdk.key(&u.username).await;
    let new = app.key(&u.username).await;
    let frame = sdk
        .call(
            "loginUsingOneTimeKey",
            json!([u.username, hash(&old, &u.user, &u.password), {}]),
        )
        .await;
    assert_eq!(failed(&frame), json!(401));
    let (status, body) = app
        .login_key(&u.username, &hash(&new, &u.user, &u.password))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "consumed by the socket's try: {body}"
    );
}

#[tokio::test]
async fn a_password_login_returns_tokens_and_a_wrong_one_401() {
    let redis = redis_or_skip!();
    let (app, u) = app_with_user(&redis).await;
    let mut sdk = Sdk::connect(&app).await;
    let frame = sdk
        .call(
            "login",
            json!([u.username, u.password, {"receiveCalls": true}]),
        )
        .await;
    oauth_of_login(&frame, "myuser display");
    let frame = sdk
        .call("login", json!([u.username, "wrong-password", {}]))
        .await;
    assert_eq!(failed(&frame), json!(401));
    // The HA1 works in place of the password, as the platform's SDKs send it.
    let ha1 = authgate_onetimekey::digest::ha1(&u.user, &u.password);
    let frame = sdk.call("login", json!([u.username, ha1, {}])).await;
    oauth_of_login(&frame, "myuser display");
}

#[tokio::test]
async fn a_token_login_starts_a_new_session_and_a_bad_token_is_refused() {
    let redis = redis_or_skip!();
    let (app, u) = app_with_user(&redis).await;
    let mut sdk = Sdk::connect(&app).await;
    let first = oauth_of_login(
        &sdk.call("login", json!([u.username, u.password, {}])).await,
        "myuser display",
    );
    let access = token(&first, "accessToken");
    let frame = sdk
        .call(
            "login",
            json!([u.username, "", {"accessToken": access, "serverPresenceControl": false}]),
        )
        .await;
    let second = oauth_of_login(&frame, "myuser display");
    assert_ne!(second["accessToken"], first["accessToken"]);
    let frame = sdk
        .call(
            "login",
            json!([u.username, "", {"accessToken": "not-a-token"}]),
        )
        .await;
    assert_eq!(failed(&frame), json!(401));
    // Someone else's username with this user's token: refused.
    let frame = sdk
        .call(
            "login",
            json!(["someone@app.acct.voximplant.com", "", {"accessToken": access}]),
        )
        .await;
    assert_eq!(failed(&frame), json!(401));
}

#[tokio::test]
async fn a_refresh_rotates_once_and_a_reused_token_ends_the_session() {
    let redis = redis_or_skip!();
    let (app, u) = app_with_user(&redis).await;
    let mut sdk = Sdk::connect(&app).await;
    let login = oauth_of_login(
        &sdk.call("login", json!([u.username, u.password, {}])).await,
        "myuser display",
    );
    let first = token(&login, "refreshToken");
    // The SDK's two forms: a bare token, and an object with a device token.
    let frame = sdk
        .call("refreshOauthToken", json!([u.username, first]))
        .await;
    assert_eq!(frame["name"], "refreshOauthTokenSuccessful", "{frame}");
    let rotated = frame["params"][0]["OAuth"].clone();
    assert_eq!(rotated["accessExpire"], 48 * 3600, "{frame}");
    assert_ne!(rotated["refreshToken"], login["refreshToken"]);
    let second = token(&rotated, "refreshToken");
    let frame = sdk
        .call(
            "refreshOauthToken",
            json!([u.username, {"refreshToken": second, "deviceToken": "device-1"}]),
        )
        .await;
    assert_eq!(frame["name"], "refreshOauthTokenSuccessful", "{frame}");
    let third = frame["params"][0]["OAuth"].clone();
    // Presenting a rotated token again is refused and ends the session.
    let frame = sdk
        .call("refreshOauthToken", json!([u.username, first]))
        .await;
    assert_eq!(
        frame,
        json!({"name": "refreshOauthTokenFailed", "params": [401]})
    );
    let (status, _) = app.verify(&token(&third, "accessToken")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the session is revoked");
    let frame = sdk
        .call(
            "refreshOauthToken",
            json!([u.username, token(&third, "refreshToken")]),
        )
        .await;
    assert_eq!(frame["name"], "refreshOauthTokenFailed", "{frame}");
}

#[tokio::test]
async fn login_frames_with_nonsense_parameters_are_still_answered() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let mut sdk = Sdk::connect(&app).await;
    for (name, params) in [
        ("loginGenerateOneTimeKey", json!([])),
        ("loginGenerateOneTimeKey", json!([42])),
        ("loginUsingOneTimeKey", json!(["u@app.acct", null, {}])),
        ("loginUsingOneTimeKey", json!(["u@app.acct", "not-hex", {}])),
        ("login", json!(["u@app.acct", {}, {}])),
        ("login", json!(["not a username", "password1", {}])),
    ] {
        let frame = sdk.call(name, params.clone()).await;
        assert_eq!(failed(&frame), json!(400), "{name} {params}");
    }
    let frame = sdk.call("refreshOauthToken", json!(["u@app.acct"])).await;
    assert_eq!(
        frame,
        json!({"name": "refreshOauthTokenFailed", "params": [400]})
    );
    sdk.ping().await;
}

#[tokio::test]
async fn the_guess_limit_applies_to_the_socket_as_to_rest() {
    let redis = redis_or_skip!();
    let app = spawn_app_with(Some(&redis), |c| c.limits.guesses_per_user = limit(2, 900)).await;
    let u = app.web_user("olga", "olgapass1").await;
    let mut sdk = Sdk::connect(&app).await;
    for wrong in ["wrong-password-1", "wrong-password-2"] {
        let frame = sdk.call("login", json!([u.username, wrong, {}])).await;
        assert_eq!(failed(&frame), json!(401));
    }
    let frame = sdk.call("login", json!([u.username, u.password, {}])).await;
    assert_eq!(
        failed(&frame),
        json!(429),
        "past the limit the right one too"
    );
    let (status, body) = app
        .post(
            "/v1/login/password",
            &json!({"username": u.username, "password": u.password}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

#[tokio::test]
async fn an_unknown_frame_is_ignored_and_the_socket_still_answers() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let mut sdk = Sdk::connect(&app).await;
    sdk.send("setOperatorACDStatus", json!(["READY"])).await;
    sdk.send("somethingNew", json!([{"a": 1}])).await;
    // The next frame is the pong: nothing answered the unknown ones.
    sdk.ping().await;
}

#[tokio::test]
async fn a_malformed_frame_closes_only_that_socket() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let mut bad = Sdk::connect(&app).await;
    let mut good = Sdk::connect(&app).await;
    bad.send_text("this is not json".into()).await;
    assert_eq!(bad.ended().await, Ended::Closed(CloseCode::Invalid));
    good.ping().await;
    let mut bad = Sdk::connect(&app).await;
    bad.send_text(r#"{"name": "__ping", "params": "x"}"#.into())
        .await;
    assert_eq!(bad.ended().await, Ended::Closed(CloseCode::Invalid));
    good.ping().await;
}

#[tokio::test]
async fn an_oversized_frame_closes_the_socket() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let mut good = Sdk::connect(&app).await;
    let mut big = Sdk::connect(&app).await;
    let padding = "x".repeat(authgate_gateway::platform::MAX_FRAME_BYTES);
    big.send("login", json!(["u@app.acct", padding, {}])).await;
    assert_eq!(big.ended().await, Ended::Closed(CloseCode::Size));
    // Far over the limit the transport refuses it before it is read whole.
    let mut huge = Sdk::connect(&app).await;
    let _ = timeout(WAIT, huge.ws.send(Message::text("y".repeat(1024 * 1024)))).await;
    let ended = huge.ended().await;
    assert!(
        matches!(ended, Ended::Closed(CloseCode::Size) | Ended::Dropped),
        "{ended:?}"
    );
    good.ping().await;
}

#[tokio::test]
async fn a_binary_frame_closes_the_socket() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let mut sdk = Sdk::connect(&app).await;
    sdk.ws
        .send(Message::binary(
            b"{\"name\":\"__ping\",\"params\":[]}".to_vec(),
        ))
        .await
        .unwrap();
    assert_eq!(sdk.ended().await, Ended::Closed(CloseCode::Unsupported));
}

#[tokio::test]
async fn a_flood_of_frames_closes_the_socket_and_spares_the_others() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let mut good = Sdk::connect(&app).await;
    let mut flood = Sdk::connect(&app).await;
    let burst = authgate_gateway::platform::MAX_FRAMES_PER_SECOND as usize * 2;
    for _ in 0..burst {
        let frame = json!({"name": "__ping", "params": [[]]}).to_string();
        if timeout(WAIT, flood.ws.send(Message::text(frame)))
            .await
            .map_or(true, |r| r.is_err())
        {
            break;
        }
    }
    assert_eq!(flood.ended().await, Ended::Closed(CloseCode::Policy));
    good.ping().await;
}

#[tokio::test]
async fn the_client_closing_ends_the_socket_cleanly() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let mut sdk = Sdk::connect(&app).await;
    sdk.ping().await;
    timeout(WAIT, sdk.ws.close(None))
        .await
        .expect("close in time")
        .expect("close");
    assert!(matches!(
        sdk.ended().await,
        Ended::Closed(_) | Ended::Dropped
    ));
}

#[tokio::test]
async fn plain_http_on_the_platform_path_is_a_client_error() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let resp = app
        .http
        .get(app.url("/platform?version=3"))
        .send()
        .await
        .expect("request");
    let (status, _) = parts(resp).await;
    assert!(status.is_client_error(), "{status}");
}

#[tokio::test]
async fn upgrades_and_the_funnel_show_in_the_metrics() {
    let redis = redis_or_skip!();
    let (app, u) = app_with_user(&redis).await;
    let mut sdk = Sdk::connect(&app).await;
    let key = sdk.key(&u.username).await;
    let frame = sdk
        .call(
            "loginUsingOneTimeKey",
            json!([u.username, hash(&key, &u.user, &u.password), {}]),
        )
        .await;
    oauth_of_login(&frame, "myuser display");
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains(
            r#"authgate_http_requests_total{operation="platformWebSocket",status="101"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"authgate_funnel_total{scheme="one_time_key",stage="issued"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"authgate_funnel_total{scheme="one_time_key",stage="verified"} 1"#),
        "{text}"
    );
    // Each answered frame is counted and timed like a REST operation.
    for line in [
        r#"authgate_http_requests_total{operation="platform.loginGenerateOneTimeKey",status="200"} 1"#,
        r#"authgate_http_requests_total{operation="platform.loginUsingOneTimeKey",status="200"} 1"#,
        r#"authgate_http_request_duration_seconds_count{operation="platform.loginUsingOneTimeKey"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
}
