//! Keeping the session cache ([`ReadCache`]) true: a connection to every
//! primary that asks Redis to push the name of each session key written or
//! deleted there (`CLIENT TRACKING ON BCAST PREFIX <sessions>`, RESP3).
//!
//! Broadcast mode is used, not the default mode that tracks what one
//! connection read: the gateway reads sessions in its ordinary pipelines (on
//! a cluster, through the cluster client), so the keys it reads and the
//! connection that hears about them are not the same connection. Broadcast
//! pushes every session key changed on the primary, read here or not; a
//! push for a key this replica does not hold costs one failed map lookup.
//!
//! The cache serves only while every primary's connection is up, tracking,
//! and answering a ping within [`LAG`]; otherwise it is emptied and not live,
//! and tokens are checked against Redis until the connections are back
//! (fail closed). On a cluster the primaries are asked for again every
//! [`TOPOLOGY`]: a new primary (a failover, a node added) restarts tracking.

use std::collections::BTreeSet;
use std::sync::Weak;
use std::time::{Duration, Instant};

use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ProtocolVersion, PushInfo,
    PushKind, Value,
};

use crate::store::{ReadCache, StoreError};

/// How often each tracking connection is pinged.
pub const HEARTBEAT: Duration = Duration::from_millis(100);
/// A tracking connection slower than this to answer a ping stops the cache:
/// its pushes may be as late.
pub const LAG: Duration = Duration::from_millis(250);
/// How often a cluster's primaries are listed again.
pub const TOPOLOGY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts to start tracking.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Where the primaries are.
#[derive(Clone)]
pub(super) enum Nodes {
    /// One server.
    Server(ConnectionInfo),
    /// A cluster: its primaries are listed through its client, and reached
    /// with the settings (TLS, credentials) of the node the store was given.
    Cluster(ConnectionInfo, ClusterConnection),
}

impl Nodes {
    /// The primaries, each as a connection's settings.
    async fn primaries(&self) -> Result<Vec<ConnectionInfo>, StoreError> {
        match self {
            Nodes::Server(info) => Ok(vec![info.clone()]),
            Nodes::Cluster(template, conn) => Ok(cluster_primaries(conn)
                .await?
                .into_iter()
                .map(|(host, port)| at(template, host, port))
                .collect()),
        }
    }
}

/// The (host, port) of every primary that serves slots.
async fn cluster_primaries(
    conn: &ClusterConnection,
) -> Result<BTreeSet<(String, u16)>, StoreError> {
    Ok(super::slot_ranges(conn)
        .await?
        .into_iter()
        .filter_map(|r| r.primary)
        .collect())
}

/// `template`'s settings (scheme, TLS, credentials) for the node at `host:port`.
fn at(template: &ConnectionInfo, host: String, port: u16) -> ConnectionInfo {
    let addr = match template.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host, port),
    };
    template.clone().set_addr(addr)
}

/// Why tracking stopped.
enum Stopped {
    /// The cache is gone (the store was dropped): nothing more to do.
    Gone,
    /// Something failed; tracking starts again.
    Failed(String),
}

