//! `POST /v1/tokens/introspect` (RFC 7662), black box: only the API client may
//! ask, with HTTP Basic or a client credentials token; RFC 7662's form body and
//! JSON alike; `{"active": false}` and nothing else for any token that is not
//! live or not the client's to see; every call counted against the caller's
//! address. Each runs on the memory store and on a private Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use authgate_tests::app::{limit, parts, CLIENT_SECRET};
use authgate_tests::{redis_or_skip, spawn_app, spawn_app_on, spawn_app_with, TestApp, TestRedis};
use reqwest::{header, RequestBuilder, StatusCode};
use serde_json::{json, Value};

const PATH: &str = "/v1/tokens/introspect";

/// A live web phone access token of the user `wes`, and that user's id.
async fn live_token(app: &TestApp) -> (String, String) {
    let u = app.web_user("wes", "wespass12").await;
    let login = app.key_login(&u).await;
    let access = login["tokens"]["accessToken"].as_str().unwrap().to_owned();
    (access, u.user_id)
}

/// An introspection request, before its credentials and body.
fn introspection(app: &TestApp) -> RequestBuilder {
    app.http.post(app.url(PATH))
}

/// The status, `WWW-Authenticate` and raw body of an answer.
async fn answer(req: RequestBuilder) -> (StatusCode, Option<String>, String) {
    let resp = req.send().await.unwrap();
    let challenge = resp
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    (resp.status(), challenge, resp.text().await.unwrap())
}

/// Runs `check` on a gateway on the memory store, then on one on a private Redis.
macro_rules! on_both_stores {
    ($check:ident) => {{
        $check(&spawn_app(None).await).await;
        let redis = redis_or_skip!();
        $check(&spawn_app(Some(&redis)).await).await;
    }};
}

