//! Both schemes, black box, across two gateways sharing one private Redis
//! Cluster (3 primaries, 3 replicas) that each reaches from one seed URL: keys
//! and codes move between gateways, single use holds under concurrency, limits
//! are shared; and when the primary of the slot every flow needs dies, the
//! gateways heal by themselves once a replica takes over.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use authgate_core::limits::Limit;
use authgate_core::store::Keys;
use authgate_tests::app::{hash, limit, parts, Shop, TestApp};
use authgate_tests::webhook::{Delivery, Receiver};
use authgate_tests::{spawn_app_on, TestCluster, WebUser};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

fn fresh_prefix() -> String {
    format!("t{}:", uuid::Uuid::new_v4().simple())
}

/// A shop whose member is John Doe (`john.doe@banks.com`) and whose codes go
/// to the webhook receiver at `hook`.
async fn shop(app: &TestApp, hook: &str) -> Shop {
    app.shop("John Doe", "john.doe@banks.com",
        json!({"type": "integration", "name": "codes", "integration_type": "webhook", "enabled": true,
            "observes": ["one-time-password-token-request.created"],
            "configuration": {"url": hook, "secret_key": "whsec-cluster"}}))
        .await
}

const JOHN: &str = "john.doe@banks.com";

fn code_of(d: &Delivery) -> String {
    d.body["payload"]["one_time_password_token"]
        .as_str()
        .expect("a code in the delivery")
        .to_owned()
}

/// Asserts `/health/ready` is 200 on every gateway.
async fn all_ready(apps: &[&TestApp]) {
    for (i, app) in apps.iter().enumerate() {
        assert_eq!(app.ready().await, StatusCode::OK, "gateway {i}");
    }
}

/// `f`, or `Err` when it takes over `secs` seconds.
async fn within<T>(secs: u64, f: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {secs} s")))
}

/// A key requested on `from`, the login with it on `to`; the login's body.
async fn key_login_across(from: &TestApp, to: &TestApp, u: &WebUser) -> Result<Value, String> {
    let (status, body) = from
        .post(
            "/v1/login/one-time-key/request",
            &json!({"username": u.username}),
        )
        .await;
    let key = match (status, body["key"].as_str()) {
        (StatusCode::OK, Some(key)) => key.to_owned(),
        _ => return Err(format!("key request: {status} {body}")),
    };
    let (status, body) = to
        .login_key(&u.username, &hash(&key, &u.user, &u.password))
        .await;
    if status == StatusCode::OK && body["result"] == true {
        Ok(body)
    } else {
        Err(format!("login: {status} {body}"))
    }
}

/// A code for John requested on `from`, delivered to `hook`, exchanged on `to`;
/// the exchange's body.
async fn code_flow_across(
    from: &TestApp,
    to: &TestApp,
    s: &Shop,
    hook: &Receiver,
) -> Result<Value, String> {
    let before = hook.received().len();
    let resp = from
        .request_code(s, JOHN, "passwordless_authentication")
        .await;
    if resp.status() != StatusCode::ACCEPTED {
        let (status, body) = parts(resp).await;
        return Err(format!("code request: {status} {body}"));
    }
    let got = hook.wait_for(before + 1, Duration::from_secs(5)).await;
    let Some(last) = got.get(before..).and_then(<[Delivery]>::last) else {
        return Err("code request: 202, but no delivery within 5 s".into());
    };
    // A new request replaces the code: the newest delivery holds the live one.
    let (status, body) = to.exchange_code(s, JOHN, &code_of(last)).await;
    if status == StatusCode::CREATED {
        Ok(body)
    } else {
        Err(format!("exchange: {status} {body}"))
    }
}

/// A POST of `body` to `path` on `app` from the client address `ip` (through
/// the trusted proxy that 127.0.0.1 is in these gateways' config).
async fn post_from(app: &TestApp, ip: &str, path: &str, body: Value) -> Response {
    app.http
        .post(app.url(path))
        .header("x-forwarded-for", ip)
        .json(&body)
        .send()
        .await
        .expect("request")
}

