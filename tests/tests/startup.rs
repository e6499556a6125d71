//! Start-up, black box: a gateway whose Redis does not listen yet starts anyway,
//! is live but not ready, answers 503 with `Retry-After` in each dialect's error
//! shape, and serves by itself once Redis answers; a Redis that refuses the
//! gateway's credentials fails the build at once, saying why.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::TcpListener;
use std::time::{Duration, Instant};

use authgate_gateway::Application;
use authgate_tests::app::{test_config_on, Shop, StartingApp};
use authgate_tests::webhook::Receiver;
use authgate_tests::{spawn_starting, TestRedis};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

/// A loopback port nothing listens on (bound, then released).
fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The `Retry-After` of a response, in seconds; panics when absent.
fn retry_after(resp: &Response) -> u64 {
    resp.headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After on {}", resp.status()))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Asserts a 503 with `Retry-After`; returns the JSON body.
async fn unavailable(resp: Response, what: &str) -> Value {
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
    let secs = retry_after(&resp);
    assert!((1..=60).contains(&secs), "{what}: Retry-After {secs}");
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"))
}

async fn code_request(app: &StartingApp, realm: &str, profile: &str, token: &str) -> Response {
    app.http
        .post(app.url(&format!(
            "/v2/authentication-realms/{realm}/password-profiles/{profile}/one-time-password-token-request"
        )))
        .bearer_auth(token)
        .json(&json!({"data": {"type": "one_time_password_token_request",
            "username": "john.doe@banks.com", "purpose": "passwordless_authentication"}}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_gateway_started_before_its_redis_serves_once_redis_listens() {
    let port = unused_port();
    let prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
    let started = Instant::now();
    let app = spawn_starting(test_config_on(
        &format!("redis://127.0.0.1:{port}"),
        &prefix,
    ))
    .await
    .expect("the gateway starts with nothing listening at its Redis URL");
    let build_took = started.elapsed();
    assert!(
        build_took < Duration::from_secs(10),
        "start-up does not wait for Redis: {build_took:?}"
    );
    assert!(app.state.is_none(), "no state before the store answers");

    // Live, not ready; every answer a 503 with Retry-After in its dialect's shape.
    let live = app.get_raw("/health/live").await;
    assert_eq!(live.status(), StatusCode::OK);
    let body = unavailable(app.get_raw("/health/ready").await, "/health/ready").await;
    assert_eq!(body["status"], "unavailable", "{body}");
    let body = unavailable(
        app.post_raw(
            "/v1/login/one-time-key/request",
            &json!({"username": "a@app.acct"}),
        )
        .await,
        "a key request",
    )
    .await;
    assert_eq!(
        (body["result"].clone(), body["code"].clone()),
        (json!(false), json!(503)),
        "the web phone's AuthResult shape: {body}"
    );
    let body = unavailable(
        code_request(&app, "some-realm", "some-profile", "some-token").await,
        "a code request",
    )
    .await;
    assert_eq!(
        body["errors"][0]["status"], "503",
        "the errors shape: {body}"
    );
    let token = app
        .http
        .post(app.url("/oauth/access_token"))
        .form(&[("grant_type", "implicit"), ("client_id", "authgate")])
        .send()
        .await
        .unwrap();
    unavailable(token, "a client token").await;

    // A few of the gateway's retries fail first (it backs off from 200 ms).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(app.ready().await, StatusCode::SERVICE_UNAVAILABLE);

    // Redis comes up on that port: ready within a bounded time, no restart.
    let Some(redis) = TestRedis::start_on(port).await else {
        return; // no redis-server: said so loudly (a failure under AUTHGATE_REQUIRE_REDIS=1)
    };
    let redis_up = Instant::now();
    let waited = app
        .wait_ready(Duration::from_secs(15))
        .await
        .unwrap_or_else(|s| panic!("/health/ready still {s} 15 s after Redis started"));
    eprintln!(
        "ready {waited:?} after Redis started ({:?} after the gateway did)",
        started.elapsed()
    );
    assert!(redis_up.elapsed() < Duration::from_secs(16));

    // Both schemes work, the delivery worker included (it starts with the state).
    let u = app.web_user("late", "latepass1").await;
    assert_eq!(app.key_login(&u).await["result"], true);
    let hook = Receiver::start().await;
    let s: Shop = app.shop("John Doe", "john.doe@banks.com",
        json!({"type": "integration", "name": "codes", "integration_type": "webhook", "enabled": true,
            "observes": ["one-time-password-token-request.created"],
            "configuration": {"url": hook.url, "secret_key": "whsec-startup"}}))
        .await;
    let resp = code_request(&app, &s.realm, &s.profile, &s.implicit).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let got = hook.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "the code is delivered");
    let code = got[0].body["payload"]["one_time_password_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app.exchange_code(&s, "john.doe@banks.com", &code).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut c = redis.conn().await;
    let stored: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        !stored.is_empty(),
        "the state is in the Redis that came up late"
    );
}

#[tokio::test]
async fn a_refused_password_fails_the_build_at_once_saying_why() {
    const PASSWORD: &str = "Right-Pass_4711";
    const WRONG: &str = "Wrong-Pass_0815";
    let Some(redis) = TestRedis::start_acl("authgate", PASSWORD).await else {
        return;
    };
    let port = redis.port().expect("a private server");
    let config = test_config_on(
        &format!("redis://authgate:{WRONG}@127.0.0.1:{port}"),
        &redis.prefix,
    );
    let started = Instant::now();
    let built = tokio::time::timeout(Duration::from_secs(20), Application::build(config))
        .await
        .expect("Application::build gives up on a refused password instead of waiting");
    let took = started.elapsed();
    let error = match built {
        Ok(app) => panic!("the gateway built on a refused password: {app:?}"),
        Err(e) => format!("{e:#}"),
    };
    eprintln!("refused in {took:?}: {error}");
    assert!(
        error.contains("refused")
            && (error.contains("assword") || error.contains("WRONGPASS") || error.contains("AUTH")),
        "the error names the refusal: {error}"
    );
    assert!(
        !error.contains(WRONG) && !error.contains(PASSWORD),
        "no password in the error: {error}"
    );

    // With the right password the same server serves.
    let app = authgate_tests::spawn_app_on(&redis.url, &redis.prefix, |_| {}).await;
    assert_eq!(app.ready().await, StatusCode::OK);
}
