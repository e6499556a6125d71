//! Scheme B, black box: codes, webhook delivery through the outbox, the token
//! exchange and password reset, on a private Redis with a real HTTP receiver.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::time::Duration;

use authgate_tests::app::{limit, parts, Shop, TestApp};
use authgate_tests::webhook::Receiver;
use authgate_tests::{redis_or_skip, spawn_app, spawn_app_with, TestRedis};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "whsec-test-123";

/// A shop whose member is John Doe and whose codes go to the webhook receiver at `hook`.
async fn shop(app: &TestApp, hook: &str) -> Shop {
    app.shop("John Doe", "john.doe@banks.com",
        json!({"type": "integration", "name": "One Time Password notification", "description": "Send one time password notification",
            "integration_type": "webhook", "enabled": true, "observes": ["one-time-password-token-request.created"],
            "configuration": {"url": hook, "secret_key": SECRET}}))
        .await
}

/// A webhook receiver, a gateway on `redis`, and the shop, whose codes go to the
/// receiver.
async fn johns_shop(redis: &TestRedis) -> (Receiver, TestApp, Shop) {
    let hook = Receiver::start().await;
    let app = spawn_app(Some(redis)).await;
    let s = shop(&app, &hook.url).await;
    (hook, app, s)
}

/// John Doe's password exchange.
async fn with_password(app: &TestApp, s: &Shop, password: &str) -> (StatusCode, Value) {
    app.password_token(s, "john.doe@banks.com", password).await
}