/// John's code request on `app` from `ip`.
async fn code_request_from(app: &TestApp, ip: &str, s: &Shop) -> StatusCode {
    app.http
        .post(app.url(&format!(
            "/v2/authentication-realms/{}/password-profiles/{}/one-time-password-token-request",
            s.realm, s.profile
        )))
        .header("x-forwarded-for", ip)
        .bearer_auth(&s.implicit)
        .json(&json!({"data": {"type": "one_time_password_token_request",
            "username": JOHN, "purpose": "passwordless_authentication"}}))
        .send()
        .await
        .expect("code request")
        .status()
}

fn assert_throttled(resp: &Response, what: &str) {
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "{what}");
    assert!(
        resp.headers().contains_key("retry-after"),
        "{what}: Retry-After"
    );
}

#[tokio::test]
async fn two_gateways_on_one_cluster_share_keys_codes_and_limits() {
    let Some(cluster) = TestCluster::start().await else {
        return;
    };
    let seed = cluster.seed_url();
    let prefix = fresh_prefix();
    let a = spawn_app_on(&seed, &prefix, |_| {}).await;
    let b = spawn_app_on(&seed, &prefix, |_| {}).await;
    all_ready(&[&a, &b]).await;

    // Scheme A: a key requested on A logs in on B; its token works on A.
    let u = a.web_user("ann", "annpass12").await;
    let body = key_login_across(&a, &b, &u)
        .await
        .expect("a key from A on B");
    let access = body["tokens"]["accessToken"].as_str().unwrap();
    assert_eq!(
        a.verify(access).await,
        (StatusCode::OK, Some("ann@app.acct".to_owned()))
    );

    // One key, 24 concurrent logins spread over both gateways: one winner.
    for round in 0..3 {
        let key = if round % 2 == 0 { &a } else { &b }.key(&u.username).await;
        let h = hash(&key, &u.user, &u.password);
        let tries: Vec<_> = (0..24)
            .map(|i| {
                let app = if i % 2 == 0 { &a } else { &b };
                app.http
                    .post(app.url("/v1/login/one-time-key"))
                    .json(&json!({"username": u.username, "hash": h}))
            })
            .collect();
        let statuses = authgate_tests::app::all_at_once(tries).await;
        let wins = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(wins, 1, "round {round}: {statuses:?}");
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
            "round {round}: {statuses:?}"
        );
    }

    // Scheme B: a code requested on A, delivered by webhook, exchanged on B.
    let hook = Receiver::start().await;
    let s = shop(&a, &hook.url).await;
    let body = code_flow_across(&a, &b, &s, &hook)
        .await
        .expect("a code from A exchanged on B");
    assert_eq!(body["meta"]["account_member_id"], s.user_id.as_str());

    // One code, 16 concurrent exchanges spread over both gateways: one winner.
    let before = hook.received().len();
    assert_eq!(
        b.request_code(&s, JOHN, "passwordless_authentication")
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let got = hook.wait_for(before + 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), before + 1, "the code from B is delivered");
    let code = code_of(&got[before]);
    let tries: Vec<_> = (0..16)
        .map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            app.http
                .post(app.url("/v2/account-members/tokens"))
                .bearer_auth(&s.implicit)
                .json(
                    &json!({"data": {"type": "account_management_authentication_token",
                    "authentication_mechanism": "passwordless", "password_profile_id": s.profile,
                    "username": JOHN, "one_time_password_token": code}}),
                )
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

    // Limits, on two more gateways with small ones (their own prefix, same
    // cluster): each request from its own client address unless the address
    // is what is limited.
    let prefix = fresh_prefix();
    let small = |c: &mut authgate_gateway::Config| {
        c.limits.requests_per_user = limit(3, 600);
        c.limits.guesses_per_user = limit(2, 900);
        c.limits.per_ip = limit(4, 60);
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    };
    let c = spawn_app_on(&seed, &prefix, small).await;
    let d = spawn_app_on(&seed, &prefix, small).await;
    let pair = [&c, &d];
    let v = c.web_user("vic", "vicpass12").await;
    let key_request = |who: &str| json!({"username": who});

    // Key requests per user: 3 over both gateways, the 4th refused on either.
    for i in 0..3 {
        let resp = post_from(
            pair[i % 2],
            &format!("198.51.100.{i}"),
            "/v1/login/one-time-key/request",
            key_request(&v.username),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK, "key request {i}");
    }
    for (i, app) in pair.iter().enumerate() {
        let resp = post_from(
            app,
            &format!("198.51.100.1{i}"),
            "/v1/login/one-time-key/request",
            key_request(&v.username),
        )
        .await;
        assert_throttled(&resp, &format!("a 4th key request, on gateway {i}"));
    }

    // Requests per address: 4 over both gateways, the 5th refused; another
    // address is not.
    for i in 0..4 {
        let resp = post_from(
            pair[i % 2],
            "203.0.113.7",
            "/v1/login/one-time-key/request",
            key_request(&format!("x{i}@app.acct")),
        )
        .await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "request {i} from one address"
        );
    }
    let resp = post_from(
        &d,
        "203.0.113.7",
        "/v1/login/one-time-key/request",
        key_request("x9@app.acct"),
    )
    .await;
    assert_throttled(&resp, "a 5th request from one address");
    let resp = post_from(
        &c,
        "203.0.113.8",
        "/v1/login/one-time-key/request",
        key_request("x9@app.acct"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK, "another address");

    // Wrong guesses per user: one on each gateway, then even the right
    // password is refused on either.
    let w = c
        .web_user_in(
            &c.admin_token().await,
            &v.profile_id,
            "app.acct",
            "wes",
            "wespass12",
        )
        .await;
    for (i, wrong) in ["wrongpass1", "wrongpass2"].iter().enumerate() {
        let resp = post_from(
            pair[i],
            &format!("192.0.2.{i}"),
            "/v1/login/password",
            json!({"username": w.username, "password": wrong}),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "wrong guess {i}");
    }
    for (i, app) in pair.iter().enumerate() {
        let resp = post_from(
            app,
            &format!("192.0.2.1{i}"),
            "/v1/login/password",
            json!({"username": w.username, "password": w.password}),
        )
        .await;
        assert_throttled(&resp, &format!("the right password, on gateway {i}"));
    }

    // Code requests per user: 3 delivered over both gateways, a 4th answered
    // the same 202 and delivered nowhere.
    let hook2 = Receiver::start().await;
    let s2 = shop(&c, &hook2.url).await;
    for i in 0..3 {
        let status = code_request_from(pair[i % 2], &format!("100.64.0.{i}"), &s2).await;
        assert_eq!(status, StatusCode::ACCEPTED, "code request {i}");
        let got = hook2.wait_for(i + 1, Duration::from_secs(5)).await;
        assert_eq!(got.len(), i + 1, "code request {i} is delivered");
    }
    let status = code_request_from(&d, "100.64.0.9", &s2).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "a 4th code request looks the same"
    );
    let got = hook2.wait_for(4, Duration::from_secs(1)).await;
    assert_eq!(got.len(), 3, "a 4th code request is not delivered");

    all_ready(&[&a, &b, &c, &d]).await;
}

