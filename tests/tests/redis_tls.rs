//! The store over TLS and with ACL credentials, on real servers: a private CA
//! (`TestCa`), TLS-only `redis-server`s (one demanding client certificates), a
//! TLS-only Redis Cluster, and an ACL user. What is refused for its
//! configuration (a password, a certificate, a URL) is `StoreError::Config`,
//! with a message that names the problem and never the password.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::time::Duration;

use authgate_core::store::{
    Keys, Op, RedisOptions, RedisStore, Reply, Store, StoreError, StoreExt,
};
use authgate_tests::{spawn_app_on, TestCa, TestCluster, TestRedis};
use reqwest::StatusCode;

/// `RedisStore::connect_with`, bounded: a connection attempt that neither
/// succeeds nor fails within 20 s fails the test.
async fn connect(options: &RedisOptions) -> Result<RedisStore, StoreError> {
    tokio::time::timeout(Duration::from_secs(20), RedisStore::connect_with(options))
        .await
        .unwrap_or_else(|_| panic!("connecting with {options:?} took over 20 s"))
}

/// Options for `url` trusting the CA file `ca`.
fn trusting(url: &str, ca: &Path) -> RedisOptions {
    let mut o = RedisOptions::new(url);
    o.ca_cert = Some(ca.to_path_buf());
    o
}

/// A Set then a Get of a fresh key under `prefix`.
async fn round_trip(store: &RedisStore, prefix: &str) {
    let k = Keys::new(prefix);
    let key = k.user("app", "tls", "v");
    store
        .set(&key, b"over tls".to_vec(), Some(Duration::from_secs(60)))
        .await
        .expect("SET");
    assert_eq!(
        store.get(&key).await.expect("GET").as_deref(),
        Some(&b"over tls"[..])
    );
}

/// Asserts a `Config` error and returns its message.
fn config_message(result: Result<RedisStore, StoreError>, what: &str) -> String {
    match result {
        Err(StoreError::Config(message)) => message,
        Err(other) => panic!("{what}: expected StoreError::Config, got {other:?}"),
        Ok(store) => panic!("{what}: expected a refusal, connected: {store:?}"),
    }
}