/// Disables the shop's member (john.doe) through the admin API.
async fn disable_member(app: &TestApp, s: &Shop) {
    let (status, _) = app
        .admin(
            &s.admin,
            Method::PUT,
            &format!(
                "/v2/authentication-realms/{}/user-authentication-info/{}",
                s.realm, s.user_id
            ),
            Some(json!({"data": {"type": "user_authentication_info", "enabled": false}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// Requests a passwordless code for John and reads it from the `n`th delivery.
async fn johns_code(app: &TestApp, s: &Shop, hook: &Receiver, n: usize) -> String {
    app.request_code(s, "john.doe@banks.com", "passwordless_authentication")
        .await;
    code_of(&hook.wait_for(n, Duration::from_secs(5)).await[n - 1])
}

fn code_of(d: &authgate_tests::webhook::Delivery) -> String {
    d.body["payload"]["one_time_password_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn passwordless_login_end_to_end_with_the_webhook_body_field_for_field() {
    let redis = redis_or_skip!();
    let (hook, app, s) = johns_shop(&redis).await;

    let resp = app
        .request_code(&s, "John.Doe@banks.com", "passwordless_authentication")
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert!(
        resp.text().await.unwrap().is_empty(),
        "202 with an empty body"
    );

    let got = hook.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "delivered within a second or so");
    let d = &got[0];
    let b = &d.body;
    assert_eq!(
        keys(b),
        [
            "attempt",
            "configuration",
            "id",
            "integration",
            "payload",
            "store_id",
            "triggered_by"
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(b["triggered_by"], "one-time-password-token-request.created");
    assert_eq!(b["attempt"], 1);
    assert_eq!(
        b["integration"],
        json!({"id": s.integration, "integration_type": "webhook", "name": "One Time Password notification", "description": "Send one time password notification"})
    );
    assert_eq!(
        b["configuration"],
        json!({"url": hook.url, "secret_key": SECRET})
    );
    let p = &b["payload"];
    assert_eq!(
        keys(p),
        [
            "authentication_realm_id",
            "created_at",
            "one_time_password_token",
            "password_profile_id",
            "purpose",
            "updated_at",
            "user_authentication_info",
            "user_authentication_password_profile_info"
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(p["authentication_realm_id"], s.realm.as_str());
    assert_eq!(p["purpose"], "passwordless_authentication");
    assert_eq!(p["password_profile_id"], s.profile.as_str());
    assert_eq!(
        p["user_authentication_info"],
        json!({"email": "john.doe@banks.com", "id": s.user_id, "name": "John Doe"})
    );
    assert_eq!(
        p["user_authentication_password_profile_info"],
        json!({"id": s.credential_id, "password_profile_id": s.profile, "username": "john.doe@banks.com"})
    );
    let code = code_of(d);
    assert!(
        code.len() == 6
            && code
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "{code}"
    );
    assert!(uuid::Uuid::parse_str(b["id"].as_str().unwrap()).is_ok());

    // The headers: the shared secret and a signature of "<t>.<body>".
    assert_eq!(d.headers["x-moltin-secret-key"], SECRET);
    let sig = &d.headers["x-authgate-signature"];
    let (t, v1) = sig.strip_prefix("t=").unwrap().split_once(",v1=").unwrap();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&d.raw);
    assert_eq!(hex::encode(mac.finalize().into_bytes()), v1);

    let (status, body) = app.exchange_code(&s, "john.doe@banks.com", &code).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let t = &body["data"][0];
    assert_eq!(t["type"], "account_management_authentication_token");
    assert_eq!(t["account_name"], "John Doe");
    assert_eq!(body["meta"]["account_member_id"], s.user_id.as_str());
    assert_eq!(body["meta"]["results"]["total"], 1);
    let token = t["token"].as_str().unwrap();
    let expires = time::OffsetDateTime::parse(
        t["expires"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(
        (left.whole_seconds() - 86_400).abs() < 60,
        "default timeout: {left}"
    );

    // The JWT's claims.
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], s.user_id.as_str());
    assert_eq!(claims["realm_id"], s.realm.as_str());
    assert_eq!(claims["scope"], t["account_id"]);
    assert_eq!(claims["account_member_self_management"], "disabled");

    // It works at the gateway checks.
    let resp = app
        .http
        .get(app.url("/v1/auth/verify"))
        .header("EP-Account-Management-Authentication-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-auth-scheme"], "account-management");
    assert_eq!(resp.headers()["x-auth-user-id"], s.user_id.as_str());
    let (_, intro) = app.introspect(token).await;
    assert_eq!(intro["active"], true);
    assert_eq!(intro["scheme"], "account-management");

    // Single use.
    let (status, body) = app.exchange_code(&s, "john.doe@banks.com", &code).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errors"][0]["status"], "401");
}

#[tokio::test]
async fn password_reset_with_the_account_token_replaces_the_password_and_ends_sessions() {
    let redis = redis_or_skip!();
    let (hook, app, s) = johns_shop(&redis).await;
    let (status, _) = app
        .admin(&s.admin, Method::PUT, "/v2/settings/account-authentication",
            Some(json!({"data": {"type": "account_authentication_settings", "account_member_self_management": "update_only"}})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, old_session) = with_password(&app, &s, "old-password-1").await;
    assert_eq!(status, StatusCode::CREATED, "{old_session}");

    assert_eq!(
        app.request_code(&s, "john.doe@banks.com", "reset_password")
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let d = hook.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(d[0].body["payload"]["purpose"], "reset_password");
    let (status, body) = app
        .exchange_code(&s, "john.doe@banks.com", &code_of(&d[0]))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["data"][0]["token"].as_str().unwrap().to_owned();

    let path = s.credential_path();
    // Not someone else's record.
    let other = format!("/v2/authentication-realms/{}/user-authentication-info/{}/user-authentication-password-profile-info/{}", s.realm, uuid::Uuid::new_v4(), s.credential_id);
    let (status, _) = app
        .member_password(&s, &other, &token, "new-password-2")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = app
        .member_password(&s, &path, &token, "new-password-2")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        with_password(&app, &s, "old-password-1").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with_password(&app, &s, "new-password-2").await.0,
        StatusCode::CREATED
    );
    // The new password ended the sessions: the earlier token and the reset token.
    let old = old_session["data"][0]["token"].as_str().unwrap();
    assert_eq!(app.verify(old).await.0, StatusCode::UNAUTHORIZED);
    let resp = app
        .http
        .get(app.url("/v1/auth/verify"))
        .header("EP-Account-Management-Authentication-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .member_password(&s, &path, &token, "third-password-3")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn self_management_disabled_refuses_a_members_update() {
    let redis = redis_or_skip!();
    let (_hook, app, s) = johns_shop(&redis).await;
    let (_, body) = with_password(&app, &s, "old-password-1").await;
    let token = body["data"][0]["token"].as_str().unwrap();
    let (status, _) = app
        .member_password(&s, &s.credential_path(), token, "new-password-2")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        with_password(&app, &s, "old-password-1").await.0,
        StatusCode::CREATED,
        "unchanged"
    );
}

#[tokio::test]
async fn the_code_lives_ten_minutes_in_redis_and_no_code_is_left_in_clear() {
    let redis = redis_or_skip!();
    let (hook, app, s) = johns_shop(&redis).await;
    app.request_code(&s, "john.doe@banks.com", "passwordless_authentication")
        .await;
    let d = hook.wait_for(1, Duration::from_secs(5)).await;
    let code = code_of(&d[0]);
    let stored = redis.keys_ending(":otp").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let ttl = redis.pttl(&stored[0]).await;
    assert!(ttl > 590_000 && ttl <= 600_000, "ttl {ttl}");
    // Delivered and acknowledged: the outbox entry is gone, nothing holds the code.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dump = redis.dump().await;
    assert!(
        !dump.contains(&code),
        "the code is in clear in Redis after delivery"
    );
    assert!(
        !dump.contains(SECRET),
        "the webhook secret is sealed at rest"
    );
}

#[tokio::test]
async fn a_new_request_replaces_the_code_and_five_wrong_tries_burn_it() {
    let redis = redis_or_skip!();
    let (hook, app, s) = johns_shop(&redis).await;
    let first = johns_code(&app, &s, &hook, 1).await;
    let second = johns_code(&app, &s, &hook, 2).await;
    if first != second {
        assert_eq!(
            app.exchange_code(&s, "john.doe@banks.com", &first).await.0,
            StatusCode::UNAUTHORIZED,
            "the first code is void"
        );
    }
    assert_eq!(
        app.exchange_code(&s, "john.doe@banks.com", &second).await.0,
        StatusCode::CREATED
    );

    let third = johns_code(&app, &s, &hook, 3).await;
    let wrongs: Vec<String> = ["aaaaa1", "aaaaa2", "aaaaa3", "aaaaa4", "aaaaa5", "aaaaa6"]
        .into_iter()
        .filter(|w| *w != third)
        .take(5)
        .map(String::from)
        .collect();
    for wrong in &wrongs {
        let (status, body) = app.exchange_code(&s, "john.doe@banks.com", wrong).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    assert_eq!(
        app.exchange_code(&s, "john.doe@banks.com", &third).await.0,
        StatusCode::UNAUTHORIZED,
        "burnt after five wrong tries"
    );
    assert!(redis.keys_ending(":otp").await.is_empty());
}

#[tokio::test]
async fn concurrent_exchanges_of_one_code_across_two_instances_have_exactly_one_winner() {
    let redis = redis_or_skip!();
    let hook = Receiver::start().await;
    let a = spawn_app(Some(&redis)).await;
    let b = spawn_app_with(Some(&redis), |c| c.delivery_worker = false).await;
    let s = shop(&a, &hook.url).await;
    a.request_code(&s, "john.doe@banks.com", "passwordless_authentication")
        .await;
    let code = code_of(&hook.wait_for(1, Duration::from_secs(5)).await[0]);
    let tries: Vec<_> = (0..16)
        .map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            app
                .http
                .post(app.url("/v2/account-members/tokens"))
                .bearer_auth(&s.implicit)
                .json(&json!({"data": {"type": "account_management_authentication_token", "authentication_mechanism": "passwordless",
                    "password_profile_id": s.profile, "username": "john.doe@banks.com", "one_time_password_token": code}}))
        })
        .collect();
    let statuses = authgate_tests::app::all_at_once(tries).await;
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn unknown_and_throttled_requests_get_the_same_202_and_send_nothing() {
    let redis = redis_or_skip!();
    let hook = Receiver::start().await;
    let app = spawn_app_with(Some(&redis), |c| c.limits.requests_per_user = limit(2, 600)).await;
    let s = shop(&app, &hook.url).await;
    // After each request, as many webhooks as there should be by then (a new
    // request replaces the earlier code, so John's are spaced out: a code that is
    // replaced before its turn is not worth sending).
    for (name, delivered) in [
        ("nobody@banks.com", 0),
        ("not an email", 0),
        ("john.doe@banks.com", 1),
        ("john.doe@banks.com", 2),
        ("john.doe@banks.com", 2),
    ] {
        let resp = app.request_code(&s, name, "reset_password").await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "{name}");
        assert!(resp.text().await.unwrap().is_empty());
        hook.wait_for(delivered, Duration::from_secs(5)).await;
        let got = hook
            .wait_for(delivered + 1, Duration::from_millis(500))
            .await;
        assert_eq!(got.len(), delivered, "after a request for {name}");
    }
    assert!(hook.received().iter().all(|d| d.body["payload"]
        ["user_authentication_password_profile_info"]["username"]
        == "john.doe@banks.com"));
}

/// The count of `stage` in the codes' funnel, from `/metrics`.
async fn funnel_count(app: &TestApp, stage: &str) -> u64 {
    let resp = app.http.get(app.url("/metrics")).send().await.unwrap();
    let text = resp.text().await.unwrap();
    let line = format!(r#"authgate_funnel_total{{scheme="one_time_password",stage="{stage}"}} "#);
    text.lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn past_the_per_address_limit_a_code_request_still_gets_its_202_and_sends_nothing() {
    let redis = redis_or_skip!();
    let hook = Receiver::start().await;
    // Two requests per address and minute; the test's calls from 127.0.0.1 say
    // in X-Forwarded-For which address they stand for.
    let app = spawn_app_with(Some(&redis), |c| {
        c.limits.per_ip = limit(2, 60);
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let s = shop(&app, &hook.url).await;
    const JOHN: &str = "john.doe@banks.com";
    const UNKNOWN_PROFILE: &str = "00000000-0000-4000-8000-000000000000";
    let from = |address: &'static str, profile: &str, username: &str| {
        app.http
            .post(app.url(&format!(
                "/v2/authentication-realms/{}/password-profiles/{profile}/one-time-password-token-request",
                s.realm
            )))
            .header("x-forwarded-for", address)
            .bearer_auth(&s.implicit)
            .json(&json!({"data": {"type": "one_time_password_token_request", "username": username,
                "purpose": "passwordless_authentication"}}))
            .send()
    };
    for n in 1..=2 {
        let resp = from("203.0.113.5", &s.profile, JOHN).await.unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        assert_eq!(hook.wait_for(n, Duration::from_secs(5)).await.len(), n);
    }
    let live = code_of(&hook.received()[1]);
    let throttled = funnel_count(&app, "throttled").await;

    // Past the limit: the same empty 202, for a known username and an unknown one.
    for name in [JOHN, "nobody@banks.com", JOHN] {
        let resp = from("203.0.113.5", &s.profile, name).await.unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "{name}");
        assert!(!resp.headers().contains_key("retry-after"), "{name}");
        assert!(resp.text().await.unwrap().is_empty(), "{name}");
    }
    // What does not depend on a limit is answered as ever.
    let resp = from("203.0.113.5", UNKNOWN_PROFILE, JOHN).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // Nothing more was sent, the funnel counted each as throttled, and John's
    // live code was not replaced.
    let got = hook.wait_for(3, Duration::from_secs(1)).await;
    assert_eq!(got.len(), 2, "a limited request sent something");
    assert_eq!(funnel_count(&app, "throttled").await, throttled + 3);
    let (status, body) = app.exchange_code(&s, JOHN, &live).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Another address is not limited.
    let resp = from("203.0.113.6", &s.profile, JOHN).await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(hook.wait_for(3, Duration::from_secs(5)).await.len(), 3);
}

#[tokio::test]
async fn bad_requests_are_refused_in_the_errors_shape() {
    let redis = redis_or_skip!();
    let (hook, app, s) = johns_shop(&redis).await;
    let (_, p) = app
        .admin(
            &s.admin,
            Method::POST,
            &format!("/v2/authentication-realms/{}/password-profiles", s.realm),
            Some(json!({"data": {"type": "password_profile", "name": "No codes"}})),
        )
        .await;
    let off = p["data"]["id"].as_str().unwrap();
    let url = |profile: &str| {
        app.url(&format!("/v2/authentication-realms/{}/password-profiles/{profile}/one-time-password-token-request", s.realm))
    };
    let ok_body = json!({"data": {"type": "one_time_password_token_request", "username": "john.doe@banks.com", "purpose": "reset_password"}});
    for (profile, body, want) in [
        (off, ok_body.clone(), StatusCode::UNPROCESSABLE_ENTITY),
        ("no-such-profile", ok_body.clone(), StatusCode::NOT_FOUND),
        (
            s.profile.as_str(),
            json!({"data": {"type": "one_time_password_token_request", "username": "x", "purpose": "login"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            s.profile.as_str(),
            json!({"data": {"type": "wrong", "username": "x", "purpose": "reset_password"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            s.profile.as_str(),
            json!({"username": "x"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, resp) = parts(
            app.http
                .post(url(profile))
                .bearer_auth(&s.implicit)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, want, "{profile} {body}: {resp}");
        assert_eq!(resp["errors"][0]["status"], want.as_u16().to_string());
    }
    let (status, _) = parts(
        app.http
            .post(url(&s.profile))
            .json(&ok_body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a client token is required"
    );
    for body in [
        json!({"data": {"type": "account_management_authentication_token", "authentication_mechanism": "passwordless", "password_profile_id": s.profile, "username": "john.doe@banks.com", "one_time_password_token": "xx"}}),
        json!({"data": {"type": "account_management_authentication_token", "authentication_mechanism": "password", "password_profile_id": s.profile, "username": "nobody@banks.com", "password": "whatever1"}}),
        json!({"data": {"type": "account_management_authentication_token", "authentication_mechanism": "passwordless", "password_profile_id": "nope", "username": "john.doe@banks.com", "one_time_password_token": "abc123"}}),
    ] {
        let (status, resp) = parts(
            app.http
                .post(app.url("/v2/account-members/tokens"))
                .bearer_auth(&s.implicit)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}: {resp}");
        assert_eq!(resp["errors"][0]["status"], "401");
    }
    assert!(hook.received().is_empty());
}

#[tokio::test]
async fn delivery_survives_a_receiver_outage_and_every_try_is_logged() {
    let redis = redis_or_skip!();
    let hook = Receiver::start().await;
    let app = spawn_app_with(Some(&redis), |c| {
        c.webhook_retry_base = Duration::from_millis(100)
    })
    .await;
    let s = shop(&app, &hook.url).await;
    hook.answer(503);
    app.request_code(&s, "john.doe@banks.com", "passwordless_authentication")
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let port = hook.stop().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let hook = Receiver::start_on(port).await;
    let got = hook.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1, "delivered once the receiver is back");
    let attempt = got[0].body["attempt"].as_u64().unwrap();
    assert!(attempt >= 3, "attempt counts the tries: {attempt}");
    let code = code_of(&got[0]);
    assert_eq!(
        app.exchange_code(&s, "john.doe@banks.com", &code).await.0,
        StatusCode::CREATED
    );

    let (status, logs) = app.delivery_log(&s.admin, &s.integration).await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    let entries = logs["data"].as_array().unwrap();
    assert_eq!(entries.len() as u64, attempt, "{logs}");
    assert_eq!(entries[0]["succeeded"], true);
    assert_eq!(entries[0]["status_code"], 200);
    assert_eq!(entries[0]["attempt"], attempt);
    assert!(
        entries[1..]
            .iter()
            .all(|e| e["succeeded"] == false && !e["error_detail"].as_str().unwrap().is_empty()),
        "{logs}"
    );
    assert!(
        entries.iter().any(|e| e["status_code"] == 503),
        "the 503 answers are logged"
    );
    assert!(
        entries.iter().any(|e| e["status_code"].is_null()),
        "the refused connections are logged"
    );
    let (_, all) = app
        .admin(&s.admin, Method::GET, "/v2/integrations/logs", None)
        .await;
    assert_eq!(all["data"].as_array().unwrap().len(), entries.len());
}

#[tokio::test]
async fn delivery_survives_a_gateway_restart_and_a_crashed_replicas_entries_are_claimed() {
    let redis = redis_or_skip!();
    let hook = Receiver::start().await;
    // A replica that accepts requests but delivers nothing, then goes away.
    let first = spawn_app_with(Some(&redis), |c| c.delivery_worker = false).await;
    let s = shop(&first, &hook.url).await;
    add_member(&first, &s, "Jane Roe", "jane.roe@banks.com").await;
    for (name, purpose) in [
        ("john.doe@banks.com", "passwordless_authentication"),
        // Replaces John's first code, which is then not worth delivering.
        ("john.doe@banks.com", "reset_password"),
        ("jane.roe@banks.com", "passwordless_authentication"),
    ] {
        assert_eq!(
            first.request_code(&s, name, purpose).await.status(),
            StatusCode::ACCEPTED
        );
    }
    // A replica that took the entries (from every shard's stream) and died
    // before acknowledging them.
    let reads = (0..authgate_core::store::SHARDS)
        .map(|shard| authgate_core::store::Op::StreamRead {
            stream: first.state.keys.in_shard(shard, "outbox:events"),
            group: "delivery".into(),
            consumer: "crashed-replica".into(),
            count: 10,
        })
        .collect();
    let taken: Vec<_> = first
        .state
        .store
        .exec(reads)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|r| r.into_entries().unwrap())
        .collect();
    assert_eq!(
        taken.len(),
        3,
        "all entries were taken by the crashed consumer"
    );
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(hook.received().is_empty());

    let second = spawn_app_with(Some(&redis), |c| {
        c.delivery_claim_after = Duration::from_millis(500)
    })
    .await;
    let got = hook.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(
        got.len(),
        2,
        "the new replica delivered what the dead one left pending"
    );
    // Nothing for the replaced code, even after the claimed entries are settled.
    assert_eq!(hook.wait_for(3, Duration::from_millis(800)).await.len(), 2);
    let sent: BTreeSet<_> = got
        .iter()
        .map(|d| {
            let p = &d.body["payload"];
            (
                p["user_authentication_password_profile_info"]["username"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                p["purpose"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        sent,
        [
            ("jane.roe@banks.com", "passwordless_authentication"),
            ("john.doe@banks.com", "reset_password"),
        ]
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
        .into()
    );
    for d in &got {
        let username = d.body["payload"]["user_authentication_password_profile_info"]["username"]
            .as_str()
            .unwrap();
        assert_eq!(
            second.exchange_code(&s, username, &code_of(d)).await.0,
            StatusCode::CREATED,
            "{username}'s delivered code works"
        );
    }
}

/// Adds a user with a credential (no password) in the shop's profile.
async fn add_member(app: &TestApp, s: &Shop, name: &str, email: &str) {
    let base = format!("/v2/authentication-realms/{}", s.realm);
    let (status, u) = app
        .admin(
            &s.admin,
            Method::POST,
            &format!("{base}/user-authentication-info"),
            Some(
                json!({"data": {"type": "user_authentication_info", "name": name, "email": email}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{u}");
    let user_id = u["data"]["id"].as_str().unwrap();
    let (status, c) = app
        .admin(&s.admin, Method::POST, &format!("{base}/user-authentication-info/{user_id}/user-authentication-password-profile-info"),
            Some(json!({"data": {"type": "user_authentication_password_profile_info", "password_profile_id": s.profile, "username": email}})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
}

#[tokio::test]
async fn integrations_round_trip_and_validate() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let t = app.admin_token().await;
    let (status, i) = app
        .admin(&t, Method::POST, "/v2/integrations",
            Some(json!({"data": {"type": "integration", "name": "hook", "integration_type": "webhook", "configuration": {"url": "http://127.0.0.1:9/x"}}})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{i}");
    assert_eq!(
        i["data"]["observes"],
        json!(["one-time-password-token-request.created"])
    );
    assert_eq!(i["data"]["enabled"], true);
    let id = i["data"]["id"].as_str().unwrap();
    let (status, u) = app
        .admin(&t, Method::PUT, &format!("/v2/integrations/{id}"), Some(json!({"data": {"type": "integration", "enabled": false, "configuration": {"secret_key": "s3"}}})))
        .await;
    assert_eq!(status, StatusCode::OK, "{u}");
    assert_eq!(u["data"]["enabled"], false);
    assert_eq!(u["data"]["configuration"]["secret_key"], "s3");
    assert_eq!(u["data"]["configuration"]["url"], "http://127.0.0.1:9/x");
    let (_, list) = app.admin(&t, Method::GET, "/v2/integrations", None).await;
    assert_eq!(list["meta"]["results"]["total"], 1);
    for (body, want) in [
        (
            json!({"data": {"type": "integration", "name": "x", "integration_type": "webhook"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"data": {"type": "integration", "name": "x", "configuration": {"url": "ftp://x"}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"data": {"type": "integration", "name": "x", "observes": ["order.created"], "configuration": {"url": "http://x.test/"}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"data": {"type": "integration", "name": "x", "integration_type": "sms"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"data": {"type": "nope", "name": "x"}}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, resp) = app
            .admin(&t, Method::POST, "/v2/integrations", Some(body.clone()))
            .await;
        assert_eq!(status, want, "{body}: {resp}");
    }
    let (status, _) = app
        .admin(&t, Method::DELETE, &format!("/v2/integrations/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .admin(&t, Method::GET, &format!("/v2/integrations/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Redis commands run since the last reset, by name (the worker is off, so only the request counts).
async fn commands(redis: &TestRedis) -> std::collections::BTreeMap<String, u64> {
    let mut c = redis.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        // The test's own, and the session cache's heartbeat (a PING every 100 ms).
        .filter(|(name, _)| name != "info" && name != "config" && name != "ping")
        .collect()
}

async fn reset_stats(redis: &TestRedis) {
    let mut c = redis.conn().await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut c)
        .await
        .unwrap();
}

#[tokio::test]
async fn known_unknown_and_throttled_code_requests_do_the_same_store_work() {
    let redis = redis_or_skip!();
    let hook = Receiver::start().await;
    let app = spawn_app_with(Some(&redis), |c| {
        c.delivery_worker = false;
        c.limits.requests_per_user = limit(2, 600);
    })
    .await;
    let s = shop(&app, &hook.url).await;
    // Opens this client's address window, whose first hit also sets its expiry.
    app.request_code(&s, "warm-up@banks.com", "reset_password")
        .await;
    let mut seen = Vec::new();
    // First requests of two usernames (each opens its own window), then a second
    // request within the limit and a third over it.
    for name in [
        "john.doe@banks.com",
        "nobody@banks.com",
        "john.doe@banks.com",
        "john.doe@banks.com",
    ] {
        reset_stats(&redis).await;
        assert_eq!(
            app.request_code(&s, name, "reset_password").await.status(),
            StatusCode::ACCEPTED
        );
        seen.push(commands(&redis).await);
    }
    assert!(seen[0].contains_key("xadd"), "{:?}", seen[0]);
    assert_eq!(seen[0], seen[1], "known vs unknown username");
    // Over the limit, the one script that counts the request skips its write (the
    // SET of the code and the DEL of the old try counter); every round trip is the same.
    let without_guarded_write = |m: &std::collections::BTreeMap<String, u64>| {
        let mut m = m.clone();
        m.remove("set");
        m.remove("del");
        m
    };
    assert_eq!(seen[2].get("set"), Some(&1));
    assert_eq!(seen[3].get("set"), None, "nothing written over the limit");
    assert_eq!(
        without_guarded_write(&seen[2]),
        without_guarded_write(&seen[3]),
        "within vs over the limit"
    );
}

#[tokio::test]
async fn a_resent_wrong_code_spends_one_try_like_the_sdks_retries() {
    let redis = redis_or_skip!();
    let (hook, app, s) = johns_shop(&redis).await;
    let code = johns_code(&app, &s, &hook, 1).await;
    let typo = if code == "zzzzzz" { "yyyyyy" } else { "zzzzzz" };
    // Four wrong tries: the first typo resent four times (one try), then three others.
    for _ in 0..4 {
        assert_eq!(
            app.exchange_code(&s, "john.doe@banks.com", typo).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    for other in ["x0x0x1", "x0x0x2", "x0x0x3"] {
        assert_eq!(
            app.exchange_code(&s, "john.doe@banks.com", other).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.exchange_code(&s, "john.doe@banks.com", &code).await.0,
        StatusCode::CREATED,
        "one try was left"
    );
    // A resent wrong password counts once against the username's guess limit too.
    for _ in 0..12 {
        assert_eq!(
            with_password(&app, &s, "not-the-password").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        with_password(&app, &s, "old-password-1").await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_member_update_still_needs_a_client_token_and_account_tokens_can_log_out() {
    let redis = redis_or_skip!();
    let (_hook, app, s) = johns_shop(&redis).await;
    app.admin(&s.admin, Method::PUT, "/v2/settings/account-authentication",
        Some(json!({"data": {"type": "account_authentication_settings", "account_member_self_management": "update_only"}}))).await;
    let (_, body) = with_password(&app, &s, "old-password-1").await;
    let token = body["data"][0]["token"].as_str().unwrap().to_owned();
    let path = s.credential_path();
    let body = json!({"data": {"type": "user_authentication_password_profile_info", "password": "new-password-2"}});
    for auth in [None, Some("Bearer nonsense")] {
        let mut req = app
            .http
            .put(app.url(&path))
            .header("EP-Account-Management-Authentication-Token", &token)
            .json(&body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        assert_eq!(
            req.send().await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{auth:?}"
        );
    }
    // An implicit token alone is not enough either.
    let resp = app
        .http
        .put(app.url(&path))
        .bearer_auth(&s.implicit)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        with_password(&app, &s, "old-password-1").await.0,
        StatusCode::CREATED,
        "nothing changed"
    );

    let resp = app
        .post_raw("/v1/logout", &json!({"accessToken": token}))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = app
        .http
        .get(app.url("/v1/auth/verify"))
        .header("EP-Account-Management-Authentication-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_disabled_user_gets_no_code() {
    let redis = redis_or_skip!();
    let (hook, app, s) = johns_shop(&redis).await;
    disable_member(&app, &s).await;
    assert_eq!(
        app.request_code(&s, "john.doe@banks.com", "passwordless_authentication")
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert!(hook
        .wait_for(1, Duration::from_millis(800))
        .await
        .is_empty());
}

#[tokio::test]
async fn a_member_keeps_one_account_and_a_disabled_member_gets_no_token() {
    let redis = redis_or_skip!();
    let (hook, app, s) = johns_shop(&redis).await;
    let account = |body: &Value| body["data"][0]["account_id"].as_str().unwrap().to_owned();

    // The first token makes the account; later ones, either mechanism, find it.
    let (status, first) = with_password(&app, &s, "old-password-1").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = with_password(&app, &s, "old-password-1").await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(account(&again), account(&first));
    let code = johns_code(&app, &s, &hook, 1).await;
    let (status, by_code) = app.exchange_code(&s, "john.doe@banks.com", &code).await;
    assert_eq!(status, StatusCode::CREATED, "{by_code}");
    assert_eq!(account(&by_code), account(&first));

    // A code issued before the member was disabled no longer gets a token,
    // and neither does the password.
    let code = johns_code(&app, &s, &hook, 2).await;
    disable_member(&app, &s).await;
    let (status, body) = app.exchange_code(&s, "john.doe@banks.com", &code).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = with_password(&app, &s, "old-password-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

/// The session keys in the store, sorted.
async fn session_keys(redis: &TestRedis) -> Vec<String> {
    let mut c = redis.conn().await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}{{s:*", redis.prefix))
        .query_async(&mut c)
        .await
        .unwrap();
    keys.sort();
    keys
}

/// Waits (up to 2 s: an exchange deletes a session it did not hand out in the
/// background) until the store holds the sessions in `clients` and `mine` more.
async fn expect_sessions(redis: &TestRedis, clients: &[String], mine: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let now = session_keys(redis).await;
        let extra = now.iter().filter(|k| !clients.contains(k)).count();
        if extra == mine && clients.iter().all(|k| now.contains(k)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{extra} sessions besides the API clients', not {mine}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Socket reads Redis has done (`total_reads_processed`): one per round trip of
/// a client, and one for this command itself.
async fn reads(c: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(c)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_reads_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_passwordless_exchange_takes_two_round_trips() {
    let redis = redis_or_skip!();
    let hook = Receiver::start().await;
    // The per-address counter is one more trip, before the code is looked at;
    // the session cache's heartbeat would add reads of its own.
    let app = spawn_app_with(Some(&redis), |c| {
        c.limits.per_ip = authgate_core::limits::Limit::OFF;
        c.verify_cache_entries = 0;
    })
    .await;
    let s = shop(&app, &hook.url).await;
    // The least of three: the delivery worker's polls can only add reads, and the
    // first exchange may find the settings not yet remembered.
    let mut trips = Vec::new();
    for n in 1..=3 {
        let code = johns_code(&app, &s, &hook, n).await;
        // What the replica remembers for a second (the settings, the shop's client
        // token) made fresh: on a loaded machine a second can pass between two
        // exchanges, and reading either again is a trip of its own.
        app.realm(&s.admin).await;
        app.request_code(&s, "nobody@banks.com", "passwordless_authentication")
            .await;
        let mut c = redis.conn().await;
        let before = reads(&mut c).await;
        let (status, body) = app.exchange_code(&s, "john.doe@banks.com", &code).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        trips.push(reads(&mut c).await - before - 1);
        let token = body["data"][0]["token"].as_str().unwrap();
        assert_eq!(app.verify(token).await.0, StatusCode::OK);
    }
    assert_eq!(
        trips.iter().min(),
        Some(&2),
        "round trips per exchange: {trips:?}"
    );
}

#[tokio::test]
async fn an_exchange_refused_after_its_token_was_queued_leaves_no_session() {
    let redis = redis_or_skip!();
    let (hook, app, s) = johns_shop(&redis).await;
    let code = johns_code(&app, &s, &hook, 1).await;
    disable_member(&app, &s).await;
    // The API clients' sessions (the shop's tokens) stay.
    let clients = session_keys(&redis).await;
    // Refused too, perhaps after queuing a token of its own.
    let (status, body) = with_password(&app, &s, "old-password-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Reading the settings makes the replica remember them for a second, so the
    // code exchange just after queues its token's session with the member's
    // records, before it finds the member disabled.
    app.realm(&s.admin).await;
    reset_stats(&redis).await;
    let (status, body) = app.exchange_code(&s, "john.doe@banks.com", &code).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let seen = commands(&redis).await;
    assert_eq!(
        seen.get("hset"),
        Some(&1),
        "a session was written: {seen:?}"
    );
    // None left but the clients': the one no token reaches was deleted.
    expect_sessions(&redis, &clients, 0).await;
}

#[tokio::test]
async fn a_member_whose_account_was_made_before_derived_ids_keeps_it() {
    use base64::Engine;
    let redis = redis_or_skip!();
    let (hook, app, s) = johns_shop(&redis).await;
    // An account made by an earlier version: a random id, not the derived one.
    let old = "0b6f3a52-7c1d-4e8f-9a2b-3c4d5e6f7a8b";
    let key = authgate_core::store::Keys::new(&redis.prefix).sharded("accounts", &s.user_id);
    let mut c = redis.conn().await;
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg(&s.user_id)
        .arg(old)
        .query_async(&mut c)
        .await
        .unwrap();
    let clients = session_keys(&redis).await;
    for n in 1..=2 {
        let code = johns_code(&app, &s, &hook, n).await;
        // Settings remembered: the exchange queues a token for the derived account.
        app.realm(&s.admin).await;
        let (status, body) = app.exchange_code(&s, "john.doe@banks.com", &code).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["data"][0]["account_id"], old);
        let token = body["data"][0]["token"].as_str().unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["scope"], old);
        assert_eq!(app.verify(token).await.0, StatusCode::OK);
    }
    // Each exchange leaves its own session, and not the one queued for the
    // derived account, which it deleted.
    expect_sessions(&redis, &clients, 2).await;
}

#[tokio::test]
async fn retries_stop_once_the_code_has_expired() {
    let redis = redis_or_skip!();
    let hook = Receiver::start().await;
    let app = spawn_app_with(Some(&redis), |c| {
        c.otp_ttl = Duration::from_secs(1);
        c.webhook_retry_base = Duration::from_millis(100);
    })
    .await;
    let s = shop(&app, &hook.url).await;
    hook.answer(503);
    app.request_code(&s, "john.doe@banks.com", "passwordless_authentication")
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let path = format!("/v2/integrations/{}/logs", s.integration);
    let after_expiry = log_count(&app, &s.admin, &path).await;
    assert!(
        after_expiry >= 2,
        "it was retried while the code lived: {after_expiry}"
    );
    hook.answer(200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        log_count(&app, &s.admin, &path).await,
        after_expiry,
        "no try after the code expired"
    );
    assert!(hook.received().is_empty());
}

async fn log_count(app: &TestApp, admin: &str, path: &str) -> usize {
    app.admin(admin, Method::GET, path, None).await.1["data"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn retries_stop_once_the_code_is_used() {
    let redis = redis_or_skip!();
    let healthy = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.answer(503);
    let app = spawn_app_with(Some(&redis), |c| {
        c.webhook_retry_base = Duration::from_millis(100);
    })
    .await;
    let s = shop(&app, &healthy.url).await;
    let (status, i) = app
        .admin(&s.admin, Method::POST, "/v2/integrations",
            Some(json!({"data": {"type": "integration", "name": "Broken receiver", "integration_type": "webhook",
                "observes": ["one-time-password-token-request.created"],
                "configuration": {"url": failing.url, "secret_key": SECRET}}})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{i}");
    let logs = format!(
        "/v2/integrations/{}/logs",
        i["data"]["id"].as_str().unwrap()
    );
    app.request_code(&s, "john.doe@banks.com", "passwordless_authentication")
        .await;
    let got = healthy.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    for _ in 0..50 {
        if log_count(&app, &s.admin, &logs).await >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        log_count(&app, &s.admin, &logs).await >= 2,
        "the broken receiver is being retried"
    );
    assert_eq!(
        app.exchange_code(&s, "john.doe@banks.com", &code_of(&got[0]))
            .await
            .0,
        StatusCode::CREATED
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_use = log_count(&app, &s.admin, &logs).await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        log_count(&app, &s.admin, &logs).await,
        after_use,
        "no try once the code was used"
    );
}

#[tokio::test]
async fn what_this_replica_remembers_it_forgets_when_it_changes_it() {
    let redis = redis_or_skip!();
    let (_hook, app, s) = johns_shop(&redis).await;
    let ask = || app.request_code(&s, "john.doe@banks.com", "reset_password");
    // The first request reads the client token and the profile; the second is
    // answered from this replica's memory of both.
    assert_eq!(ask().await.status(), StatusCode::ACCEPTED);
    assert_eq!(ask().await.status(), StatusCode::ACCEPTED);
    // Switching codes off through this replica takes effect at once.
    let profile = format!(
        "/v2/authentication-realms/{}/password-profiles/{}",
        s.realm, s.profile
    );
    let (status, body) = app
        .admin(&s.admin, Method::PUT, &profile,
            Some(json!({"data": {"type": "password_profile", "enable_one_time_password_token": false}})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A password exchange reads (and remembers) the profile as it is now.
    assert_eq!(
        with_password(&app, &s, "old-password-1").await.0,
        StatusCode::CREATED
    );
    assert_eq!(ask().await.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app
        .admin(&s.admin, Method::PUT, &profile,
            Some(json!({"data": {"type": "password_profile", "enable_one_time_password_token": true}})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ask().await.status(), StatusCode::ACCEPTED);
    // So does ending the client token's session.
    let resp = app
        .http
        .post(app.url("/v1/logout"))
        .json(&json!({"accessToken": s.implicit}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(ask().await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn another_replica_sees_a_revoked_client_token_within_a_second() {
    let redis = redis_or_skip!();
    let hook = Receiver::start().await;
    let first = spawn_app(Some(&redis)).await;
    let second = spawn_app(Some(&redis)).await;
    let s = shop(&first, &hook.url).await;
    let ask = |app| TestApp::request_code(app, &s, "john.doe@banks.com", "reset_password");
    assert_eq!(ask(&second).await.status(), StatusCode::ACCEPTED);
    let resp = first
        .http
        .post(first.url("/v1/logout"))
        .json(&json!({"accessToken": s.implicit}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    assert_eq!(ask(&first).await.status(), StatusCode::UNAUTHORIZED);
    tokio::time::sleep(authgate_core::tokens::CLIENT_MEMORY + Duration::from_millis(100)).await;
    assert_eq!(ask(&second).await.status(), StatusCode::UNAUTHORIZED);
}

/// Exchanges the funnel counts as failed authentications, from `/metrics`.
async fn failed_exchanges(app: &TestApp) -> u64 {
    let resp = app.http.get(app.url("/metrics")).send().await.unwrap();
    let text = resp.text().await.unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(r#"authgate_funnel_total{scheme="one_time_password",stage="failed"} "#)
        })
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn a_malformed_profile_or_user_id_is_answered_and_counted_as_an_unknown_one_is() {
    let redis = redis_or_skip!();
    let (hook, app, s) = johns_shop(&redis).await;
    const UNKNOWN: &str = "00000000-0000-4000-8000-000000000000";
    let malformed = |real: &str| {
        [
            "nope".to_owned(),
            real.to_uppercase(),
            format!("{real}0"),
            real[1..].to_owned(),
            "-".to_owned(),
        ]
    };

    // Code requests: an unknown realm, then an unknown profile, is a 404.
    let request = |realm: &str, profile: &str| {
        let url = app.url(&format!("/v2/authentication-realms/{realm}/password-profiles/{profile}/one-time-password-token-request"));
        let req = app.http.post(url).bearer_auth(&s.implicit).json(&json!({"data": {
            "type": "one_time_password_token_request", "username": "john.doe@banks.com", "purpose": "reset_password"}}));
        async move { parts(req.send().await.unwrap()).await }
    };
    let unknown = request(UNKNOWN, &s.profile).await;
    assert_eq!(unknown.0, StatusCode::NOT_FOUND, "{unknown:?}");
    for realm in malformed(&s.realm) {
        assert_eq!(request(&realm, &s.profile).await, unknown, "realm {realm}");
    }
    let unknown = request(&s.realm, UNKNOWN).await;
    assert_eq!(unknown.0, StatusCode::NOT_FOUND, "{unknown:?}");
    for profile in malformed(&s.profile) {
        assert_eq!(
            request(&s.realm, &profile).await,
            unknown,
            "profile {profile}"
        );
    }

    // Exchanges, by code and by password: the one 401, and one more failed
    // authentication in the funnel, each time.
    let exchange = |profile: &str, proof: Value| {
        let mut data = json!({"type": "account_management_authentication_token",
            "password_profile_id": profile, "username": "john.doe@banks.com"});
        data.as_object_mut()
            .unwrap()
            .extend(proof.as_object().unwrap().clone());
        let req = app
            .http
            .post(app.url("/v2/account-members/tokens"))
            .bearer_auth(&s.implicit)
            .json(&json!({ "data": data }));
        async move { parts(req.send().await.unwrap()).await }
    };
    for proof in [
        json!({"authentication_mechanism": "passwordless", "one_time_password_token": "abc123"}),
        json!({"authentication_mechanism": "password", "password": "old-password-1"}),
    ] {
        let before = failed_exchanges(&app).await;
        let unknown = exchange(UNKNOWN, proof.clone()).await;
        assert_eq!(unknown.0, StatusCode::UNAUTHORIZED, "{unknown:?}");
        assert_eq!(failed_exchanges(&app).await, before + 1);
        for (n, profile) in malformed(&s.profile).into_iter().enumerate() {
            assert_eq!(
                exchange(&profile, proof.clone()).await,
                unknown,
                "{profile}"
            );
            assert_eq!(failed_exchanges(&app).await, before + 2 + n as u64);
        }
    }

    // A member's record under a user id that does not parse is not their own.
    let (status, _) = app
        .admin(&s.admin, Method::PUT, "/v2/settings/account-authentication",
            Some(json!({"data": {"type": "account_authentication_settings", "account_member_self_management": "update_only"}})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, tokens) = with_password(&app, &s, "old-password-1").await;
    assert_eq!(status, StatusCode::CREATED, "{tokens}");
    let member = tokens["data"][0]["token"].as_str().unwrap();
    let path = |user: &str| s.credential_path().replace(&s.user_id, user);
    let unknown = app
        .member_password(&s, &path(UNKNOWN), member, "new-password-1")
        .await;
    assert_eq!(unknown.0, StatusCode::FORBIDDEN, "{unknown:?}");
    for user in malformed(&s.user_id) {
        let answer = app
            .member_password(&s, &path(&user), member, "new-password-1")
            .await;
        assert_eq!(answer, unknown, "{user}");
    }
    assert_eq!(
        with_password(&app, &s, "old-password-1").await.0,
        StatusCode::CREATED
    );
    assert!(hook.received().is_empty());
}

/// A delivery worker the test runs over `app`'s outbox and services (for an app
/// started with `delivery_worker = false`), waiting `poll` after an empty look
/// and at most `idle_poll_max`; it stops when told to or when the sender is dropped.
fn start_worker(
    app: &TestApp,
    poll: Duration,
    idle_poll_max: Duration,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let s = &app.state;
    let mut config = s.delivery.clone();
    config.poll = poll;
    config.idle_poll_max = idle_poll_max;
    let worker = authgate_delivery::Worker::new(
        s.outbox.clone(),
        s.otp.clone(),
        s.integrations.clone(),
        s.senders.clone(),
        config,
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    (stop, tokio::spawn(worker.run(stopped)))
}

/// The worker's looks at the outbox since the stats were reset, by Redis's own
/// count: each look reads every shard's stream once (nothing else reads them).
async fn looks(redis: &TestRedis) -> u64 {
    let reads = commands(redis).await.get("xreadgroup").copied();
    reads.unwrap_or(0) / authgate_core::store::SHARDS as u64
}

/// Waits, at most 5 s, for the worker's first look since the stats were reset.
async fn first_look(redis: &TestRedis) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while looks(redis).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not look at the outbox within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Stops a worker of [`start_worker`], which must end within 5 s.
async fn stop_worker(stop: tokio::sync::watch::Sender<bool>, worker: tokio::task::JoinHandle<()>) {
    let _ = stop.send(true);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), worker)
            .await
            .is_ok(),
        "the worker stops within 5 s, idle wait or not"
    );
}

#[tokio::test]
async fn a_code_request_wakes_the_idle_worker_of_its_replica_at_once() {
    let redis = redis_or_skip!();
    let hook = Receiver::start().await;
    // Replica a's worker is the test's, and idle it looks only every 30 s;
    // replica b runs none.
    let a = spawn_app_with(Some(&redis), |c| c.delivery_worker = false).await;
    let b = spawn_app_with(Some(&redis), |c| c.delivery_worker = false).await;
    let s = shop(&a, &hook.url).await;
    reset_stats(&redis).await;
    let long = Duration::from_secs(30);
    let (stop, worker) = start_worker(&a, long, long);
    first_look(&redis).await;

    // Accepted by b, which wakes no worker of a: the entry waits for a's next look.
    let john = "john.doe@banks.com";
    let purpose = "passwordless_authentication";
    assert_eq!(
        b.request_code(&s, john, purpose).await.status(),
        StatusCode::ACCEPTED
    );
    assert!(
        hook.wait_for(1, Duration::from_secs(1)).await.is_empty(),
        "delivered without a wake: the worker was not idle"
    );

    // Accepted by a: its worker looks at once (and finds b's entry too, whose
    // code this request replaced, so it is not sent).
    assert_eq!(
        a.request_code(&s, john, purpose).await.status(),
        StatusCode::ACCEPTED
    );
    let got = hook.wait_for(1, Duration::from_secs(3)).await;
    assert_eq!(
        got.len(),
        1,
        "delivered within 3 s of the request, not at the worker's next look 30 s on"
    );
    assert_eq!(
        a.exchange_code(&s, john, &code_of(&got[0])).await.0,
        StatusCode::CREATED,
        "the code delivered is the live one"
    );
    stop_worker(stop, worker).await;
}

#[tokio::test]
async fn an_idle_worker_looks_ever_less_often_up_to_its_cap() {
    let redis = redis_or_skip!();
    if !redis.is_private() {
        eprintln!("\n*** SKIPPED: counting a worker's looks needs a private redis-server ***\n");
        return;
    }
    let app = spawn_app_with(Some(&redis), |c| c.delivery_worker = false).await;
    reset_stats(&redis).await;
    let (stop, worker) = start_worker(&app, Duration::from_millis(20), Duration::from_millis(200));
    first_look(&redis).await;
    reset_stats(&redis).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let n = looks(&redis).await;
    stop_worker(stop, worker).await;
    // A look every 20 ms would be 75; waits of 20, 40, 80, 160 and then 200 ms
    // make about 10.
    assert!((3..=20).contains(&n), "{n} looks in 1.5 s");
}
