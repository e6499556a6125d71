//! Scheme A, black box: the real gateway over real sockets on a private Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use authgate_tests::app::{hash, limit, parts};
use authgate_tests::{redis_or_skip, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_key_login_with_the_documented_formula_returns_tokens_and_the_display_name() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let u = app.web_user("myuser", "mypass123").await;
    let key = app.key(&u.username).await;
    assert_eq!(key.len(), 32, "{key}");
    let (status, body) = app
        .login_key(&u.username, &hash(&key, "myuser", "mypass123"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], true);
    assert_eq!(body["displayName"], "myuser display");
    let t = &body["tokens"];
    assert_eq!(t["accessExpire"], 48 * 3600);
    assert_eq!(t["refreshExpire"], 30 * 86400);
    let (status, user) = app.verify(t["accessToken"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user.as_deref(), Some("myuser@app.acct"));
}

#[tokio::test]
async fn every_documented_username_form_reaches_the_same_user() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let u = app.web_user("alice", "alicepass1").await;
    for form in [
        "alice@app.acct.voximplant.com",
        "alice@app.acct.n3.voximplant.com",
        "alice@app.acct",
        "alice@APP.Acct.voximplant.com",
    ] {
        let key = app.key(form).await;
        let (status, body) = app.login_key(form, &hash(&key, &u.user, &u.password)).await;
        assert_eq!(status, StatusCode::OK, "{form}: {body}");
    }
}

#[tokio::test]
async fn the_key_lives_five_minutes_in_redis_and_is_not_stored_in_clear() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let u = app.web_user("bob", "bobpass12").await;
    let key = app.key(&u.username).await;
    let stored = redis.keys_ending(":login-key").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let ttl = redis.pttl(&stored[0]).await;
    assert!(ttl > 295_000 && ttl <= 300_000, "ttl {ttl} ms");
    assert!(
        !redis.dump().await.contains(&key),
        "the key itself is not in Redis"
    );
}

#[tokio::test]
async fn the_key_ttl_is_configurable_and_an_expired_key_cannot_log_in() {
    let redis = redis_or_skip!();
    let app = spawn_app_with(Some(&redis), |c| c.login_key_ttl = Duration::from_secs(1)).await;
    let u = app.web_user("carol", "carolpass").await;
    let key = app.key(&u.username).await;
    let ttl = redis.pttl(&redis.keys_ending(":login-key").await[0]).await;
    assert!(ttl > 0 && ttl <= 1000, "ttl {ttl}");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, body) = app
        .login_key(&u.username, &hash(&key, &u.user, &u.password))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], 401);
}

#[tokio::test]
async fn a_second_key_request_invalidates_the_first() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let u = app.web_user("dave", "davepass1").await;
    let first = app.key(&u.username).await;
    let second = app.key(&u.username).await;
    assert_ne!(first, second);
    let (status, _) = app
        .login_key(&u.username, &hash(&first, &u.user, &u.password))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the first key is void");
    // That attempt consumed the live (second) key too: one guess per key.
    let (status, _) = app
        .login_key(&u.username, &hash(&second, &u.user, &u.password))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let third = app.key(&u.username).await;
    let (status, _) = app
        .login_key(&u.username, &hash(&third, &u.user, &u.password))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_hash_burns_the_key() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let u = app.web_user("erin", "erinpass1").await;
    let key = app.key(&u.username).await;
    let (status, body) = app
        .login_key(&u.username, &hash(&key, &u.user, "wrongpass"))
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!(401))
    );
    let (status, _) = app
        .login_key(&u.username, &hash(&key, &u.user, &u.password))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the right hash after a wrong one finds no key"
    );
    assert!(redis.keys_ending(":login-key").await.is_empty());
}