async fn refuses_whoever_is_not_the_client(app: &TestApp) {
    let (access, user_id) = live_token(app).await;
    let implicit = app.implicit_token().await;
    let basic = |id: &str, secret: &str| {
        introspection(app)
            .basic_auth(id, Some(secret))
            .json(&json!({ "token": access }))
    };
    let bearer = |token: &str| {
        introspection(app)
            .bearer_auth(token)
            .json(&json!({ "token": access }))
    };
    let refused = [
        (
            "no credentials",
            introspection(app).json(&json!({ "token": access })),
        ),
        (
            "no credentials, a form",
            introspection(app).form(&[("token", access.as_str())]),
        ),
        ("a wrong secret", basic("authgate", "wrong-secret")),
        ("a wrong client id", basic("someone", CLIENT_SECRET)),
        ("an empty secret", basic("authgate", "")),
        ("an implicit grant's token", bearer(&implicit)),
        ("a user's access token", bearer(&access)),
        ("a made-up token", bearer("a.AAAAAAAAAAAAAAAAAAAAAA.BBBB")),
        ("garbage", bearer("garbage")),
        (
            "another scheme",
            introspection(app)
                .header(header::AUTHORIZATION, "Digest username=\"authgate\"")
                .json(&json!({ "token": access })),
        ),
    ];
    for (what, req) in refused {
        let (status, challenge, body) = answer(req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        let challenge = challenge.unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
        assert!(
            challenge.starts_with(r#"Basic realm="authgate""#),
            "{what}: {challenge}"
        );
        assert!(challenge.contains("Bearer"), "{what}: {challenge}");
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["errors"][0]["status"], "401", "{what}: {body}");
        for secret in [user_id.as_str(), "wes", "active", "realm", "exp"] {
            assert!(
                !body.contains(secret),
                "{what}: the answer tells of the token ({secret}): {body}"
            );
        }
    }
}

#[tokio::test]
async fn only_the_api_client_may_introspect_and_others_learn_nothing_of_the_token() {
    on_both_stores!(refuses_whoever_is_not_the_client);
}

async fn answers_the_client_by_basic_or_bearer_in_a_form_or_json(app: &TestApp) {
    let (access, user_id) = live_token(app).await;
    let admin = app.admin_token().await;
    let realm = app.realm(&admin).await;
    let asks = [
        (
            "Basic, JSON",
            introspection(app)
                .basic_auth("authgate", Some(CLIENT_SECRET))
                .json(&json!({ "token": access })),
        ),
        (
            "Basic, a form",
            introspection(app)
                .basic_auth("authgate", Some(CLIENT_SECRET))
                .form(&[("token", access.as_str())]),
        ),
        (
            "Basic, a form with a hint",
            introspection(app)
                .basic_auth("authgate", Some(CLIENT_SECRET))
                .form(&[
                    ("token", access.as_str()),
                    ("token_type_hint", "access_token"),
                ]),
        ),
        (
            "a client token, a form",
            introspection(app)
                .bearer_auth(&admin)
                .form(&[("token", access.as_str())]),
        ),
        (
            "a client token, JSON with a hint",
            introspection(app)
                .bearer_auth(&admin)
                .json(&json!({ "token": access, "token_type_hint": "refresh_token" })),
        ),
    ];
    for (what, req) in asks {
        let (status, body) = parts(req.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{what}: {body}");
        assert_eq!(body["active"], true, "{what}: {body}");
        assert_eq!(body["sub"], user_id.as_str(), "{what}");
        assert_eq!(body["username"], "wes@app.acct", "{what}");
        assert_eq!(body["realm_id"], realm.as_str(), "{what}");
        assert_eq!(body["scheme"], "one-time-key", "{what}");
        assert!(body["exp"].as_i64().unwrap() > 0, "{what}");
    }
    // Its own client tokens are the client's to see.
    let (status, body) = app.introspect(&admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["scheme"], "client");
    assert_eq!(body["sub"], "authgate");
}

#[tokio::test]
async fn the_client_gets_a_live_token_by_basic_or_bearer_and_from_a_form_or_json() {
    on_both_stores!(answers_the_client_by_basic_or_bearer_in_a_form_or_json);
}

#[tokio::test]
async fn basic_credentials_may_come_form_encoded_as_rfc_6749_says() {
    const SECRET: &str = "p@ss word+1:x%";
    let tweak = |c: &mut authgate_gateway::Config| {
        c.client_secret = Some(secrecy::SecretString::from(SECRET.to_owned()));
    };
    let app = spawn_app_with(None, tweak).await;
    for (what, secret, want) in [
        ("as it is", SECRET, StatusCode::OK),
        ("form-encoded", "p%40ss+word%2B1%3Ax%25", StatusCode::OK),
        (
            "wrongly encoded",
            "p%40ss+word%2B1%3Ax%2",
            StatusCode::UNAUTHORIZED,
        ),
        ("another", "p@ss word 1:x%", StatusCode::UNAUTHORIZED),
    ] {
        let (status, _, body) = answer(
            introspection(&app)
                .basic_auth("authgate", Some(secret))
                .form(&[("token", "garbage")]),
        )
        .await;
        assert_eq!(status, want, "{what}: {body}");
    }
}

/// Whether the answer is exactly `{"active": false}`.
async fn inactive(app: &TestApp, what: &str, token: &str) {
    let (status, body) = app.introspect(token).await;
    assert_eq!(status, StatusCode::OK, "{what}: {body}");
    assert_eq!(body, json!({"active": false}), "{what}");
    // The form and a client token get the same.
    let admin = app.admin_token().await;
    let (status, body) = parts(
        introspection(app)
            .bearer_auth(&admin)
            .form(&[("token", token)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"active": false})),
        "{what}, as a form with a client token"
    );
}

async fn says_only_inactive_of_what_is_not_live(app: &TestApp) {
    let u = app.web_user("ina", "inapass12").await;
    let login = app.key_login(&u).await;
    let access = login["tokens"]["accessToken"].as_str().unwrap();
    let refresh = login["tokens"]["refreshToken"].as_str().unwrap();
    let resp = app
        .post_raw("/v1/logout", &json!({ "accessToken": access }))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    inactive(app, "a revoked access token", access).await;
    inactive(app, "a refresh token", refresh).await;
    inactive(app, "garbage", "garbage").await;
    inactive(app, "a malformed token", "a.x.y").await;
    inactive(
        app,
        "an unknown token",
        &format!("a.{}.{}", "A".repeat(22), "B".repeat(43)),
    )
    .await;
    inactive(app, "nothing", "").await;
    let implicit = app.implicit_token().await;
    let resp = app
        .post_raw("/v1/logout", &json!({ "accessToken": implicit }))
        .await;
    assert!(resp.status().is_success());
    inactive(app, "a revoked client token", &implicit).await;
}

#[tokio::test]
async fn anything_not_live_is_exactly_active_false() {
    on_both_stores!(says_only_inactive_of_what_is_not_live);
}

async fn says_only_inactive_of_an_expired_token(redis: Option<&TestRedis>) {
    let app = spawn_app_with(redis, |c| c.access_token_ttl = Duration::from_secs(1)).await;
    let u = app.web_user("exp", "exppass12").await;
    let login = app.key_login(&u).await;
    let access = login["tokens"]["accessToken"].as_str().unwrap();
    assert_eq!(app.introspect(access).await.1["active"], true);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    inactive(&app, "an expired access token", access).await;
}

#[tokio::test]
async fn an_expired_token_is_exactly_active_false() {
    says_only_inactive_of_an_expired_token(None).await;
    let redis = redis_or_skip!();
    says_only_inactive_of_an_expired_token(Some(&redis)).await;
}

/// Three calls per address and minute; calls from 127.0.0.1 may say whom they
/// come for in `X-Forwarded-For`, so the setup's own calls count apart.
fn small_limit(c: &mut authgate_gateway::Config) {
    c.limits.per_ip = limit(3, 60);
    c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
}

async fn counts_every_call_against_the_address(redis: Option<&TestRedis>) {
    let app = spawn_app_with(redis, small_limit).await;
    let (access, user_id) = live_token(&app).await;
    let from = |address: &'static str| introspection(&app).header("x-forwarded-for", address);
    let basic = |req: RequestBuilder| {
        req.basic_auth("authgate", Some(CLIENT_SECRET))
            .json(&json!({ "token": access }))
    };
    // Refused and accepted calls alike count.
    let (status, _, _) = answer(from("203.0.113.9").json(&json!({ "token": access }))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = answer(
        from("203.0.113.9")
            .basic_auth("authgate", Some("wrong"))
            .json(&json!({ "token": access })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = answer(basic(from("203.0.113.9"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The fourth is refused, right credentials or not, and tells nothing of the token.
    for req in [
        basic(from("203.0.113.9")),
        from("203.0.113.9").json(&json!({ "token": access })),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        let body = resp.text().await.unwrap();
        assert!(
            !body.contains(&user_id) && !body.contains("active"),
            "{body}"
        );
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["errors"][0]["status"], "429", "{body}");
    }
    // The counter is the one of client authentication: the token endpoint is
    // limited for that address too.
    let resp = app
        .http
        .post(app.url("/oauth/access_token"))
        .header("x-forwarded-for", "203.0.113.9")
        .form(&[("grant_type", "implicit"), ("client_id", "authgate")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another address is not limited.
    let (status, body) = parts(basic(from("203.0.113.10")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active"], true);
}

#[tokio::test]
async fn every_introspection_counts_against_the_callers_address() {
    counts_every_call_against_the_address(None).await;
    let redis = redis_or_skip!();
    counts_every_call_against_the_address(Some(&redis)).await;
}

#[tokio::test]
async fn another_client_ids_tokens_are_not_the_clients_to_see_nor_to_ask_with() {
    // Two gateways on one store and realm, with different client ids: the
    // client of one is not the client of the other.
    let redis = redis_or_skip!();
    let (url, prefix) = (redis.url.clone(), redis.prefix.clone());
    let ours = spawn_app_on(&url, &prefix, |_| {}).await;
    let theirs = spawn_app_on(&url, &prefix, |c| c.client_id = "other-client".into()).await;
    let (access, _) = live_token(&ours).await;
    let their_token = theirs
        .http
        .post(theirs.url("/oauth/access_token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "other-client"),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = parts(their_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let their_token = body["access_token"].as_str().unwrap().to_owned();

    // The users of the realm are the other client's to see as well...
    let (status, body) = parts(
        introspection(&theirs)
            .basic_auth("other-client", Some(CLIENT_SECRET))
            .form(&[("token", access.as_str())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["active"], true, "{body}");
    // ... but not its client tokens, and that client's token does not open ours.
    let (status, body) = ours.introspect(&their_token).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"active": false})),
        "another client's token"
    );
    let (status, challenge, body) = answer(
        introspection(&ours)
            .bearer_auth(&their_token)
            .json(&json!({ "token": access })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(challenge.unwrap().starts_with("Basic"));
}

#[tokio::test]
async fn the_document_declares_basic_and_bearer_and_the_form_body() {
    let app = spawn_app(None).await;
    let doc: Value = app.get_raw("/openapi.json").await.json().await.unwrap();
    let op = &doc["paths"][PATH]["post"];
    assert_eq!(
        op["security"],
        json!([{"ClientSecretBasic": []}, {"BearerToken": []}])
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(
        schemes["ClientSecretBasic"],
        json!({"type": "http", "scheme": "basic", "description": schemes["ClientSecretBasic"]["description"]})
    );
    assert_eq!(schemes["BearerToken"]["scheme"], "bearer");
    let content = op["requestBody"]["content"].as_object().unwrap();
    // The form is documented (one media type, so generated clients can send it);
    // the description says JSON works too, which the tests above prove.
    assert!(content.contains_key("application/x-www-form-urlencoded"));
    assert!(op["requestBody"]["description"]
        .as_str()
        .unwrap()
        .contains("application/json"));
    for status in ["200", "401", "429"] {
        assert!(op["responses"].get(status).is_some(), "{status}");
    }
    assert!(op["responses"]["401"]["headers"]
        .as_object()
        .unwrap()
        .keys()
        .any(|h| h.eq_ignore_ascii_case("www-authenticate")));
}
