//! Tests of the Redis test harness itself (Redis Cluster, TLS, ACL), with the
//! `redis` crate directly rather than the gateway's store.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use authgate_tests::{TestCa, TestCluster, TestRedis};
use redis::{AsyncCommands, Client, ErrorKind, TlsCertificates};

/// Keys without hash tags, so their slots spread over the cluster: with 60 of
/// them, a primary getting none is a one in 10^10 event.
fn spread_keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("harness:{i}")).collect()
}

/// A PING over a fresh connection from `client` (bounded).
async fn ping(client: &Client) -> redis::RedisResult<()> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let mut c = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    redis::cmd("PING")
        .query_async::<String>(&mut c)
        .await
        .map(drop)
}

fn tls_client(url: &str, certs: TlsCertificates) -> Client {
    Client::build_with_tls(url, certs).expect("tls client")
}

#[tokio::test]
async fn cluster_forms_spreads_keys_and_fails_over() {
    let started = Instant::now();
    let Some(cluster) = TestCluster::start().await else {
        return;
    };
    let formed_in = started.elapsed();
    eprintln!("cluster formed in {formed_in:?}");
    assert_eq!(cluster.primaries().len(), 3);
    assert_eq!(cluster.replicas().len(), 3);
    assert_eq!(cluster.seed_urls().split(',').count(), 3);
    assert!(cluster.seed_url().starts_with("redis://127.0.0.1:"));
    for addr in cluster.primaries().iter().chain(&cluster.replicas()) {
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        assert!(port < 55_536 && port != 6379, "{addr}");
    }

    cluster.reset_stats().await;
    let mut c = cluster.conn().await;
    let keys = spread_keys(60);
    for k in &keys {
        let _: () = c.set(k, format!("v-{k}")).await.expect("SET");
    }
    for k in &keys {
        let v: String = c.get(k).await.expect("GET");
        assert_eq!(v, format!("v-{k}"));
    }

    // Every primary did part of the work: 120 SET/GET in all.
    let counts = cluster.command_counts().await;
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.iter().all(|(_, n)| *n > 0), "{counts:?}");
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 120, "{counts:?}");
    let stats = cluster.command_stats().await;
    let gets: u64 = stats.iter().filter_map(|(_, s)| s.get("get")).sum();
    assert_eq!(gets, 60, "{stats:?}");

    // Kill the primary of one key: its replica takes over and the key is back.
    let victim_key = &keys[0];
    let killed = cluster.kill_primary_of(victim_key).await;
    assert!(!cluster.primaries().contains(&format!("127.0.0.1:{killed}")));
    let took = cluster.wait_failover(Duration::from_secs(15)).await;
    eprintln!("failover of {killed} took {took:?}");
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3, "{primaries:?}");
    assert!(!primaries.contains(&format!("127.0.0.1:{killed}")));
    assert_eq!(cluster.replicas().len(), 2);

    // The client finds the promoted replica by itself, within a bounded time of
    // the promotion (counted from it, not from the kill: a loaded machine can
    // take most of the failover's own 15 s to elect the replica).
    let promoted = Instant::now();
    let back = loop {
        let got: redis::RedisResult<String> = c.get(victim_key).await;
        match got {
            Ok(v) => break v,
            Err(e) if promoted.elapsed() < Duration::from_secs(10) => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("key not usable 10 s after the promotion: {e}"),
        }
    };
    assert_eq!(back, format!("v-{victim_key}"), "replicated value survived");
    let _: () = c
        .set(victim_key, "after")
        .await
        .expect("SET after failover");
    // And every other key still works.
    for k in &keys[1..] {
        let v: String = c.get(k).await.expect("GET after failover");
        assert_eq!(v, format!("v-{k}"));
    }
    let after: BTreeSet<String> = cluster
        .command_counts()
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(after, primaries.into_iter().collect());
}

