//! The session cache behind `GET /v1/auth/verify` and introspection: a
//! replica answers a token it checked lately from memory, and Redis's pushes
//! (`CLIENT TRACKING ... BCAST`) make every revocation count on every replica
//! at once; while the pushes are not known to flow, nothing is answered from
//! memory. Two gateways on one private Redis, and on a real cluster.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use authgate_tests::{spawn_app, spawn_app_on, TestApp, TestCluster, TestRedis, WebUser};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// How long a replica may take to see another's revocation in these tests:
/// far above the few milliseconds it takes, far below the memory's own
/// lifetime (60 s), which is what a missed push would cost.
const SEEN_WITHIN: Duration = Duration::from_millis(500);

/// One metric of `app`'s `/metrics`.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .get_raw("/metrics")
        .await
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

/// Waits until `app`'s memory is live (or not), within `within`.
async fn wait_live(app: &TestApp, live: bool, within: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        if (metric(app, "authgate_verify_cache_live").await == 1.0) == live {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < within,
            "the memory did not turn {} within {within:?}",
            if live { "on" } else { "off" }
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How long until `app` refuses `token`, polling as fast as it answers; panics
/// after [`SEEN_WITHIN`].
async fn refused_within(app: &TestApp, token: &str) -> Duration {
    let t0 = Instant::now();
    loop {
        if app.verify(token).await.0 == StatusCode::UNAUTHORIZED {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < SEEN_WITHIN,
            "still accepted {SEEN_WITHIN:?} after it was revoked elsewhere"
        );
    }
}

/// `token` verified on `app` twice: the second time from memory, which the
/// hit counter shows.
async fn remembered(app: &TestApp, token: &str) {
    assert_eq!(app.verify(token).await.0, StatusCode::OK);
    let hits = metric(app, "authgate_verify_cache_hits_total").await;
    assert_eq!(app.verify(token).await.0, StatusCode::OK);
    assert_eq!(
        metric(app, "authgate_verify_cache_hits_total").await,
        hits + 1.0,
        "the second check is answered from memory"
    );
}

fn tokens(login: &Value) -> (String, String) {
    (
        login["tokens"]["accessToken"].as_str().unwrap().to_owned(),
        login["tokens"]["refreshToken"].as_str().unwrap().to_owned(),
    )
}

/// A private Redis, two gateways on it with their memory live, a web phone user.
async fn two_gateways() -> Option<(TestRedis, TestApp, TestApp, WebUser)> {
    let redis = TestRedis::start().await?;
    let a = spawn_app(Some(&redis)).await;
    let b = spawn_app(Some(&redis)).await;
    wait_live(&a, true, Duration::from_secs(5)).await;
    wait_live(&b, true, Duration::from_secs(5)).await;
    let u = a.web_user("kim", "kimpass12").await;
    Some((redis, a, b, u))
}

#[tokio::test]
async fn a_logout_on_one_replica_is_seen_by_another_that_remembers_the_token() {
    let Some((_redis, a, b, u)) = two_gateways().await else {
        return;
    };
    let mut seen = Vec::new();
    for round in 0..5 {
        let (access, _) = tokens(&a.key_login(&u).await);
        remembered(&b, &access).await;
        let resp = a
            .post_raw("/v1/logout", &json!({ "accessToken": access }))
            .await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "round {round}");
        seen.push(refused_within(&b, &access).await);
        // And on the replica that revoked it, at once.
        assert_eq!(a.verify(&access).await.0, StatusCode::UNAUTHORIZED);
    }
    eprintln!("a logout seen by the other replica after {seen:?}");
}

#[tokio::test]
async fn a_rotation_and_a_reused_refresh_token_are_seen_by_another_replica() {
    let Some((_redis, a, b, u)) = two_gateways().await else {
        return;
    };
    let (access, refresh) = tokens(&a.key_login(&u).await);
    remembered(&b, &access).await;
    let (status, body) = a
        .post(
            "/v1/login/token/refresh",
            &json!({"username": u.username, "refreshToken": refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (new_access, _) = tokens(&body);
    let took = refused_within(&b, &access).await;
    eprintln!("the rotated-out access token refused by the other replica after {took:?}");
    remembered(&b, &new_access).await;
    // The old refresh token again: reuse, the session ends everywhere.
    let (status, _) = a
        .post(
            "/v1/login/token/refresh",
            &json!({"username": u.username, "refreshToken": refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    refused_within(&b, &new_access).await;
}

#[tokio::test]
async fn a_new_password_ends_sessions_remembered_by_another_replica() {
    let Some((_redis, a, b, u)) = two_gateways().await else {
        return;
    };
    let (first, _) = tokens(&a.key_login(&u).await);
    let (second, _) = tokens(&a.key_login(&u).await);
    remembered(&b, &first).await;
    remembered(&b, &second).await;
    let token = a.admin_token().await;
    let realm = a.realm(&token).await;
    let path = format!(
        "/v2/authentication-realms/{realm}/user-authentication-info/{}/user-authentication-password-profile-info/{}",
        u.user_id, u.credential_id
    );
    let data = json!({"data": {
        "id": u.credential_id,
        "type": "user_authentication_password_profile_info",
        "password": "newpass123",
    }});
    let (status, body) = a
        .admin(&token, reqwest::Method::PUT, &path, Some(data))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    refused_within(&b, &first).await;
    refused_within(&b, &second).await;
}

/// Introspection reads the same memory, and sees the same revocations.
#[tokio::test]
async fn introspection_is_answered_from_memory_and_sees_a_logout_elsewhere() {
    let Some((_redis, a, b, u)) = two_gateways().await else {
        return;
    };
    let (access, _) = tokens(&a.key_login(&u).await);
    let (status, body) = b.introspect(&access).await;
    assert_eq!(
        (status, body["active"].clone()),
        (StatusCode::OK, json!(true))
    );
    let hits = metric(&b, "authgate_verify_cache_hits_total").await;
    let (_, body) = b.introspect(&access).await;
    assert_eq!(body["active"], true);
    assert_eq!(
        metric(&b, "authgate_verify_cache_hits_total").await,
        hits + 1.0
    );
    let resp = a
        .post_raw("/v1/logout", &json!({ "accessToken": access }))
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let t0 = Instant::now();
    while b.introspect(&access).await.1["active"] != false {
        assert!(
            t0.elapsed() < SEEN_WITHIN,
            "still active on the other replica"
        );
    }
}

/// When the push connection is lost, or Redis stops answering it in time, the
/// memory empties and goes off (every check reads Redis) until tracking is
/// back by itself; then a session deleted straight in Redis, by no gateway, is
/// refused too.
#[tokio::test]
async fn without_pushes_nothing_is_answered_from_memory() {
    let Some((redis, a, b, u)) = two_gateways().await else {
        return;
    };
    let (access, _) = tokens(&a.key_login(&u).await);
    remembered(&b, &access).await;
    assert!(metric(&b, "authgate_verify_cache_entries").await >= 1.0);

    // Lost: every tracking connection killed.
    let mut conn = redis.conn().await;
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    let ids: Vec<&str> = clients
        .lines()
        .filter(|l| l.contains("name=authgate-session-tracking"))
        .filter_map(|l| l.split_whitespace().next()?.strip_prefix("id="))
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "one tracking connection per gateway:\n{clients}"
    );
    for id in &ids {
        let _: redis::Value = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(*id)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // Off at once (its entries gone), back by itself, and empty when back.
    wait_live(&b, false, Duration::from_secs(2)).await;
    assert_eq!(metric(&b, "authgate_verify_cache_entries").await, 0.0);
    wait_live(&b, true, Duration::from_secs(5)).await;
    remembered(&b, &access).await;

    // Late: Redis paused for longer than the lag allowed (every client, so
    // the pings too). The memory goes off and empties during the pause, and
    // is back after it, hearing of changes again.
    let sessions: Vec<String> = redis
        .keys()
        .await
        .into_iter()
        .filter(|k| k.contains("{s:"))
        .collect();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(800)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    wait_live(&b, false, Duration::from_secs(2)).await;
    assert_eq!(metric(&b, "authgate_verify_cache_entries").await, 0.0);
    wait_live(&b, true, Duration::from_secs(5)).await;
    remembered(&b, &access).await;
    let mut other = redis.conn().await;
    for key in &sessions {
        let _: i64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut other)
            .await
            .unwrap();
    }
    refused_within(&b, &access).await;
    drop(a);
}

/// With the memory off (`AUTHGATE_VERIFY_CACHE_ENTRIES=0`) nothing is
/// remembered and there is no tracking connection.
#[tokio::test]
async fn the_memory_can_be_turned_off() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let app = authgate_tests::spawn_app_with(Some(&redis), |c| c.verify_cache_entries = 0).await;
    let u = app.web_user("kim", "kimpass12").await;
    let (access, _) = tokens(&app.key_login(&u).await);
    assert_eq!(app.verify(&access).await.0, StatusCode::OK);
    let text = app.get_raw("/metrics").await.text().await.unwrap();
    assert!(!text.contains("authgate_verify_cache_live"), "{text}");
    let mut conn = redis.conn().await;
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!clients.contains("authgate-session-tracking"), "{clients}");
}

/// On a cluster, each gateway tracks every primary: a logout on one is seen
/// by the other, whichever primary holds the session.
#[tokio::test]
async fn on_a_cluster_a_logout_is_seen_by_another_replica() {
    let Some(cluster) = TestCluster::start().await else {
        return;
    };
    let prefix = format!("v{}:", uuid::Uuid::new_v4().simple());
    let a = spawn_app_on(&cluster.seed_url(), &prefix, |_| {}).await;
    let b = spawn_app_on(&cluster.seed_url(), &prefix, |_| {}).await;
    wait_live(&a, true, Duration::from_secs(5)).await;
    wait_live(&b, true, Duration::from_secs(5)).await;
    let u = a.web_user("kim", "kimpass12").await;
    let mut seen = Vec::new();
    // Sessions land on different primaries (their ids are random).
    for _ in 0..6 {
        let (access, _) = tokens(&a.key_login(&u).await);
        remembered(&b, &access).await;
        let resp = a
            .post_raw("/v1/logout", &json!({ "accessToken": access }))
            .await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        seen.push(refused_within(&b, &access).await);
    }
    eprintln!("on the cluster, a logout seen by the other replica after {seen:?}");
}