/// What went wrong, by step and status, while the flows did not work.
#[derive(Default)]
struct Outage {
    seen: BTreeMap<String, usize>,
}

impl Outage {
    fn note(&mut self, what: &str, error: &str) {
        // "key request: 503 {...}" → "key request: 503"
        let short: String = error
            .split(" {")
            .next()
            .unwrap_or(error)
            .chars()
            .take(80)
            .collect();
        *self.seen.entry(format!("{what}: {short}")).or_default() += 1;
    }
}

/// The keys matching `pattern` on the node on `port` (`KEYS`: only that node's).
async fn keys_on(cluster: &TestCluster, port: u16, pattern: &str) -> Vec<String> {
    let mut c = cluster
        .node_client(port)
        .get_multiplexed_async_connection()
        .await
        .expect("node connection");
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut c)
        .await
        .expect("KEYS")
}

/// The port of the one primary holding keys that match `pattern`.
async fn one_holder(cluster: &TestCluster, pattern: &str) -> u16 {
    let mut holders = Vec::new();
    for addr in cluster.primaries() {
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        if !keys_on(cluster, port, pattern).await.is_empty() {
            holders.push(port);
        }
    }
    assert_eq!(holders.len(), 1, "primaries with {pattern}: {holders:?}");
    holders[0]
}

