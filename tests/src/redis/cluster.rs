//! A private Redis Cluster on loopback: 3 primaries and 3 replicas.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Client, TlsCertificates};

use super::{
    base_args, client_for, has_redis_server, install_crypto_provider, log_tail, quick_config,
    spawn_redis, unavailable, wait_ready, TestCa,
};

/// Nodes per cluster: 3 primaries, each with 1 replica.
const NODES: u16 = 6;
/// A node's cluster-bus port is its client port plus this (set explicitly with
/// `--cluster-port`, which is also Redis' default).
const BUS_OFFSET: u16 = 10_000;
/// `--cluster-node-timeout`: failure detection takes about this long, a failover
/// about twice that.
const NODE_TIMEOUT_MS: u64 = 1_000;
/// Bound on `redis-cli --cluster create` and then on the cluster settling.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);
/// Port windows tried before giving up.
const ATTEMPTS: usize = 5;
const ALL_SLOTS: u64 = 16_384;

/// Commands left out of [`TestCluster::command_counts`]: connection set-up,
/// topology discovery, replication and the harness' own introspection.
const HOUSEKEEPING: &[&str] = &[
    "auth",
    "client",
    "cluster",
    "command",
    "config",
    "hello",
    "info",
    "ping",
    "psync",
    "readonly",
    "readwrite",
    "replconf",
    "select",
    "sync",
];

/// Port bases in use by clusters of this process (other processes are caught by
/// the bind check and by retrying).
static RESERVED: Mutex<Vec<u16>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The range bases are drawn from: every node port `base..base+6` and bus port
/// `base+10000..base+10006` in `[10000, <start of the ephemeral port range>)`,
/// so that neither outgoing connections nor the port-0 servers of the other
/// helpers (both take ephemeral ports) can collide with a cluster. Falls back to
/// `20000..45000` if the ephemeral range starts too low for that.
fn base_window() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let top = ephemeral_low.saturating_sub(u32::from(BUS_OFFSET + NODES));
    if top >= 12_000 {
        (10_000, u16::try_from(top).unwrap_or(22_000))
    } else {
        (20_000, 45_000)
    }
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A random base whose node and bus ports are all bindable now, reserved in
/// this process until [`release_base`].
fn pick_base() -> Option<u16> {
    let (lo, hi) = base_window();
    for _ in 0..50 {
        let span = u128::from(hi - lo);
        let base = lo + u16::try_from(uuid::Uuid::new_v4().as_u128() % span).unwrap_or(0);
        let mut reserved = lock(&RESERVED);
        if reserved.iter().any(|b| b.abs_diff(base) < NODES) {
            continue;
        }
        if (base..base + NODES).all(|p| bindable(p) && bindable(p + BUS_OFFSET)) {
            reserved.push(base);
            return Some(base);
        }
    }
    None
}

fn release_base(base: u16) {
    lock(&RESERVED).retain(|b| *b != base);
}

/// `key:value` from an `INFO` or `CLUSTER INFO` reply.
fn field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        l.trim_end()
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(':'))
    })
}

fn field_u64(info: &str, key: &str) -> u64 {
    field(info, key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// One line of `CLUSTER NODES`.
#[derive(Debug)]
struct NodeLine {
    port: u16,
    master: bool,
    failing: bool,
    slots: Vec<(u64, u64)>,
}

impl NodeLine {
    fn slot_count(&self) -> u64 {
        self.slots.iter().map(|(a, b)| b - a + 1).sum()
    }
    fn serves(&self, slot: u64) -> bool {
        self.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
    }
}

fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            // <id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...
            let addr = parts.get(1)?.split('@').next()?;
            let port = addr.rsplit(':').next()?.parse().ok()?;
            let flags: Vec<&str> = parts.get(2)?.split(',').collect();
            let slots = parts
                .iter()
                .skip(8)
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|n| (n, n)),
                })
                .collect();
            Some(NodeLine {
                port,
                master: flags.contains(&"master"),
                failing: flags
                    .iter()
                    .any(|f| matches!(*f, "fail" | "fail?" | "noaddr")),
                slots,
            })
        })
        .collect()
}