/// Keeps `cache` true for as long as it exists: starts tracking on every
/// primary, serves pushes, and starts again after any failure.
pub(super) async fn supervise(nodes: Nodes, prefix: String, cache: Weak<ReadCache>) {
    let mut backoff = Duration::from_millis(100);
    let mut warned = false;
    loop {
        let began = Instant::now();
        match track(&nodes, &prefix, &cache).await {
            Stopped::Gone => return,
            Stopped::Failed(why) => {
                match cache.upgrade() {
                    Some(c) => {
                        // Said once when it starts failing (a Redis without
                        // CLIENT TRACKING, or an ACL user not allowed it, stays
                        // off for good), and each time a live cache stops.
                        if c.is_live() || !warned {
                            tracing::warn!(
                                "session cache off until Redis can push changes again: {why}"
                            );
                            warned = true;
                        } else {
                            tracing::debug!("session cache still off: {why}");
                        }
                        c.set_live(false);
                    }
                    None => return,
                }
                if began.elapsed() > MAX_BACKOFF * 4 {
                    backoff = Duration::from_millis(100);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One run of tracking: until a connection fails, lags, or the primaries change.
async fn track(nodes: &Nodes, prefix: &str, cache: &Weak<ReadCache>) -> Stopped {
    let primaries = match nodes.primaries().await {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => return Stopped::Failed("no primary serves slots".into()),
        Err(e) => return Stopped::Failed(e.to_string()),
    };
    let (tx, mut pushes) = tokio::sync::mpsc::unbounded_channel::<PushInfo>();
    let mut conns = Vec::with_capacity(primaries.len());
    for info in &primaries {
        match open(info, prefix, tx.clone()).await {
            Ok(conn) => conns.push(conn),
            Err(e) => return Stopped::Failed(e),
        }
    }
    drop(tx);
    let Some(c) = cache.upgrade() else {
        return Stopped::Gone;
    };
    c.set_live(true);
    drop(c);
    tracing::info!(
        primaries = conns.len(),
        "session cache on: Redis pushes every change of a session"
    );
    let listed: BTreeSet<String> = primaries.iter().map(|i| i.addr().to_string()).collect();
    let mut beat = tokio::time::interval(HEARTBEAT);
    let mut topology = tokio::time::interval(TOPOLOGY);
    topology.tick().await;
    loop {
        tokio::select! {
            push = pushes.recv() => {
                let Some(push) = push else {
                    return Stopped::Failed("the push channel closed".into());
                };
                let Some(c) = cache.upgrade() else {
                    return Stopped::Gone;
                };
                match push.kind {
                    PushKind::Invalidate => invalidate(&c, push.data),
                    PushKind::Disconnection => {
                        return Stopped::Failed("a tracking connection was lost".into());
                    }
                    _ => {}
                }
            }
            _ = beat.tick() => {
                if cache.strong_count() == 0 {
                    return Stopped::Gone;
                }
                let pings = conns.iter().map(|conn| {
                    let mut conn = conn.clone();
                    async move {
                        tokio::time::timeout(
                            LAG,
                            redis::cmd("PING").query_async::<Value>(&mut conn),
                        )
                        .await
                    }
                });
                for answer in futures::future::join_all(pings).await {
                    match answer {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Stopped::Failed(format!("ping: {e}")),
                        Err(_) => {
                            return Stopped::Failed(format!("no answer to a ping within {LAG:?}"));
                        }
                    }
                }
            }
            _ = topology.tick(), if matches!(nodes, Nodes::Cluster(..)) => {
                match nodes.primaries().await {
                    Ok(now) => {
                        let now: BTreeSet<String> = now.iter().map(|i| i.addr().to_string()).collect();
                        if now != listed {
                            return Stopped::Failed("the cluster's primaries changed".into());
                        }
                    }
                    Err(e) => return Stopped::Failed(format!("listing the primaries: {e}")),
                }
            }
        }
    }
}

/// A RESP3 connection to one primary, tracking the session keys.
async fn open(
    info: &ConnectionInfo,
    prefix: &str,
    pushes: tokio::sync::mpsc::UnboundedSender<PushInfo>,
) -> Result<redis::aio::MultiplexedConnection, String> {
    let info = info.clone().set_redis_settings(
        info.redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3),
    );
    let where_ = info.addr().to_string();
    let client = Client::open(info).map_err(|e| format!("{where_}: {e}"))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_push_sender(pushes);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| format!("{where_}: {e}"))?;
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("authgate-session-tracking")
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| format!("{where_}: CLIENT SETNAME: {e}"))?;
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(prefix)
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| format!("{where_}: CLIENT TRACKING: {e}"))?;
    Ok(conn)
}

/// Applies one `invalidate` push: its keys, or everything (a flush).
fn invalidate(cache: &ReadCache, data: Vec<Value>) {
    match data.into_iter().next() {
        Some(Value::Array(keys)) | Some(Value::Set(keys)) => {
            for key in keys {
                match key {
                    Value::BulkString(b) => cache.invalidate(&String::from_utf8_lossy(&b)),
                    Value::SimpleString(s) => cache.invalidate(&s),
                    _ => cache.invalidate_all(),
                }
            }
        }
        _ => cache.invalidate_all(),
    }
}