#[tokio::test]
async fn the_gateways_heal_by_themselves_when_a_primary_they_need_dies() {
    let Some(cluster) = TestCluster::start().await else {
        return;
    };
    let seed = cluster.seed_url();
    let prefix = fresh_prefix();
    // Limits out of the way: failed attempts during the outage may be counted.
    let roomy = |c: &mut authgate_gateway::Config| {
        c.limits.requests_per_user = Limit::new(10_000, Duration::from_secs(600));
        c.limits.guesses_per_user = Limit::new(10_000, Duration::from_secs(900));
        c.limits.per_ip = Limit::new(100_000, Duration::from_secs(60));
    };
    let a = spawn_app_on(&seed, &prefix, roomy).await;
    let b = spawn_app_on(&seed, &prefix, roomy).await;
    let hook = Receiver::start().await;
    let first = a.web_user("fay0", "faypass12").await;
    let s = shop(&a, &hook.url).await;

    // John's code requests go to the shard of his entry in the username
    // index: the index and that shard's outbox share its tag, and every code
    // request for him writes there. A web phone user's key lives in the
    // user's own slot: pick a user whose key lives on the same primary, so
    // that one kill stops both schemes.
    let needed = Keys::new(&prefix).sharded("names", &format!("{}\u{0}{JOHN}", s.profile));
    let tag = &needed[needed.find('{').unwrap()..=needed.find('}').unwrap()];
    let dir_node = one_holder(&cluster, &format!("{prefix}{tag}*")).await;
    let admin = a.admin_token().await;
    let mut u = None;
    for i in 1..=30 {
        let candidate = a
            .web_user_in(
                &admin,
                &first.profile_id,
                "app.acct",
                &format!("fay{i}"),
                "faypass12",
            )
            .await;
        let before = keys_on(&cluster, dir_node, &format!("{prefix}*:login-key")).await;
        a.key(&candidate.username).await;
        let after = keys_on(&cluster, dir_node, &format!("{prefix}*:login-key")).await;
        if after.len() > before.len() {
            u = Some(candidate);
            break;
        }
    }
    let u = u.expect("one of 30 users has their key on the primary of John's shard");
    eprintln!(
        "{} keeps their key on port {dir_node}, with {tag}",
        u.username
    );
    key_login_across(&a, &b, &u)
        .await
        .expect("a key login before");
    code_flow_across(&b, &a, &s, &hook)
        .await
        .expect("a code before");

    let killed = cluster.kill_primary_of(&needed).await;
    let t0 = Instant::now();
    assert_eq!(killed, dir_node);
    eprintln!("killed the primary of {needed}, port {killed}");

    let deadline = Duration::from_secs(20);
    let mut outage = Outage::default();
    let heal = async {
        let (mut keys_ok, mut codes_ok) = (None, None);
        while t0.elapsed() < deadline && (keys_ok.is_none() || codes_ok.is_none()) {
            for (name, app) in [("ready A", &a), ("ready B", &b)] {
                match tokio::time::timeout(Duration::from_secs(8), app.ready()).await {
                    Ok(StatusCode::OK) => {}
                    Ok(status) => outage.note(name, &status.to_string()),
                    Err(_) => outage.note(name, "no answer within 8 s"),
                }
            }
            if keys_ok.is_none() {
                match within(8, key_login_across(&a, &b, &u)).await {
                    Ok(_) => keys_ok = Some(t0.elapsed()),
                    Err(e) => outage.note("key A→B", &e),
                }
            }
            if codes_ok.is_none() {
                match within(8, code_flow_across(&b, &a, &s, &hook)).await {
                    Ok(_) => codes_ok = Some(t0.elapsed()),
                    Err(e) => outage.note("code B→A", &e),
                }
            }
            if keys_ok.is_none() || codes_ok.is_none() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        (keys_ok, codes_ok)
    };
    let (failover, (keys_ok, codes_ok)) =
        tokio::join!(cluster.wait_failover(Duration::from_secs(30)), heal);
    eprintln!("the cluster failed over in {failover:?}");
    eprintln!("during the outage: {:#?}", outage.seen);
    let (Some(keys_ok), Some(codes_ok)) = (keys_ok, codes_ok) else {
        panic!(
            "not healed {deadline:?} after the kill (keys: {keys_ok:?}, codes: {codes_ok:?}); \
             the cluster failed over in {failover:?}; seen: {:#?}",
            outage.seen
        );
    };
    eprintln!("key logins work again {keys_ok:?} after the kill, code flows {codes_ok:?}");
    // (Readiness is only noted: whether it turns 503 while a primary is down
    // is the store's ping, checked in store.rs.)
    for what in ["key A→B", "code B→A"] {
        assert!(
            outage.seen.keys().any(|k| k.starts_with(what)),
            "{what} failed while the slot had no primary (the flow needs it): {:#?}",
            outage.seen
        );
    }
    // While the slot had no primary, the gateways said "try again" (503), never
    // anything else.
    for what in outage.seen.keys() {
        assert!(
            what.contains(": 503") || what.contains("no answer within"),
            "an answer other than 503 during the outage: {what} (all: {:#?})",
            outage.seen
        );
    }
    for (i, app) in [&a, &b].iter().enumerate() {
        let left = deadline
            .saturating_sub(t0.elapsed())
            .max(Duration::from_secs(2));
        app.wait_ready(left)
            .await
            .unwrap_or_else(|s| panic!("gateway {i}: /health/ready still {s}"));
        eprintln!("gateway {i} ready {:?} after the kill", t0.elapsed());
    }
    // Both ways round, on the healed cluster.
    key_login_across(&b, &a, &u).await.expect("a key B→A after");
    code_flow_across(&a, &b, &s, &hook)
        .await
        .expect("a code A→B after");
}

/// `WAIT` calls every primary of `cluster` served since its stats were reset.
async fn waits(cluster: &TestCluster) -> u64 {
    cluster
        .command_stats()
        .await
        .iter()
        .map(|(_, stats)| stats.get("wait").copied().unwrap_or(0))
        .sum()
}

/// On a cluster whose primaries have replicas, a code request's outbox entry
/// waits for a replica before the answer (known and unknown names alike, so
/// the answer's timing says nothing); set to 0 replicas, nothing waits.
#[tokio::test]
async fn a_code_request_waits_for_a_replica_unless_told_not_to() {
    let Some(cluster) = TestCluster::start().await else {
        return;
    };
    let seed = cluster.seed_url();
    let hook = Receiver::start().await;
    for (replicas, expected) in [(None, 2), (Some(0), 0)] {
        let app = spawn_app_on(&seed, &fresh_prefix(), |c| {
            c.redis_outbox_replicas = replicas;
        })
        .await;
        let s = shop(&app, &hook.url).await;
        // Once first, so that the nodes have the scripts: a node that answers
        // NOSCRIPT gets the script again and, after it, the WAIT again.
        let start = hook.received().len();
        for who in [JOHN, "nobody@banks.com"] {
            app.request_code(&s, who, "passwordless_authentication")
                .await;
        }
        let before = start + 1;
        hook.wait_for(before, Duration::from_secs(5)).await;
        cluster.reset_stats().await;
        for who in [JOHN, "nobody@banks.com"] {
            assert_eq!(
                app.request_code(&s, who, "passwordless_authentication")
                    .await
                    .status(),
                StatusCode::ACCEPTED,
                "{who}"
            );
        }
        assert_eq!(waits(&cluster).await, expected, "replicas {replicas:?}");
        let got = hook.wait_for(before + 1, Duration::from_secs(5)).await;
        assert_eq!(got.len(), before + 1, "John's code is delivered");
    }
}