/// `cmdstat_<name>:calls=<n>,…` lines of `INFO commandstats`.
fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim_end().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

fn is_housekeeping(command: &str) -> bool {
    let base = command.split('|').next().unwrap_or(command);
    HOUSEKEEPING.contains(&base)
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

struct Node {
    port: u16,
    dir: PathBuf,
    /// `None` once killed.
    child: Mutex<Option<Child>>,
}

impl Node {
    fn kill(&self) -> bool {
        match lock(&self.child).take() {
            Some(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
                true
            }
            None => false,
        }
    }
    fn alive(&self) -> bool {
        lock(&self.child).is_some()
    }
}

#[derive(Clone, Default)]
struct Topology {
    primaries: Vec<u16>,
    replicas: Vec<u16>,
}

/// How the nodes talk TLS.
struct ClusterTls<'a> {
    ca: &'a TestCa,
    require_client_cert: bool,
}

enum StartError {
    /// Probably lost a port race: try another window.
    Retry(String),
    Fatal(String),
}

/// A private Redis Cluster of 3 primaries and 3 replicas on loopback, each node
/// its own `redis-server` (`--cluster-node-timeout 1000`, no persistence, config
/// and log in a private temp dir). Dropping it kills every node and removes the
/// temp dir.
///
/// Ports: a random base `b` is drawn (see the module's `base_window`: with the
/// usual Linux ephemeral range, `b` in `10000..22762`), nodes listen on
/// `b..b+6` and their cluster buses on `b+10000..b+10006`, all below the
/// ephemeral range so they cannot collide with port-0 listeners or outgoing
/// connections; every one of the 12 ports must be bindable, and a window whose
/// nodes fail to start (another process took a port meanwhile) is abandoned
/// for a new one, up to 5 times.
///
/// [`primaries`](Self::primaries) and [`replicas`](Self::replicas) are the roles
/// observed when the cluster formed, updated by [`kill_primary_of`](Self::kill_primary_of)
/// (the killed node leaves the list) and [`wait_failover`](Self::wait_failover)
/// (roles re-read).
pub struct TestCluster {
    nodes: Vec<Node>,
    base: u16,
    dir: PathBuf,
    /// Client-side TLS (trusts the CA, presents the client certificate).
    tls: Option<TlsCertificates>,
    topology: Mutex<Topology>,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for n in &self.nodes {
            n.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        release_base(self.base);
    }
}

impl TestCluster {
    /// A plain-TCP cluster, or `None` (after saying so loudly; a failure under
    /// `AUTHGATE_REQUIRE_REDIS=1`) without `redis-server`.
    pub async fn start() -> Option<Self> {
        Self::start_inner(None).await
    }

    /// A TLS-only cluster (`--port 0 --tls-port <port> --tls-cluster yes
    /// --tls-replication yes`, URLs `rediss://`): nodes serve `ca`'s server
    /// certificate, trust `ca`, and do not ask clients for a certificate
    /// (`--tls-auth-clients no`).
    pub async fn start_tls(ca: &TestCa) -> Option<Self> {
        Self::start_inner(Some(ClusterTls {
            ca,
            require_client_cert: false,
        }))
        .await
    }

    /// Like [`TestCluster::start_tls`], but clients must present a certificate
    /// signed by `ca` (`--tls-auth-clients yes`); [`TestCluster::client`] does.
    pub async fn start_mtls(ca: &TestCa) -> Option<Self> {
        Self::start_inner(Some(ClusterTls {
            ca,
            require_client_cert: true,
        }))
        .await
    }