#[tokio::test]
async fn a_key_works_once() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let u = app.web_user("fay", "faypass12").await;
    let key = app.key(&u.username).await;
    let h = hash(&key, &u.user, &u.password);
    assert_eq!(app.login_key(&u.username, &h).await.0, StatusCode::OK);
    assert_eq!(
        app.login_key(&u.username, &h).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn concurrent_logins_with_one_key_across_two_instances_have_exactly_one_winner() {
    let redis = redis_or_skip!();
    let a = spawn_app(Some(&redis)).await;
    let b = spawn_app(Some(&redis)).await;
    let u = a.web_user("gus", "guspass12").await;
    for round in 0..5 {
        let key = if round % 2 == 0 {
            a.key(&u.username).await
        } else {
            b.key(&u.username).await
        };
        let h = hash(&key, &u.user, &u.password);
        let attempts: Vec<_> = (0..24)
            .map(|i| {
                let (http, url) = if i % 2 == 0 {
                    (a.http.clone(), a.url("/v1/login/one-time-key"))
                } else {
                    (b.http.clone(), b.url("/v1/login/one-time-key"))
                };
                let body = json!({"username": u.username, "hash": h});
                tokio::spawn(
                    async move { http.post(url).json(&body).send().await.unwrap().status() },
                )
            })
            .collect();
        let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let wins = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(wins, 1, "round {round}: {statuses:?}");
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
            "{statuses:?}"
        );
    }
}