#[tokio::test]
async fn rediss_with_the_ca_file_round_trips() {
    let Some(ca) = TestCa::new() else { return };
    let Some(redis) = TestRedis::start_tls(&ca, false).await else {
        return;
    };
    assert!(redis.url.starts_with("rediss://"), "{}", redis.url);
    let store = connect(&trusting(&redis.url, &ca.ca_cert))
        .await
        .expect("connects over TLS, trusting the test CA");
    assert!(!store.is_cluster());
    round_trip(&store, &redis.prefix).await;
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused_as_configuration() {
    let Some(ca) = TestCa::new() else { return };
    let Some(redis) = TestRedis::start_tls(&ca, false).await else {
        return;
    };
    // The server's certificate is the test CA's; the gateway trusts only the other CA.
    let message = config_message(
        connect(&trusting(&redis.url, &ca.other_ca_cert)).await,
        "an untrusted server certificate",
    );
    assert!(
        message.contains("certificate") || message.contains("UnknownIssuer"),
        "the message names the certificate problem: {message}"
    );
}

#[tokio::test]
async fn a_server_demanding_a_client_certificate_takes_the_one_from_its_ca() {
    let Some(ca) = TestCa::new() else { return };
    let Some(redis) = TestRedis::start_tls(&ca, true).await else {
        return;
    };
    let message = config_message(
        connect(&trusting(&redis.url, &ca.ca_cert)).await,
        "no client certificate",
    );
    assert!(
        message.contains("ertificate"),
        "the message names the missing certificate: {message}"
    );
    let mut with = trusting(&redis.url, &ca.ca_cert);
    with.client_cert = Some(ca.client_cert.clone());
    with.client_key = Some(ca.client_key.clone());
    let store = connect(&with)
        .await
        .expect("connects with the CA's client certificate");
    round_trip(&store, &redis.prefix).await;
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused_as_configuration() {
    let Some(ca) = TestCa::new() else { return };
    let Some(redis) = TestRedis::start_tls(&ca, true).await else {
        return;
    };
    let mut foreign = trusting(&redis.url, &ca.ca_cert);
    foreign.client_cert = Some(ca.other_client_cert.clone());
    foreign.client_key = Some(ca.other_client_key.clone());
    // Waiting will not make the server trust it: the gateway must say so at
    // start-up rather than answer 503 and retry for ever.
    let message = config_message(
        connect(&foreign).await,
        "a client certificate of another CA",
    );
    assert!(
        message.contains("ertificate") || message.contains("UnknownCA"),
        "the message names the certificate problem: {message}"
    );
}

#[tokio::test]
async fn a_tls_cluster_is_reached_from_one_seed_with_the_ca_file() {
    let Some(ca) = TestCa::new() else { return };
    let Some(cluster) = TestCluster::start_tls(&ca).await else {
        return;
    };
    let seed = cluster.seed_url();
    assert!(seed.starts_with("rediss://"), "{seed}");
    let store = connect(&trusting(&seed, &ca.ca_cert))
        .await
        .expect("connects to the TLS cluster from one seed");
    assert!(store.is_cluster(), "auto mode finds the cluster over TLS");
    // Keys of many users, so every primary takes part; one batch, then reads.
    let k = Keys::new("tls-cluster:");
    let keys: Vec<String> = (0..30)
        .map(|i| k.user("app", &format!("u{i}"), "v"))
        .collect();
    cluster.reset_stats().await;
    let replies = store
        .exec(
            keys.iter()
                .map(|key| Op::Set {
                    key: key.clone(),
                    value: key.as_bytes().to_vec(),
                    ttl: Some(Duration::from_secs(60)),
                })
                .collect(),
        )
        .await
        .expect("a batch over the TLS cluster");
    assert!(replies.iter().all(|r| *r == Reply::Done), "{replies:?}");
    let replies = store
        .exec(keys.iter().map(|key| Op::Get(key.clone())).collect())
        .await
        .expect("reads over the TLS cluster");
    for (key, reply) in keys.iter().zip(replies) {
        assert_eq!(reply, Reply::Value(Some(key.as_bytes().to_vec())));
    }
    let counts = cluster.command_counts().await;
    assert!(
        counts.len() == 3 && counts.iter().all(|(_, n)| *n > 0),
        "every primary served part of it: {counts:?}"
    );
}

#[tokio::test]
async fn acl_credentials_in_the_url_and_a_wrong_password_that_is_never_shown() {
    const PASSWORD: &str = "Right-Pass_4711";
    const WRONG: &str = "Wrong-Pass_0815";
    let Some(redis) = TestRedis::start_acl("authgate", PASSWORD).await else {
        return;
    };
    assert!(redis.url.contains(PASSWORD), "{}", redis.url);
    let store = connect(&RedisOptions::new(&redis.url))
        .await
        .expect("connects as the ACL user");
    round_trip(&store, &redis.prefix).await;

    let port = redis.port().expect("a private server");
    for (url, what) in [
        (
            format!("redis://authgate:{WRONG}@127.0.0.1:{port}"),
            "a wrong password",
        ),
        (
            format!("redis://nobody:{WRONG}@127.0.0.1:{port}"),
            "an unknown user",
        ),
        (format!("redis://127.0.0.1:{port}"), "no credentials"),
    ] {
        let message = config_message(connect(&RedisOptions::new(&url)).await, what);
        eprintln!("{what}: {message}");
        assert!(
            !message.contains(WRONG) && !message.contains(PASSWORD),
            "{what}: the message shows no password: {message}"
        );
    }
}

#[tokio::test]
async fn certificate_checks_cannot_be_configured_away() {
    let Some(ca) = TestCa::new() else { return };
    let Some(tls) = TestRedis::start_tls(&ca, false).await else {
        return;
    };
    let Some(plain) = TestRedis::start().await else {
        return;
    };
    // A CA file with a plain URL: the operator meant TLS and would not get it.
    let message = config_message(
        connect(&trusting(&plain.url, &ca.ca_cert)).await,
        "a CA file with redis://",
    );
    assert!(message.contains("rediss://"), "{message}");
    let mut half = RedisOptions::new(&tls.url);
    half.client_cert = Some(ca.client_cert.clone());
    config_message(connect(&half).await, "a client certificate without its key");
    // redis-rs would read `#insecure` as "skip certificate checks".
    for url in [
        format!("{}#insecure", tls.url),
        format!("{}/#insecure", tls.url),
    ] {
        let message = config_message(
            connect(&trusting(&url, &ca.ca_cert)).await,
            "a #insecure fragment",
        );
        assert!(message.contains("fragment"), "{message}");
        // Not even with the other CA, where an unchecked connection would succeed.
        config_message(
            connect(&trusting(&url, &ca.other_ca_cert)).await,
            "a #insecure fragment, untrusted server",
        );
    }
    // A certificate file that is not there.
    let message = config_message(
        connect(&trusting(&tls.url, &ca.dir.join("missing.crt"))).await,
        "a missing CA file",
    );
    assert!(message.contains("missing.crt"), "{message}");
}

#[tokio::test]
async fn the_gateway_on_a_tls_redis_demanding_client_certificates_is_ready_and_serves() {
    let Some(ca) = TestCa::new() else { return };
    let Some(redis) = TestRedis::start_tls(&ca, true).await else {
        return;
    };
    let app = spawn_app_on(&redis.url, &redis.prefix, |c| {
        c.redis_ca_cert = Some(ca.ca_cert.clone());
        c.redis_client_cert = Some(ca.client_cert.clone());
        c.redis_client_key = Some(ca.client_key.clone());
    })
    .await;
    assert_eq!(app.ready().await, StatusCode::OK);
    let u = app.web_user("tina", "tinapass1").await;
    assert_eq!(app.key_login(&u).await["result"], true);
    assert!(
        !redis.keys().await.is_empty(),
        "the gateway's state is in the TLS Redis"
    );
}