#[tokio::test]
async fn tls_cluster_forms_and_serves() {
    let Some(ca) = TestCa::new() else { return };
    let started = Instant::now();
    let Some(cluster) = TestCluster::start_tls(&ca).await else {
        return;
    };
    eprintln!("TLS cluster formed in {:?}", started.elapsed());
    assert!(cluster.seed_url().starts_with("rediss://127.0.0.1:"));
    let mut c = cluster.conn().await;
    for k in spread_keys(30) {
        let _: () = c.set(&k, &k).await.expect("SET over TLS");
        let v: String = c.get(&k).await.expect("GET over TLS");
        assert_eq!(v, k);
    }
    let counts = cluster.command_counts().await;
    assert!(counts.iter().all(|(_, n)| *n > 0), "{counts:?}");

    // A node refuses a client that trusts only the other CA.
    let port: u16 = cluster.primaries()[0]
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let untrusting = tls_client(&cluster.url(port), ca.untrusted_tls_certs());
    assert!(ping(&untrusting).await.is_err());
}

#[tokio::test]
async fn tls_standalone_checks_the_server_certificate() {
    let Some(ca) = TestCa::new() else { return };
    let Some(redis) = TestRedis::start_tls(&ca, false).await else {
        return;
    };
    assert!(
        redis.url.starts_with("rediss://127.0.0.1:"),
        "{}",
        redis.url
    );

    let trusting = tls_client(&redis.url, ca.tls_certs(false));
    ping(&trusting).await.expect("trusting client connects");
    let untrusting = tls_client(&redis.url, ca.untrusted_tls_certs());
    let err = ping(&untrusting)
        .await
        .expect_err("a client trusting only the other CA is refused");
    eprintln!("untrusted: {err}");

    // Plain TCP on the TLS port gets nowhere.
    let plain = Client::open(redis.url.replacen("rediss://", "redis://", 1)).unwrap();
    assert!(ping(&plain).await.is_err());

    // The harness' own helpers work over TLS.
    let mut c = redis.conn().await;
    let key = format!("{}k", redis.prefix);
    let _: () = c.set(&key, "v").await.unwrap();
    assert_eq!(redis.keys().await, vec![key]);
}

#[tokio::test]
async fn tls_standalone_can_require_a_client_certificate() {
    let Some(ca) = TestCa::new() else { return };
    let Some(mut redis) = TestRedis::start_tls(&ca, true).await else {
        return;
    };
    let without = tls_client(&redis.url, ca.tls_certs(false));
    assert!(
        ping(&without).await.is_err(),
        "no client certificate is refused"
    );
    let foreign = tls_client(&redis.url, ca.foreign_client_tls_certs());
    assert!(
        ping(&foreign).await.is_err(),
        "a client certificate from the other CA is refused"
    );
    let with = tls_client(&redis.url, ca.tls_certs(true));
    ping(&with)
        .await
        .expect("the CA's client certificate is accepted");

    // stop/restart keep the TLS options.
    redis.stop();
    assert!(ping(&with).await.is_err());
    redis.restart().await;
    ping(&with).await.expect("back over TLS");
}

#[tokio::test]
async fn acl_user_needs_the_right_password() {
    let Some(redis) = TestRedis::start_acl("gate", "s3cret-pw").await else {
        return;
    };
    let port = redis.port().unwrap();
    assert_eq!(
        redis.url,
        format!("redis://gate:s3cret-pw@127.0.0.1:{port}")
    );
    ping(&redis.client()).await.expect("right password");
    let wrong = Client::open(format!("redis://gate:wrong@127.0.0.1:{port}")).unwrap();
    let err = ping(&wrong).await.expect_err("wrong password refused");
    assert_eq!(err.kind(), ErrorKind::AuthenticationFailed, "{err}");
    let anonymous = Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    assert!(ping(&anonymous).await.is_err(), "the default user is off");
}

#[tokio::test]
async fn extra_args_reach_the_server() {
    let Some(redis) = TestRedis::start_with_args(&["--maxmemory", "7mb"]).await else {
        return;
    };
    let mut c = redis.conn().await;
    let (_, v): (String, String) = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(v, (7 * 1024 * 1024).to_string());
}