#[tokio::test]
async fn unknown_users_get_a_decoy_key_that_never_succeeds() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let known = app.web_user("hank", "hankpass1").await;
    let (s1, b1) = app
        .post(
            "/v1/login/one-time-key/request",
            &json!({"username": known.username}),
        )
        .await;
    let (s2, b2) = app
        .post(
            "/v1/login/one-time-key/request",
            &json!({"username": "nobody@app.acct.voximplant.com"}),
        )
        .await;
    let (s3, b3) = app
        .post(
            "/v1/login/one-time-key/request",
            &json!({"username": "x@no.such"}),
        )
        .await;
    assert_eq!(
        (s1, s2, s3),
        (StatusCode::OK, StatusCode::OK, StatusCode::OK)
    );
    for b in [&b1, &b2, &b3] {
        let mut fields: Vec<_> = b.as_object().unwrap().keys().cloned().collect();
        fields.sort();
        assert_eq!(fields, ["code", "key", "result"], "{b}");
        assert_eq!(b["key"].as_str().unwrap().len(), 32);
    }
    let decoy = b2["key"].as_str().unwrap();
    let (status, _) = app
        .login_key(
            "nobody@app.acct.voximplant.com",
            &hash(decoy, "nobody", "anything1"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn revealing_unknown_users_is_a_switch() {
    let redis = redis_or_skip!();
    let app = spawn_app_with(Some(&redis), |c| c.reveal_unknown_users = true).await;
    let known = app.web_user("ivy", "ivypass12").await;
    app.key(&known.username).await;
    let (status, body) = app
        .post(
            "/v1/login/one-time-key/request",
            &json!({"username": "nobody@app.acct"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], 404);
}

#[tokio::test]
async fn password_login_takes_the_password_or_its_ha1() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let u = app.web_user("jack", "jackpass1").await;
    let (status, body) = app
        .post(
            "/v1/login/password",
            &json!({"username": u.username, "password": "jackpass1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["displayName"], "jack display");
    let ha1 = authgate_onetimekey::digest::ha1("jack", "jackpass1");
    let (status, _) = app
        .post(
            "/v1/login/password",
            &json!({"username": u.username, "password": ha1.to_uppercase()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .post(
            "/v1/login/password",
            &json!({"username": u.username, "password": "jackpass2"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!(401))
    );
    let (status, _) = app
        .post(
            "/v1/login/password",
            &json!({"username": "nobody@app.acct", "password": "jackpass1"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_login_refresh_rotation_and_reuse_detection() {
    let redis = redis_or_skip!();
    let a = spawn_app(Some(&redis)).await;
    let b = spawn_app(Some(&redis)).await;
    let u = a.web_user("kim", "kimpass12").await;
    let login = a.key_login(&u).await;
    let access = login["tokens"]["accessToken"].as_str().unwrap().to_owned();
    let refresh = login["tokens"]["refreshToken"].as_str().unwrap().to_owned();

    let (status, body) = b
        .post(
            "/v1/login/token",
            &json!({"username": u.username, "accessToken": access}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], true);
    let (status, _) = b
        .post(
            "/v1/login/token",
            &json!({"username": "other@app.acct", "accessToken": access}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a token logs in only its own user"
    );

    let (status, body) = b
        .post(
            "/v1/login/token/refresh",
            &json!({"username": u.username, "refreshToken": refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], true);
    let new_access = body["tokens"]["accessToken"].as_str().unwrap().to_owned();
    let new_refresh = body["tokens"]["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, refresh);
    assert_eq!(a.verify(&new_access).await.0, StatusCode::OK);
    assert_eq!(
        a.verify(&access).await.0,
        StatusCode::UNAUTHORIZED,
        "rotation retires the old access token"
    );

    // The old refresh token again: refused, and the whole session ends on every replica.
    let (status, body) = a
        .post(
            "/v1/login/token/refresh",
            &json!({"username": u.username, "refreshToken": refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(b.verify(&new_access).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = a
        .post(
            "/v1/login/token/refresh",
            &json!({"username": u.username, "refreshToken": new_refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_refresh_token_presented_for_another_user_ends_its_session() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let u = app.web_user("lou", "loupass12").await;
    let login = app.key_login(&u).await;
    let refresh = login["tokens"]["refreshToken"].as_str().unwrap();
    let (status, _) = app
        .post(
            "/v1/login/token/refresh",
            &json!({"username": "mallory@app.acct", "refreshToken": refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.verify(login["tokens"]["accessToken"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logout_ends_the_session_on_every_replica() {
    let redis = redis_or_skip!();
    let a = spawn_app(Some(&redis)).await;
    let b = spawn_app(Some(&redis)).await;
    let u = a.web_user("max", "maxpass12").await;
    let one = a.key_login(&u).await;
    let two = a.key_login(&u).await;
    let access = one["tokens"]["accessToken"].as_str().unwrap();
    assert_eq!(b.verify(access).await.0, StatusCode::OK);
    let resp = a
        .post_raw("/v1/logout", &json!({"accessToken": access}))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(b.verify(access).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = b.introspect(access).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"active": false})));
    let (status, _) = b
        .post(
            "/v1/login/token/refresh",
            &json!({"username": u.username, "refreshToken": one["tokens"]["refreshToken"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Only that session: the other stays.
    assert_eq!(
        b.verify(two["tokens"]["accessToken"].as_str().unwrap())
            .await
            .0,
        StatusCode::OK
    );
    // Logout by refresh token.
    let resp = b
        .post_raw(
            "/v1/logout",
            &json!({"refreshToken": two["tokens"]["refreshToken"]}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        a.verify(two["tokens"]["accessToken"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = a.post("/v1/logout", &json!({})).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(400))
    );
}

#[tokio::test]
async fn key_requests_per_user_are_limited_with_retry_after() {
    let redis = redis_or_skip!();
    let app = spawn_app_with(Some(&redis), |c| c.limits.requests_per_user = limit(3, 600)).await;
    let u = app.web_user("ned", "nedpass12").await;
    let mut last = String::new();
    for _ in 0..3 {
        last = app.key(&u.username).await;
    }
    let resp = app
        .post_raw(
            "/v1/login/one-time-key/request",
            &json!({"username": u.username}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry), "Retry-After {retry}");
    let (_, body) = parts(resp).await;
    assert_eq!(body["code"], 429);
    assert!(body.get("key").is_none());
    // The refused request changed nothing: the last issued key still works.
    let (status, _) = app
        .login_key(&u.username, &hash(&last, &u.user, &u.password))
        .await;
    assert_eq!(status, StatusCode::OK);
    // Unknown usernames are counted the same way.
    for _ in 0..3 {
        app.key("ghost@app.acct").await;
    }
    let (status, _) = app
        .post(
            "/v1/login/one-time-key/request",
            &json!({"username": "ghost@app.acct"}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn past_the_guess_limit_even_the_right_answer_gets_429() {
    let redis = redis_or_skip!();
    let app = spawn_app_with(Some(&redis), |c| c.limits.guesses_per_user = limit(2, 900)).await;
    let u = app.web_user("olga", "olgapass1").await;
    let other = app
        .web_user_in(
            &app.admin_token().await,
            &u.profile_id,
            "app.acct",
            "pete",
            "petepass1",
        )
        .await;
    // Logins that find no live key are not guesses.
    for _ in 0..4 {
        assert_eq!(
            app.login_key(&u.username, &hash("nokey", &u.user, &u.password))
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
    }
    // A resent wrong password counts once; two different ones reach the limit.
    for wrong in ["wrongpass1", "wrongpass1", "wrongpass1", "wrongpass2"] {
        let (status, _) = app
            .post(
                "/v1/login/password",
                &json!({"username": u.username, "password": wrong}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let resp = app
        .post_raw(
            "/v1/login/password",
            &json!({"username": u.username, "password": "olgapass1"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 800 && retry <= 900, "Retry-After {retry}");
    let key = app.key(&u.username).await;
    let (status, body) = app
        .login_key(&u.username, &hash(&key, &u.user, &u.password))
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::TOO_MANY_REQUESTS, json!(429))
    );
    // Another user is not affected.
    assert_eq!(app.key_login(&other).await["result"], true);
}

#[tokio::test]
async fn login_requests_per_address_are_limited_and_forwarded_for_counts_only_from_trusted_proxies()
{
    let redis = redis_or_skip!();
    let app = spawn_app_with(Some(&redis), |c| {
        c.limits.per_ip = limit(4, 60);
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let send = |xff: &'static str| {
        let req = app
            .http
            .post(app.url("/v1/login/one-time-key/request"))
            .header("x-forwarded-for", xff)
            .json(&json!({"username": "a@app.acct"}));
        async move { req.send().await.unwrap() }
    };
    for _ in 0..4 {
        assert_eq!(send("203.0.113.7").await.status(), StatusCode::OK);
    }
    let resp = send("203.0.113.7").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(
        send("203.0.113.8").await.status(),
        StatusCode::OK,
        "another client behind the proxy"
    );

    // Without trusted proxies, the header is ignored and the peer is counted.
    let redis2 = redis_or_skip!();
    let direct = spawn_app_with(Some(&redis2), |c| c.limits.per_ip = limit(2, 60)).await;
    for (i, xff) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .iter()
        .enumerate()
    {
        let status = direct
            .http
            .post(direct.url("/v1/login/password"))
            .header("x-forwarded-for", *xff)
            .json(&json!({"username": "a@app.acct", "password": "whatever1"}))
            .send()
            .await
            .unwrap()
            .status();
        let want = if i < 2 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(status, want, "request {i}");
    }
}

#[tokio::test]
async fn malformed_requests_get_400_in_the_auth_result_shape_and_consume_nothing() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let u = app.web_user("quinn", "quinnpass").await;
    let key = app.key(&u.username).await;
    for (path, body) in [
        (
            "/v1/login/one-time-key",
            json!({"username": u.username, "hash": "not-hex"}),
        ),
        ("/v1/login/one-time-key", json!({"username": u.username})),
        (
            "/v1/login/one-time-key",
            json!({"username": "no-at-sign", "hash": "0123456789abcdef0123456789abcdef"}),
        ),
        (
            "/v1/login/one-time-key",
            json!({"username": 5, "hash": "0123456789abcdef0123456789abcdef"}),
        ),
        ("/v1/login/one-time-key/request", json!({"user": "x"})),
        (
            "/v1/login/password",
            json!({"username": u.username, "password": ""}),
        ),
    ] {
        let (status, resp) = app.post(path, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {resp}");
        assert_eq!(resp["result"], false, "{resp}");
        assert_eq!(resp["code"], 400, "{resp}");
    }
    let resp = app
        .http
        .post(app.url("/v1/login/one-time-key"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, resp) = parts(resp).await;
    assert_eq!(
        (status, resp["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(400))
    );
    // The key survived all of that.
    let (status, _) = app
        .login_key(&u.username, &hash(&key, &u.user, &u.password))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn oversized_bodies_get_413_in_the_dialect_shape() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let big = "x".repeat(200 * 1024);
    let (status, body) = app
        .post(
            "/v1/login/password",
            &json!({"username": big, "password": "p"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::PAYLOAD_TOO_LARGE, json!(413))
    );
    let resp = app
        .http
        .post(app.url("/v2/settings/account-authentication"))
        .body(big)
        .send()
        .await
        .unwrap();
    let (status, body) = parts(resp).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["errors"][0]["status"], "413", "{body}");
}

#[tokio::test]
async fn a_disabled_user_gets_403_and_loses_their_sessions() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let u = app.web_user("rita", "ritapass1").await;
    let login = app.key_login(&u).await;
    let token = app.admin_token().await;
    let realm = app.realm(&token).await;
    let (status, body) = app
        .admin(
            &token,
            reqwest::Method::PUT,
            &format!(
                "/v2/authentication-realms/{realm}/user-authentication-info/{}",
                u.user_id
            ),
            Some(json!({"data": {"type": "user_authentication_info", "enabled": false}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.verify(login["tokens"]["accessToken"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let key = app.key(&u.username).await;
    let (status, body) = app
        .login_key(&u.username, &hash(&key, &u.user, &u.password))
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::FORBIDDEN, json!(403))
    );
    let (status, body) = app
        .login_key(
            &u.username,
            &hash(&app.key(&u.username).await, &u.user, "wrongpass"),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!(401)),
        "a wrong hash says nothing about the account"
    );
}

#[tokio::test]
async fn a_new_password_replaces_the_ha1_and_ends_the_sessions() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let u = app.web_user("sam", "sampass12").await;
    let login = app.key_login(&u).await;
    let token = app.admin_token().await;
    let realm = app.realm(&token).await;
    let (status, body) = app
        .admin(&token, reqwest::Method::PUT,
            &format!("/v2/authentication-realms/{realm}/user-authentication-info/{}/user-authentication-password-profile-info/{}", u.user_id, u.credential_id),
            Some(json!({"data": {"type": "user_authentication_password_profile_info", "id": u.credential_id, "password": "newpass123"}})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"].get("password").is_none());
    assert_eq!(
        app.verify(login["tokens"]["accessToken"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let key = app.key(&u.username).await;
    assert_eq!(
        app.login_key(&u.username, &hash(&key, "sam", "sampass12"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let key = app.key(&u.username).await;
    assert_eq!(
        app.login_key(&u.username, &hash(&key, "sam", "newpass123"))
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = app.post("/v1/login/password", &json!({"username": u.username, "password": authgate_onetimekey::digest::ha1("sam", "newpass123")})).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_dump_of_redis_holds_no_password_ha1_key_hash_or_token() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let u = app.web_user("tess", "tesspass-secret").await;
    let key = app.key(&u.username).await;
    let h = hash(&key, &u.user, &u.password);
    let (_, login) = app.login_key(&u.username, &h).await;
    let access = login["tokens"]["accessToken"].as_str().unwrap().to_owned();
    let refresh = login["tokens"]["refreshToken"].as_str().unwrap().to_owned();
    let pending_key = app.key(&u.username).await;
    let admin = app.admin_token().await;
    let dump = redis.dump().await;
    assert!(
        dump.len() > 500,
        "the dump read something: {} bytes",
        dump.len()
    );
    let ha1 = authgate_onetimekey::digest::ha1(&u.user, &u.password);
    for (what, secret) in [
        ("password", u.password.as_str()),
        ("HA1", ha1.as_str()),
        ("HA1 upper", ha1.to_uppercase().as_str()),
        ("used key", key.as_str()),
        ("pending key", pending_key.as_str()),
        ("key hash", h.as_str()),
        ("access token", access.as_str()),
        ("access token secret", access.rsplit('.').next().unwrap()),
        ("refresh token", refresh.as_str()),
        ("refresh token secret", refresh.rsplit('.').next().unwrap()),
        ("admin token secret", admin.rsplit('.').next().unwrap()),
        ("client secret", authgate_tests::app::CLIENT_SECRET),
    ] {
        assert!(!dump.contains(secret), "{what} found in clear in Redis");
    }
    // Key names carry digests, not usernames (the directory's documents do hold them).
    let keys = redis.keys().await;
    assert!(keys.iter().all(|k| !k.contains("tess")), "{keys:?}");
}

#[tokio::test]
async fn an_unreachable_redis_gives_503_and_the_gateway_recovers_by_itself() {
    let mut redis = redis_or_skip!();
    if !redis.is_private() {
        eprintln!("SKIPPED: needs a private redis-server to stop and restart");
        return;
    }
    let app = spawn_app(Some(&redis)).await;
    let ready = || async {
        app.http
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(ready().await, StatusCode::OK);
    redis.stop();
    let (status, body) = app
        .post(
            "/v1/login/one-time-key/request",
            &json!({"username": "a@app.acct"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::SERVICE_UNAVAILABLE, json!(503)),
        "{body}"
    );
    // Introspection counts the caller's address in the store, so it waits for it too.
    let (status, body) = app.introspect("a.x.y").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["errors"][0]["status"], "503");
    let resp = app
        .http
        .get(app.url("/v1/auth/verify"))
        .bearer_auth(format!("a.{}.{}", "A".repeat(22), "B".repeat(43)))
        .send()
        .await
        .unwrap();
    // Every 503 tells the client when to try again.
    assert_eq!(
        resp.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let (status, body) = parts(resp).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["errors"][0]["status"], "503");
    let probe = app.http.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(probe.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(probe.headers().contains_key("retry-after"), "readiness 503");
    redis.restart().await;
    let mut recovered = false;
    for _ in 0..50 {
        if ready().await == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "readiness came back without a restart");
    let (status, body) = app
        .post(
            "/v1/login/one-time-key/request",
            &json!({"username": "a@app.acct"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn metrics_count_requests_and_the_funnel() {
    let redis = redis_or_skip!();
    let app = spawn_app(Some(&redis)).await;
    let u = app.web_user("vera", "verapass1").await;
    app.key_login(&u).await;
    let key = app.key(&u.username).await;
    app.login_key(&u.username, &hash(&key, &u.user, "wrongpass"))
        .await;
    app.login_key(&u.username, &hash(&key, &u.user, &u.password))
        .await;
    let resp = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    for line in [
        r#"authgate_funnel_total{scheme="one_time_key",stage="issued"} 2"#,
        r#"authgate_funnel_total{scheme="one_time_key",stage="verified"} 1"#,
        r#"authgate_funnel_total{scheme="one_time_key",stage="burnt"} 1"#,
        r#"authgate_funnel_total{scheme="one_time_key",stage="expired"} 1"#,
        r#"authgate_http_requests_total{operation="requestOneTimeLoginKey",status="200"} 2"#,
        r#"authgate_http_requests_total{operation="loginWithOneTimeKey",status="401"} 2"#,
        r#"authgate_http_request_duration_seconds_count{operation="loginWithOneTimeKey"} 3"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
}
