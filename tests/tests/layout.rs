//! The store's key layout on a real Redis: the directory and the outbox spread
//! over the shards, and a store of the earlier layout (everything under `{dir}`)
//! moved at start-up with nothing lost: documents, indexes, settings,
//! integrations, their logs, and a delivery a dead replica left pending.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use authgate_core::store::{slot::slot, Keys, SHARDS};
use authgate_tests::app::{Shop, TestApp};
use authgate_tests::webhook::Receiver;
use authgate_tests::{redis_or_skip, spawn_app_with, TestCluster, TestRedis};
use redis::AsyncCommands;
use reqwest::{Method, StatusCode};
use serde_json::json;

const MAPS: [&str; 7] = [
    "profiles",
    "users",
    "credentials",
    "names",
    "apps",
    "accounts",
    "integrations",
];

/// An entry as XRANGE answers it: its id and its fields.
type StreamEntry = (String, Vec<(String, Vec<u8>)>);

async fn shop(app: &TestApp, hook: &str) -> Shop {
    app.shop(
        "John Doe",
        "john.doe@banks.com",
        json!({"type": "integration", "name": "codes", "integration_type": "webhook",
            "configuration": {"url": hook, "secret_key": "s3cret"}}),
    )
    .await
}

fn code_of(d: &authgate_tests::webhook::Delivery) -> String {
    d.body["payload"]["one_time_password_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Rewrites the store under `redis`'s prefix into the earlier layout, as a
/// replica of the earlier version would have left it: every map, the settings,
/// the outbox and the logs under `{dir}`, no layout recorded. The outbox's
/// entries are left pending for a consumer of the `delivery` group that is gone.
async fn into_the_earlier_layout(redis: &TestRedis, integration: &str) {
    let mut c = redis.conn().await;
    let p = &redis.prefix;
    let keys = Keys::new(p);
    let old = |name: &str| format!("{p}{{dir}}:{name}");
    for map in MAPS {
        for shard in 0..SHARDS {
            let key = keys.in_shard(shard, map);
            let fields: Vec<(Vec<u8>, Vec<u8>)> = c.hgetall(&key).await.unwrap();
            for (field, value) in fields {
                let _: () = c.hset(old(map), field, value).await.unwrap();
            }
            let _: () = c.del(&key).await.unwrap();
        }
    }
    let settings = keys.in_shard(0, "settings");
    let value: Option<Vec<u8>> = c.get(&settings).await.unwrap();
    let _: () = c
        .set(old("settings"), value.expect("settings saved"))
        .await
        .unwrap();
    let _: () = c.del(&settings).await.unwrap();
    for shard in 0..SHARDS {
        let stream = keys.in_shard(shard, "outbox:events");
        let entries: Vec<StreamEntry> = redis::cmd("XRANGE")
            .arg(&stream)
            .arg("-")
            .arg("+")
            .query_async(&mut c)
            .await
            .unwrap();
        for (_, fields) in entries {
            let (_, entry) = &fields[0];
            let _: String = redis::cmd("XADD")
                .arg(old("outbox:events"))
                .arg("*")
                .arg("e")
                .arg(entry)
                .query_async(&mut c)
                .await
                .unwrap();
        }
        let gone = [
            stream,
            keys.in_shard(shard, "outbox:decoys"),
            keys.in_shard(shard, "outbox:retry"),
        ];
        let _: () = c.del(&gone).await.unwrap();
    }
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(old("outbox:events"))
        .arg("delivery")
        .arg("0")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("delivery")
        .arg("gone")
        .arg("STREAMS")
        .arg(old("outbox:events"))
        .arg(">")
        .query_async(&mut c)
        .await
        .unwrap();
    for (from, to) in [
        (keys.delivery_log(None), old("outbox:logs")),
        (
            keys.delivery_log(Some(integration)),
            old(&format!("outbox:logs:{integration}")),
        ),
    ] {
        let _: () = c.rename(from, to).await.unwrap();
    }
    let _: () = c.del(keys.bootstrap("layout")).await.unwrap();
}

#[tokio::test]
async fn a_store_of_the_earlier_layout_is_moved_at_start_up_with_nothing_lost() {
    let redis = redis_or_skip!();
    let hook = Receiver::start().await;
    // A first code delivered (so the logs have an entry), the settings changed.
    let first = spawn_app_with(Some(&redis), |_| {}).await;
    let s = shop(&first, &hook.url).await;
    let (status, _) = first
        .admin(&s.admin, Method::PUT, "/v2/settings/account-authentication",
            Some(json!({"data": {"type": "account_authentication_settings", "account_member_self_management": "update_only"}})))
        .await;
    assert_eq!(status, StatusCode::OK);
    first
        .request_code(&s, "john.doe@banks.com", "passwordless_authentication")
        .await;
    assert_eq!(hook.wait_for(1, Duration::from_secs(5)).await.len(), 1);
    drop(first);
    // A second code accepted by a replica that delivers nothing.
    let second = spawn_app_with(Some(&redis), |c| c.delivery_worker = false).await;
    assert_eq!(
        second
            .request_code(&s, "john.doe@banks.com", "reset_password")
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    drop(second);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        hook.received().len(),
        1,
        "nothing delivered by the replica without a worker"
    );
    into_the_earlier_layout(&redis, &s.integration).await;
    assert!(redis.keys().await.iter().any(|k| k.contains("{dir}:")));

    let app = spawn_app_with(Some(&redis), |_| {}).await;
    // The pending request reaches the receiver, and its code works.
    let got = hook.wait_for(2, Duration::from_secs(10)).await;
    let purposes: Vec<_> = got.iter().map(|d| &d.body["payload"]["purpose"]).collect();
    assert_eq!(
        purposes,
        ["passwordless_authentication", "reset_password"],
        "the pending delivery was moved and made, once"
    );
    let (status, body) = app
        .exchange_code(&s, "john.doe@banks.com", &code_of(&got[1]))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The directory, the settings, the integration and both logs read as before.
    let (_, settings) = app
        .admin(
            &s.admin,
            Method::GET,
            "/v2/settings/account-authentication",
            None,
        )
        .await;
    assert_eq!(
        settings["data"]["account_member_self_management"],
        "update_only"
    );
    let (status, _) = app
        .admin(
            &s.admin,
            Method::GET,
            &format!("/v2/integrations/{}", s.integration),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, log) = app.delivery_log(&s.admin, &s.integration).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 2, "{log}");
    let (_, all) = app
        .admin(&s.admin, Method::GET, "/v2/integrations/logs", None)
        .await;
    assert_eq!(all["data"].as_array().unwrap().len(), 2, "{all}");
    assert_eq!(hook.received().len(), 2, "nothing delivered twice");
    let (status, _) = app
        .password_token(&s, "john.doe@banks.com", "old-password-1")
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Nothing is left under the old tag, and the layout is recorded.
    let left: Vec<String> = redis
        .keys()
        .await
        .into_iter()
        .filter(|k| k.contains("{dir}"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let mut c = redis.conn().await;
    let layout: String = c
        .get(Keys::new(&redis.prefix).bootstrap("layout"))
        .await
        .unwrap();
    assert_eq!(layout, "2");
}

#[tokio::test]
async fn the_directory_and_the_outbox_spread_over_the_shards_slots() {
    let redis = redis_or_skip!();
    let hook = Receiver::start().await;
    let app = spawn_app_with(Some(&redis), |c| c.delivery_worker = false).await;
    let s = shop(&app, &hook.url).await;
    let base = format!("/v2/authentication-realms/{}", s.realm);
    members(&app, &s, 24).await;
    for n in 0..24 {
        app.request_code(&s, &format!("user{n}@banks.com"), "reset_password")
            .await;
    }
    let (_, users) = app
        .admin(
            &s.admin,
            Method::GET,
            &format!("{base}/user-authentication-info"),
            None,
        )
        .await;
    assert_eq!(users["meta"]["results"]["total"], 25, "every shard listed");
    // Users, their index entries and their outbox entries sit in many
    // sixteenths of the slot space, never under one tag.
    let span = 16_384 / SHARDS as u16;
    let sixteenths = |suffix: &str, keys: &[String]| {
        keys.iter()
            .filter(|k| k.ends_with(suffix))
            .map(|k| slot(k.as_bytes()) / span)
            .collect::<std::collections::BTreeSet<_>>()
    };
    let keys = redis.keys().await;
    assert!(keys.iter().all(|k| !k.contains("{dir}")), "{keys:?}");
    for suffix in [":users", ":names", ":credentials", ":outbox:events"] {
        let spread = sixteenths(suffix, &keys);
        assert!(spread.len() >= 8, "{suffix} in {spread:?}");
    }
}

/// Adds `n` members with usernames `user<i>@banks.com` to the shop's profile.
async fn members(app: &TestApp, s: &Shop, n: usize) {
    let base = format!("/v2/authentication-realms/{}", s.realm);
    for i in 0..n {
        let user = app
            .create(
                &s.admin,
                &format!("{base}/user-authentication-info"),
                json!({"type": "user_authentication_info", "name": format!("User {i}")}),
            )
            .await;
        app.create(&s.admin, &format!("{base}/user-authentication-info/{user}/user-authentication-password-profile-info"),
            json!({"type": "user_authentication_password_profile_info", "password_profile_id": s.profile, "username": format!("user{i}@banks.com")}))
            .await;
    }
}

#[tokio::test]
async fn on_a_cluster_code_requests_and_deliveries_spread_over_the_primaries() {
    let Some(cluster) = TestCluster::start().await else {
        return;
    };
    let hook = Receiver::start().await;
    let app = spawn_app_with(None, |c| {
        c.redis_url = Some(cluster.seed_urls());
        c.redis_mode = "cluster".into();
        c.redis_prefix = "layout:".into();
    })
    .await;
    let s = shop(&app, &hook.url).await;
    members(&app, &s, 24).await;
    cluster.reset_stats().await;
    for i in 0..24 {
        let username = format!("user{i}@banks.com");
        let resp = app.request_code(&s, &username, "reset_password").await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    // The look-up of the username in its shard's index (HEXISTS, in the one
    // script that appends the request or a decoy) ran on every primary.
    let stats = cluster.command_stats().await;
    let lookups: Vec<u64> = stats
        .iter()
        .map(|(_, s)| s.get("hexists").copied().unwrap_or(0))
        .collect();
    eprintln!("index look-ups per primary: {lookups:?}");
    assert_eq!(lookups.iter().sum::<u64>(), 24, "{stats:?}");
    assert!(lookups.iter().all(|n| *n > 0), "{lookups:?}");
    // The worker reads every shard, on every primary, and delivers each code once.
    let got = hook.wait_for(24, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 24);
    let last = got
        .iter()
        .find(|d| {
            d.body["payload"]["user_authentication_password_profile_info"]["username"]
                == "user7@banks.com"
        })
        .expect("user7's code");
    let (status, body) = app
        .exchange_code(&s, "user7@banks.com", &code_of(last))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, users) = app
        .admin(
            &s.admin,
            Method::GET,
            &format!(
                "/v2/authentication-realms/{}/user-authentication-info",
                s.realm
            ),
            None,
        )
        .await;
    assert_eq!(users["meta"]["results"]["total"], 25, "every shard listed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.received().len(), 24, "nothing delivered twice");
}