    async fn start_inner(tls: Option<ClusterTls<'_>>) -> Option<Self> {
        if !has_redis_server() {
            return unavailable("this Redis Cluster test", "redis-server on PATH");
        }
        if tls.is_some() {
            install_crypto_provider();
        }
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            let Some(base) = pick_base() else {
                failures.push("no window of 12 bindable ports found".to_string());
                continue;
            };
            match Self::try_start(base, tls.as_ref()).await {
                Ok(cluster) => return Some(cluster),
                Err(StartError::Retry(e)) => failures.push(format!("base {base}: {e}")),
                Err(StartError::Fatal(e)) => panic!("Redis Cluster on base {base}: {e}"),
            }
        }
        panic!(
            "redis-server is installed but a Redis Cluster did not start in {ATTEMPTS} port windows:\n{}",
            failures.join("\n")
        );
    }

    async fn try_start(base: u16, tls: Option<&ClusterTls<'_>>) -> Result<Self, StartError> {
        let dir = std::env::temp_dir().join(format!(
            "authgate-cluster-{base}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        // From here on, dropping `cluster` kills what was started and cleans up.
        let mut cluster = Self {
            nodes: Vec::new(),
            base,
            dir,
            tls: tls.map(|t| t.ca.tls_certs(true)),
            topology: Mutex::new(Topology::default()),
        };
        for port in base..base + NODES {
            let node_dir = cluster.dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir).map_err(|e| StartError::Fatal(e.to_string()))?;
            let args = node_args(port, &node_dir, tls);
            let child = spawn_redis(&args, &node_dir)
                .map_err(|e| StartError::Fatal(format!("spawning redis-server: {e}")))?;
            cluster.nodes.push(Node {
                port,
                dir: node_dir,
                child: Mutex::new(Some(child)),
            });
        }
        for node in &cluster.nodes {
            let client = cluster.node_client(node.port);
            let mut child = lock(&node.child)
                .take()
                .ok_or_else(|| StartError::Fatal("no child".into()))?;
            let ready = wait_ready(&client, &mut child, &node.dir, Duration::from_secs(5)).await;
            *lock(&node.child) = Some(child);
            ready.map_err(|e| StartError::Retry(format!("node {}: {e}", node.port)))?;
        }
        cluster.create(tls).await.map_err(StartError::Fatal)?;
        cluster.wait_formed().await.map_err(StartError::Fatal)?;
        Ok(cluster)
    }

    /// `redis-cli --cluster create … --cluster-replicas 1 --cluster-yes`.
    async fn create(&self, tls: Option<&ClusterTls<'_>>) -> Result<(), String> {
        let mut cmd = tokio::process::Command::new("redis-cli");
        if let Some(t) = tls {
            cmd.arg("--tls")
                .arg("--cacert")
                .arg(&t.ca.ca_cert)
                .arg("--cert")
                .arg(&t.ca.client_cert)
                .arg("--key")
                .arg(&t.ca.client_key);
        }
        cmd.args(["--cluster", "create"])
            .args(self.nodes.iter().map(|n| addr(n.port)))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = match tokio::time::timeout(FORM_TIMEOUT, cmd.output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => return Err(format!("running redis-cli: {e}")),
            Err(_) => {
                return Err(format!(
                    "redis-cli --cluster create took over {FORM_TIMEOUT:?}"
                ))
            }
        };
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "redis-cli --cluster create failed ({}):\n{}\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            ))
        }
    }

    /// Waits until every node says `cluster_state:ok` with all slots assigned and
    /// 6 known nodes, 3 nodes are primaries and 3 replicas with
    /// `master_link_status:up`, and every node's `CLUSTER NODES` lists those 3
    /// replicas.
    async fn wait_formed(&self) -> Result<(), String> {
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            let last = match self.formed().await {
                Ok(topology) => {
                    *lock(&self.topology) = topology;
                    return Ok(());
                }
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "not formed within {FORM_TIMEOUT:?}: {last}\n{}",
                    self.logs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn formed(&self) -> Result<Topology, String> {
        let mut topology = Topology::default();
        for node in &self.nodes {
            let p = node.port;
            let mut c = self.node_conn(p).await.map_err(|e| format!("{p}: {e}"))?;
            let info = cluster_info(&mut c)
                .await
                .map_err(|e| format!("{p}: {e}"))?;
            if field(&info, "cluster_state") != Some("ok")
                || field_u64(&info, "cluster_slots_assigned") != ALL_SLOTS
                || field_u64(&info, "cluster_slots_ok") != ALL_SLOTS
                || field_u64(&info, "cluster_known_nodes") != u64::from(NODES)
            {
                return Err(format!("{p}: {}", summary(&info)));
            }
            let repl = info_section(&mut c, "replication")
                .await
                .map_err(|e| format!("{p}: {e}"))?;
            match field(&repl, "role") {
                Some("master") => topology.primaries.push(p),
                Some("slave") if field(&repl, "master_link_status") == Some("up") => {
                    topology.replicas.push(p);
                }
                _ => return Err(format!("{p}: replication not up yet")),
            }
            // Every node's own view lists the three replicas too: a client that
            // reads CLUSTER NODES from a node gossip has not reached yet would
            // see a primary without a replica (a gateway then never WAITs).
            let nodes: String = ::redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async(&mut c)
                .await
                .map_err(|e| format!("{p}: {e}"))?;
            let replicas_seen = nodes
                .lines()
                .filter(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.get(2).is_some_and(|flags| flags.contains("slave"))
                        && f.get(3).is_some_and(|master| *master != "-")
                })
                .count();
            if replicas_seen != 3 {
                return Err(format!("{p} sees {replicas_seen} replicas"));
            }
        }
        if topology.primaries.len() != 3 || topology.replicas.len() != 3 {
            return Err(format!(
                "primaries {:?}, replicas {:?}",
                topology.primaries, topology.replicas
            ));
        }
        Ok(topology)
    }

    /// The URL of one node, `redis://127.0.0.1:<port>` (`rediss://` for TLS): the
    /// first of [`primaries`](Self::primaries).
    pub fn seed_url(&self) -> String {
        let t = lock(&self.topology);
        self.url(t.primaries.first().copied().unwrap_or(self.base))
    }

    /// The URLs of all primaries, comma-separated.
    pub fn seed_urls(&self) -> String {
        lock(&self.topology)
            .primaries
            .iter()
            .map(|p| self.url(*p))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The URL of the node on `port`.
    pub fn url(&self, port: u16) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{port}")
    }

    /// The primaries, `127.0.0.1:<port>`, sorted by port.
    pub fn primaries(&self) -> Vec<String> {
        let mut p = lock(&self.topology).primaries.clone();
        p.sort_unstable();
        p.into_iter().map(addr).collect()
    }

    /// The replicas, `127.0.0.1:<port>`, sorted by port.
    pub fn replicas(&self) -> Vec<String> {
        let mut r = lock(&self.topology).replicas.clone();
        r.sort_unstable();
        r.into_iter().map(addr).collect()
    }

    /// The client ports of all six nodes, killed or not.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// Whether this cluster speaks TLS only.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Client-side TLS settings for this cluster (trusting the CA, presenting its
    /// client certificate), for a TLS cluster.
    pub fn tls_certs(&self) -> Option<TlsCertificates> {
        self.tls.clone()
    }

    /// A cluster client seeded with [`seed_urls`](Self::seed_urls) (with
    /// [`tls_certs`](Self::tls_certs) for TLS), 1 s connection and 2 s response timeouts.
    pub fn client(&self) -> ClusterClient {
        let seeds: Vec<String> = lock(&self.topology)
            .primaries
            .iter()
            .map(|p| self.url(*p))
            .collect();
        let mut builder = ClusterClient::builder(seeds)
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(2));
        if let Some(certs) = &self.tls {
            builder = builder.certs(certs.clone());
        }
        builder.build().expect("cluster client")
    }

    /// An async cluster connection from [`client`](Self::client).
    pub async fn conn(&self) -> ClusterConnection {
        self.client()
            .get_async_connection()
            .await
            .expect("cluster connection")
    }

    /// A plain (non-cluster) client for the node on `port`.
    pub fn node_client(&self, port: u16) -> Client {
        client_for(&self.url(port), self.tls.as_ref()).expect("node url")
    }

    async fn node_conn(&self, port: u16) -> ::redis::RedisResult<MultiplexedConnection> {
        self.node_client(port)
            .get_multiplexed_async_connection_with_config(&quick_config())
            .await
    }

    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.alive())
            .map(|n| n.port)
            .collect()
    }

    /// Kills (SIGKILL) the node on `port`; whether it was still running.
    pub fn kill(&self, port: u16) -> bool {
        let killed = self
            .nodes
            .iter()
            .find(|n| n.port == port)
            .is_some_and(Node::kill);
        if killed {
            let mut t = lock(&self.topology);
            t.primaries.retain(|p| *p != port);
            t.replicas.retain(|p| *p != port);
        }
        killed
    }

    /// Kills (SIGKILL) the primary serving `key`'s slot, as a live node's
    /// `CLUSTER KEYSLOT` and `CLUSTER NODES` say, and returns its port.
    pub async fn kill_primary_of(&self, key: &str) -> u16 {
        let asker = *self.live_ports().first().expect("a live node");
        let mut c = self.node_conn(asker).await.expect("node connection");
        let slot: u64 = ::redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut c)
            .await
            .expect("CLUSTER KEYSLOT");
        let nodes: String = ::redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut c)
            .await
            .expect("CLUSTER NODES");
        let owner = parse_nodes(&nodes)
            .into_iter()
            .find(|n| n.master && !n.failing && n.serves(slot))
            .unwrap_or_else(|| panic!("no live primary serves slot {slot}:\n{nodes}"));
        assert!(
            self.kill(owner.port),
            "the primary of slot {slot}, port {}, was already dead",
            owner.port
        );
        owner.port
    }

    /// Waits until every surviving node says `cluster_state:ok` with all slots ok,
    /// and sees all 16384 slots served by live primaries not flagged failing (so a
    /// replica has taken over from each killed primary); then re-reads the roles
    /// and returns how long it waited. Panics, with every survivor's view, after
    /// `timeout`. Returns at once if no primary was killed.
    pub async fn wait_failover(&self, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let last = match self.failed_over().await {
                Ok(topology) => {
                    *lock(&self.topology) = topology;
                    return start.elapsed();
                }
                Err(e) => e,
            };
            if start.elapsed() >= timeout {
                panic!(
                    "no failover within {timeout:?}: {last}\n{}",
                    self.views().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn failed_over(&self) -> Result<Topology, String> {
        let live = self.live_ports();
        let mut agreed: Option<BTreeSet<u16>> = None;
        let mut topology = Topology::default();
        for &p in &live {
            let mut c = self.node_conn(p).await.map_err(|e| format!("{p}: {e}"))?;
            let info = cluster_info(&mut c)
                .await
                .map_err(|e| format!("{p}: {e}"))?;
            if field(&info, "cluster_state") != Some("ok")
                || field_u64(&info, "cluster_slots_ok") != ALL_SLOTS
            {
                return Err(format!("{p}: {}", summary(&info)));
            }
            let text: String = ::redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async(&mut c)
                .await
                .map_err(|e| format!("{p}: {e}"))?;
            let owners: Vec<NodeLine> = parse_nodes(&text)
                .into_iter()
                .filter(|n| n.master && !n.slots.is_empty())
                .collect();
            if let Some(bad) = owners.iter().find(|n| n.failing || !live.contains(&n.port)) {
                return Err(format!("{p} still sees {} serving slots", bad.port));
            }
            let served: u64 = owners.iter().map(NodeLine::slot_count).sum();
            if served != ALL_SLOTS {
                return Err(format!("{p} sees {served} slots served"));
            }
            let primaries: BTreeSet<u16> = owners.iter().map(|n| n.port).collect();
            if agreed.as_ref().is_some_and(|a| *a != primaries) {
                return Err(format!("{p} disagrees on the primaries: {primaries:?}"));
            }
            if !primaries.contains(&p) {
                topology.replicas.push(p);
            }
            agreed = Some(primaries);
        }
        topology.primaries = agreed.unwrap_or_default().into_iter().collect();
        Ok(topology)
    }

    /// Per primary (as in [`primaries`](Self::primaries)), the commands it
    /// processed since start or [`reset_stats`](Self::reset_stats): the sum of
    /// `calls=` over `INFO commandstats`, leaving out housekeeping that is not
    /// the application's load (AUTH, CLIENT, CLUSTER, COMMAND, CONFIG, HELLO,
    /// INFO, PING, PSYNC, READONLY, READWRITE, REPLCONF, SELECT, SYNC: connection
    /// set-up, topology discovery, replication, this harness). Sorted by address.
    pub async fn command_counts(&self) -> Vec<(String, u64)> {
        self.command_stats()
            .await
            .into_iter()
            .map(|(addr, stats)| {
                let n = stats
                    .iter()
                    .filter(|(cmd, _)| !is_housekeeping(cmd))
                    .map(|(_, calls)| calls)
                    .sum();
                (addr, n)
            })
            .collect()
    }

    /// Per primary, `INFO commandstats` as command name (`get`,
    /// `config|resetstat`, …) to `calls`, nothing left out. Sorted by address.
    pub async fn command_stats(&self) -> Vec<(String, BTreeMap<String, u64>)> {
        let mut out = Vec::new();
        let mut primaries = lock(&self.topology).primaries.clone();
        primaries.sort_unstable();
        for p in primaries {
            let mut c = self.node_conn(p).await.expect("node connection");
            let info = info_section(&mut c, "commandstats")
                .await
                .expect("INFO commandstats");
            out.push((addr(p), parse_commandstats(&info)));
        }
        out
    }

    /// `CONFIG RESETSTAT` on every live node.
    pub async fn reset_stats(&self) {
        for p in self.live_ports() {
            let mut c = self.node_conn(p).await.expect("node connection");
            ::redis::cmd("CONFIG")
                .arg("RESETSTAT")
                .query_async::<()>(&mut c)
                .await
                .expect("CONFIG RESETSTAT");
        }
    }

    /// Every live node's `CLUSTER NODES`, for failure messages.
    async fn views(&self) -> String {
        let mut out = String::new();
        for p in self.live_ports() {
            let view = match self.node_conn(p).await {
                Ok(mut c) => ::redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async::<String>(&mut c)
                    .await
                    .unwrap_or_else(|e| e.to_string()),
                Err(e) => e.to_string(),
            };
            out.push_str(&format!("--- {p} sees:\n{view}\n"));
        }
        out
    }

    /// Every node's log tail, for failure messages.
    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {} log:\n{}\n", n.port, log_tail(&n.dir)))
            .collect()
    }
}

/// Bound on each step of moving a slot ([`TestCluster::migrate_slot`]), and on
/// every node agreeing on its new owner afterwards.
const MOVE_TIMEOUT: Duration = Duration::from_secs(15);
/// `MIGRATE`'s own timeout, in milliseconds.
const MIGRATE_TIMEOUT_MS: u64 = 5_000;

/// Moving slots between primaries, step by step as `redis-cli --cluster
/// reshard` does, so that a test can act between the steps.
impl TestCluster {
    /// A connection to the node on `port` whose replies may take a while (a
    /// `MIGRATE` waits for the target).
    async fn patient_conn(&self, port: u16) -> MultiplexedConnection {
        let config = quick_config().set_response_timeout(Some(MOVE_TIMEOUT));
        self.node_client(port)
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap_or_else(|e| panic!("connection to node {port}: {e}"))
    }

    /// The node id of the node on `port` (`CLUSTER MYID`).
    pub async fn node_id(&self, port: u16) -> String {
        let mut c = self.patient_conn(port).await;
        ::redis::cmd("CLUSTER")
            .arg("MYID")
            .query_async(&mut c)
            .await
            .unwrap_or_else(|e| panic!("CLUSTER MYID on {port}: {e}"))
    }

    /// The port of the primary serving `slot`, as the first primary of
    /// [`primaries`](Self::primaries) sees it.
    pub async fn owner_of(&self, slot: u16) -> u16 {
        let asker = lock(&self.topology)
            .primaries
            .iter()
            .min()
            .copied()
            .expect("a primary");
        let mut c = self.patient_conn(asker).await;
        let nodes: String = ::redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut c)
            .await
            .unwrap_or_else(|e| panic!("CLUSTER NODES on {asker}: {e}"));
        parse_nodes(&nodes)
            .into_iter()
            .find(|n| n.master && !n.failing && n.serves(u64::from(slot)))
            .map(|n| n.port)
            .unwrap_or_else(|| panic!("no primary serves slot {slot}:\n{nodes}"))
    }

    /// Step 1 of moving `slot` from the primary on `from` to the one on `to`:
    /// `CLUSTER SETSLOT <slot> IMPORTING <from-id>` on `to`, then `CLUSTER
    /// SETSLOT <slot> MIGRATING <to-id>` on `from`. From here on `from` answers
    /// `ASK` for the slot's keys it no longer holds, and `to` serves them to
    /// clients that say `ASKING` first.
    pub async fn start_slot_migration(&self, slot: u16, from: u16, to: u16) {
        let (from_id, to_id) = (self.node_id(from).await, self.node_id(to).await);
        for (port, state, id) in [(to, "IMPORTING", &from_id), (from, "MIGRATING", &to_id)] {
            let mut c = self.patient_conn(port).await;
            ::redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg(state)
                .arg(id)
                .query_async::<()>(&mut c)
                .await
                .unwrap_or_else(|e| panic!("CLUSTER SETSLOT {slot} {state} on {port}: {e}"));
        }
    }

    /// Step 2, in part: `MIGRATE 127.0.0.1 <to> "" 0 <timeout> KEYS <keys>`
    /// on `from` (keys `from` does not hold are skipped by Redis).
    pub async fn migrate_keys(&self, from: u16, to: u16, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let mut c = self.patient_conn(from).await;
        let reply: ::redis::Value = ::redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(to)
            .arg("")
            .arg(0)
            .arg(MIGRATE_TIMEOUT_MS)
            .arg("KEYS")
            .arg(keys)
            .query_async(&mut c)
            .await
            .unwrap_or_else(|e| panic!("MIGRATE {keys:?} from {from} to {to}: {e}"));
        assert!(
            matches!(reply, ::redis::Value::Okay)
                || matches!(&reply, ::redis::Value::SimpleString(s) if s == "OK" || s == "NOKEY"),
            "MIGRATE {keys:?} from {from} to {to}: {reply:?}"
        );
    }

    /// Step 2, the rest: migrates every key `from` still holds in `slot`
    /// (`CLUSTER GETKEYSINSLOT`, 100 at a time); how many there were.
    pub async fn migrate_remaining_keys(&self, slot: u16, from: u16, to: u16) -> usize {
        let mut moved = 0;
        let deadline = Instant::now() + MOVE_TIMEOUT;
        loop {
            let mut c = self.patient_conn(from).await;
            let keys: Vec<String> = ::redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query_async(&mut c)
                .await
                .unwrap_or_else(|e| panic!("CLUSTER GETKEYSINSLOT {slot} on {from}: {e}"));
            if keys.is_empty() {
                return moved;
            }
            assert!(
                Instant::now() < deadline,
                "slot {slot}'s keys still on {from} after {MOVE_TIMEOUT:?}: {keys:?}"
            );
            self.migrate_keys(from, to, &keys).await;
            moved += keys.len();
        }
    }

    /// Step 3: `CLUSTER SETSLOT <slot> NODE <to-id>` on `to`, on `from`, then on
    /// the other primaries; then waits until every live node sees `to` as the
    /// slot's only owner. `from` must hold none of the slot's keys any more.
    pub async fn finish_slot_migration(&self, slot: u16, from: u16, to: u16) {
        let to_id = self.node_id(to).await;
        let mut order = vec![to, from];
        order.extend(
            lock(&self.topology)
                .primaries
                .iter()
                .filter(|p| **p != to && **p != from),
        );
        for port in order {
            let mut c = self.patient_conn(port).await;
            ::redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(&to_id)
                .query_async::<()>(&mut c)
                .await
                .unwrap_or_else(|e| panic!("CLUSTER SETSLOT {slot} NODE on {port}: {e}"));
        }
        let deadline = Instant::now() + MOVE_TIMEOUT;
        loop {
            let mut last = String::new();
            for p in self.live_ports() {
                let mut c = self.patient_conn(p).await;
                let nodes: String = ::redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut c)
                    .await
                    .unwrap_or_else(|e| panic!("CLUSTER NODES on {p}: {e}"));
                let owners: Vec<u16> = parse_nodes(&nodes)
                    .into_iter()
                    .filter(|n| n.master && n.serves(u64::from(slot)))
                    .map(|n| n.port)
                    .collect();
                if owners != [to] {
                    last = format!("{p} sees slot {slot} served by {owners:?}");
                    break;
                }
            }
            if last.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "slot {slot} not agreed on {MOVE_TIMEOUT:?} after the move to {to}: {last}\n{}",
                self.views().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Moves `slot` and its keys from the primary on `from` to the one on `to`,
    /// all three steps ([`start_slot_migration`](Self::start_slot_migration),
    /// [`migrate_remaining_keys`](Self::migrate_remaining_keys),
    /// [`finish_slot_migration`](Self::finish_slot_migration)); how many keys moved.
    pub async fn migrate_slot(&self, slot: u16, from: u16, to: u16) -> usize {
        self.start_slot_migration(slot, from, to).await;
        let moved = self.migrate_remaining_keys(slot, from, to).await;
        self.finish_slot_migration(slot, from, to).await;
        moved
    }
}

fn node_args(port: u16, dir: &Path, tls: Option<&ClusterTls<'_>>) -> Vec<String> {
    let mut args = base_args(dir);
    let path = |p: &Path| p.to_string_lossy().into_owned();
    match tls {
        None => args.extend(["--port".into(), port.to_string()]),
        Some(t) => args.extend([
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            path(&t.ca.server_cert),
            "--tls-key-file".into(),
            path(&t.ca.server_key),
            "--tls-ca-cert-file".into(),
            path(&t.ca.ca_cert),
            "--tls-cluster".into(),
            "yes".into(),
            "--tls-replication".into(),
            "yes".into(),
            "--tls-auth-clients".into(),
            if t.require_client_cert { "yes" } else { "no" }.into(),
        ]),
    }
    args.extend([
        "--cluster-enabled".into(),
        "yes".into(),
        "--cluster-config-file".into(),
        path(&dir.join("nodes.conf")),
        "--cluster-node-timeout".into(),
        NODE_TIMEOUT_MS.to_string(),
        "--cluster-port".into(),
        (port + BUS_OFFSET).to_string(),
        // A replica syncs at once rather than after the default 5 s delay…
        "--repl-diskless-sync-delay".into(),
        "0".into(),
        // …and may always take over, however stale it thinks it is.
        "--cluster-replica-validity-factor".into(),
        "0".into(),
    ]);
    args
}

async fn cluster_info(c: &mut MultiplexedConnection) -> ::redis::RedisResult<String> {
    ::redis::cmd("CLUSTER").arg("INFO").query_async(c).await
}

async fn info_section(
    c: &mut MultiplexedConnection,
    section: &str,
) -> ::redis::RedisResult<String> {
    ::redis::cmd("INFO").arg(section).query_async(c).await
}

fn summary(cluster_info: &str) -> String {
    [
        "cluster_state",
        "cluster_slots_assigned",
        "cluster_slots_ok",
        "cluster_known_nodes",
    ]
    .iter()
    .map(|k| format!("{k}:{}", field(cluster_info, k).unwrap_or("?")))
    .collect::<Vec<_>>()
    .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_nodes() {
        let text = "e5b4 127.0.0.1:17104@27104 slave e822 0 1796612237547 3 connected\n\
            3140 127.0.0.1:17101@27101,host master - 0 1796612237446 2 connected 5461-10922 [5461->-e822]\n\
            cf6f 127.0.0.1:17100@27100 myself,master,fail? - 0 0 1 connected 0-5460 16383\n";
        let n = parse_nodes(text);
        assert_eq!(n.len(), 3);
        assert_eq!((n[0].port, n[0].master), (17104, false));
        assert_eq!(
            (n[1].port, n[1].slot_count(), n[1].failing),
            (17101, 5462, false)
        );
        assert!(n[2].failing && n[2].serves(16383) && n[2].serves(0) && !n[2].serves(5461));
    }

    #[test]
    fn parses_commandstats() {
        let info = "# Commandstats\r\ncmdstat_get:calls=7,usec=10,usec_per_call=1.43,rejected_calls=0,failed_calls=0\r\n\
            cmdstat_config|resetstat:calls=1,usec=3\r\ncmdstat_set:calls=3,usec=9\r\n";
        let m = parse_commandstats(info);
        assert_eq!(m.get("get"), Some(&7));
        assert_eq!(m.get("config|resetstat"), Some(&1));
        let n: u64 = m
            .iter()
            .filter(|(c, _)| !is_housekeeping(c))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(n, 10);
    }
}
