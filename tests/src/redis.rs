//! A private Redis for each test.
//!
//! Each [`TestRedis`] is its own `redis-server` on a free loopback port, with no
//! persistence, killed when dropped; tests never share state through the Redis
//! that the machine runs. Without `redis-server` on the PATH, the tests fall back
//! to `AUTHGATE_TEST_REDIS_URL` with a unique key prefix; with neither, they skip
//! loudly, and `AUTHGATE_REQUIRE_REDIS=1` turns that skip into a failure.
//!
//! Variants that only a private server can provide (no `AUTHGATE_TEST_REDIS_URL`
//! fallback; they skip or fail the same way without `redis-server`):
//!
//! - [`TestRedis::start_tls`]: TLS only (`rediss://`), certificates from a [`TestCa`].
//! - [`TestRedis::start_acl`] / [`TestRedis::start_with_args`]: an ACL user, or any
//!   extra `redis-server` options.
//! - [`TestCluster`]: a Redis Cluster of 3 primaries and 3 replicas, plain or TLS,
//!   with failover and per-primary command counts.
//!
//! Each server logs to `redis.log` in its temp dir; start-up failures quote it.

mod ca;
mod cluster;

pub use ca::TestCa;
pub use cluster::TestCluster;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncCommands, AsyncConnectionConfig, Client, TlsCertificates};

/// A Redis for one test.
pub struct TestRedis {
    /// The URL to connect to (`rediss://` for [`TestRedis::start_tls`], with
    /// `user:password@` for [`TestRedis::start_acl`]).
    pub url: String,
    /// The key prefix the gateway under test must use.
    pub prefix: String,
    server: Option<Server>,
    /// Client-side TLS settings for a TLS server: trusts the CA and presents the
    /// CA's client certificate.
    tls: Option<TlsCertificates>,
}

struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
    /// The full `redis-server` command line, for [`TestRedis::restart`].
    args: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Picks rustls' crypto provider for the process (the store's own choice), so
/// that the helpers' TLS clients and the store agree.
pub fn install_crypto_provider() {
    authgate_core::store::ensure_tls_provider();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub(crate) fn has_redis_server() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub(crate) fn require_redis() -> bool {
    std::env::var("AUTHGATE_REQUIRE_REDIS").is_ok_and(|v| v == "1")
}

/// Skips loudly (returns `None`), or panics under `AUTHGATE_REQUIRE_REDIS=1`.
pub(crate) fn unavailable<T>(what: &str, missing: &str) -> Option<T> {
    let msg = format!("SKIPPED: no {missing}; {what} did not run");
    if require_redis() {
        panic!("{msg} (AUTHGATE_REQUIRE_REDIS=1 makes that a failure)");
    }
    eprintln!("\n*** {msg} ***\n");
    None
}

/// Starts `redis-server` with `args`, logging to `dir/redis.log`.
pub(crate) fn spawn_redis(args: &[String], dir: &Path) -> std::io::Result<Child> {
    Command::new("redis-server")
        .args(args)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// The last lines of a server's log, for failure messages.
pub(crate) fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// The arguments every private server gets: loopback only, no persistence.
pub(crate) fn base_args(dir: &Path) -> Vec<String> {
    [
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir.to_string_lossy(),
    ]
    .map(String::from)
    .to_vec()
}

/// A client for `url`, with `tls` when given (a `rediss://` URL).
pub(crate) fn client_for(url: &str, tls: Option<&TlsCertificates>) -> ::redis::RedisResult<Client> {
    match tls {
        Some(certs) => {
            install_crypto_provider();
            Client::build_with_tls(url, certs.clone())
        }
        None => Client::open(url),
    }
}

/// Connection settings for the harness's own short-lived connections.
pub(crate) fn quick_config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)))
}

async fn pings(client: &Client) -> bool {
    match client
        .get_multiplexed_async_connection_with_config(&quick_config())
        .await
    {
        Ok(mut c) => ::redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .is_ok(),
        Err(_) => false,
    }
}

/// Waits until the server answers PING, or it exits, or `within` passes.
pub(crate) async fn wait_ready(
    client: &Client,
    child: &mut Child,
    dir: &Path,
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        if pings(client).await {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "redis-server exited ({status}); log:\n{}",
                log_tail(dir)
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "redis-server did not answer PING within {within:?}; log:\n{}",
                log_tail(dir)
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for URL userinfo.
fn userinfo_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How to start a private server.
#[derive(Default)]
struct Launch {
    /// `(server-side args, client-side TLS)` for a TLS-only server.
    tls: Option<(Vec<String>, TlsCertificates)>,
    /// `user:password@`, already encoded.
    userinfo: String,
    extra: Vec<String>,
}

impl Launch {
    fn args(&self, port: u16, dir: &Path) -> Vec<String> {
        let mut args = base_args(dir);
        match &self.tls {
            Some((tls_args, _)) => {
                args.extend([
                    "--port".into(),
                    "0".into(),
                    "--tls-port".into(),
                    port.to_string(),
                ]);
                args.extend(tls_args.iter().cloned());
            }
            None => args.extend(["--port".into(), port.to_string()]),
        }
        args.extend(self.extra.iter().cloned());
        args
    }

    fn url(&self, port: u16) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://{}127.0.0.1:{port}", self.userinfo)
    }
}

impl TestRedis {
    /// A private Redis, or `None` (after saying so loudly) when none can be had.
    pub async fn start() -> Option<Self> {
        if has_redis_server() {
            return Some(Self::start_private(Launch::default()).await);
        }
        if let Ok(url) = std::env::var("AUTHGATE_TEST_REDIS_URL") {
            return Some(Self {
                url,
                prefix: new_prefix(),
                server: None,
                tls: None,
            });
        }
        unavailable(
            "this Redis test",
            "redis-server on PATH nor AUTHGATE_TEST_REDIS_URL",
        )
    }

    /// A private TLS-only Redis (`--port 0 --tls-port <port>`, URL
    /// `rediss://127.0.0.1:<port>`) serving `ca`'s server certificate, trusting `ca`
    /// for client certificates, and demanding one (`--tls-auth-clients yes`) when
    /// `require_client_cert`. [`TestRedis::conn`] trusts `ca` and presents its
    /// client certificate. `None` (loudly) without `redis-server`.
    pub async fn start_tls(ca: &TestCa, require_client_cert: bool) -> Option<Self> {
        if !has_redis_server() {
            return unavailable("this TLS Redis test", "redis-server on PATH");
        }
        install_crypto_provider();
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let server_args = vec![
            "--tls-cert-file".into(),
            path(&ca.server_cert),
            "--tls-key-file".into(),
            path(&ca.server_key),
            "--tls-ca-cert-file".into(),
            path(&ca.ca_cert),
            "--tls-auth-clients".into(),
            if require_client_cert { "yes" } else { "no" }.into(),
        ];
        Some(
            Self::start_private(Launch {
                tls: Some((server_args, ca.tls_certs(true))),
                ..Launch::default()
            })
            .await,
        )
    }

    /// A private Redis with one ACL user, `user on ><password> ~* &* +@all`, and
    /// the default user off; the URL is `redis://<user>:<password>@127.0.0.1:<port>`
    /// (percent-encoded). The password must not contain whitespace or quotes.
    /// `None` (loudly) without `redis-server`.
    pub async fn start_acl(user: &str, password: &str) -> Option<Self> {
        assert!(
            !password.is_empty()
                && !password.contains(|c: char| c.is_whitespace() || c == '"' || c == '\''),
            "start_acl: the password must be non-empty without whitespace or quotes"
        );
        if !has_redis_server() {
            return unavailable("this ACL Redis test", "redis-server on PATH");
        }
        let extra = [
            "--user",
            user,
            "on",
            &format!(">{password}"),
            "~*",
            "&*",
            "+@all",
            "--user",
            "default",
            "off",
        ]
        .map(String::from)
        .to_vec();
        Some(
            Self::start_private(Launch {
                userinfo: format!("{}:{}@", userinfo_encode(user), userinfo_encode(password)),
                extra,
                ..Launch::default()
            })
            .await,
        )
    }

    /// A private plain Redis started with `args` appended to the usual command
    /// line (`--bind 127.0.0.1 --save '' --appendonly no --dir … --port …`), e.g.
    /// `&["--maxmemory", "1mb"]`. The URL carries no credentials: if `args` make
    /// the default user require a password, the harness cannot check readiness,
    /// so use [`TestRedis::start_acl`] for that. `None` (loudly) without `redis-server`.
    pub async fn start_with_args(args: &[&str]) -> Option<Self> {
        if !has_redis_server() {
            return unavailable("this Redis test", "redis-server on PATH");
        }
        Some(
            Self::start_private(Launch {
                extra: args.iter().map(|a| a.to_string()).collect(),
                ..Launch::default()
            })
            .await,
        )
    }

    /// A private plain Redis on `port`, chosen by the caller (say, the port a
    /// gateway was configured with before anything listened there). One try:
    /// panics, quoting the server's log, if it does not answer PING within 5 s
    /// (the port was taken meanwhile, say). `None` (loudly) without `redis-server`.
    pub async fn start_on(port: u16) -> Option<Self> {
        if !has_redis_server() {
            return unavailable("this Redis test", "redis-server on PATH");
        }
        match Self::launch_at(&Launch::default(), port).await {
            Ok(redis) => Some(redis),
            Err(e) => panic!("redis-server on port {port}: {e}"),
        }
    }

    async fn start_private(launch: Launch) -> Self {
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            match Self::launch_at(&launch, port).await {
                Ok(redis) => return redis,
                Err(e) => failures.push(format!("port {port}: {e}")),
            }
        }
        panic!(
            "redis-server is installed but did not start on a free port three times:\n{}",
            failures.join("\n")
        );
    }

    /// One server as `launch` says on `port`, answering PING within 5 s.
    async fn launch_at(launch: &Launch, port: u16) -> Result<Self, String> {
        let tls = launch.tls.as_ref().map(|(_, certs)| certs.clone());
        let dir = std::env::temp_dir().join(format!(
            "authgate-redis-{port}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let args = launch.args(port, &dir);
        let child = spawn_redis(&args, &dir).expect("redis-server starts");
        let mut server = Server {
            child,
            port,
            dir,
            args,
        };
        let url = launch.url(port);
        let client = client_for(&url, tls.as_ref()).expect("valid url");
        wait_ready(
            &client,
            &mut server.child,
            &server.dir,
            Duration::from_secs(5),
        )
        .await?;
        Ok(Self {
            url,
            prefix: new_prefix(),
            server: Some(server),
            tls,
        })
    }

    /// A client for this Redis (with the TLS settings of [`TestRedis::start_tls`]).
    pub fn client(&self) -> Client {
        client_for(&self.url, self.tls.as_ref()).expect("valid url")
    }

    /// The port of the private server, if this is one.
    pub fn port(&self) -> Option<u16> {
        self.server.as_ref().map(|s| s.port)
    }

    /// A connection for reading the store back.
    pub async fn conn(&self) -> MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }

    /// All keys under this test's prefix.
    pub async fn keys(&self) -> Vec<String> {
        let mut c = self.conn().await;
        let mut iter: ::redis::AsyncIter<String> = c
            .scan_match(format!("{}*", self.prefix))
            .await
            .expect("scan");
        let mut out = Vec::new();
        while let Some(k) = futures::StreamExt::next(&mut iter).await {
            out.push(k.expect("key"));
        }
        out
    }

    /// Keys under this test's prefix whose name ends with `suffix`.
    pub async fn keys_ending(&self, suffix: &str) -> Vec<String> {
        self.keys()
            .await
            .into_iter()
            .filter(|k| k.ends_with(suffix))
            .collect()
    }

    /// Every key and every value under this test's prefix, as one text (strings,
    /// hash fields and values, set members), for "no secret in clear" checks.
    pub async fn dump(&self) -> String {
        let mut c = self.conn().await;
        let mut out = String::new();
        let mut keys = self.keys().await;
        keys.sort();
        for key in keys {
            out.push_str(&key);
            out.push('\n');
            let kind: String = ::redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut c)
                .await
                .expect("type");
            match kind.as_str() {
                "string" => {
                    let v: Vec<u8> = c.get(&key).await.expect("get");
                    out.push_str(&String::from_utf8_lossy(&v));
                }
                "hash" => {
                    let mut v: Vec<(Vec<u8>, Vec<u8>)> = c.hgetall(&key).await.expect("hgetall");
                    v.sort();
                    for (f, v) in v {
                        out.push_str(&String::from_utf8_lossy(&f));
                        out.push('=');
                        out.push_str(&String::from_utf8_lossy(&v));
                        out.push('\n');
                    }
                }
                "set" => {
                    let mut v: Vec<Vec<u8>> = c.smembers(&key).await.expect("smembers");
                    v.sort();
                    for m in v {
                        out.push_str(&String::from_utf8_lossy(&m));
                        out.push('\n');
                    }
                }
                other => out.push_str(&format!("<{other}>")),
            }
            out.push('\n');
        }
        out
    }

    /// Remaining lifetime of a key in milliseconds (-2 absent, -1 no TTL).
    pub async fn pttl(&self, key: &str) -> i64 {
        let mut c = self.conn().await;
        c.pttl(key).await.expect("pttl")
    }

    /// Stops the private server (the port stays reserved for [`TestRedis::restart`]).
    pub fn stop(&mut self) {
        let s = self
            .server
            .as_mut()
            .expect("only a private server can be stopped");
        let _ = s.child.kill();
        let _ = s.child.wait();
    }

    /// Starts the private server again on the same port, with the same options
    /// (empty: no persistence).
    pub async fn restart(&mut self) {
        let client = self.client();
        let s = self
            .server
            .as_mut()
            .expect("only a private server can be restarted");
        s.child = spawn_redis(&s.args, &s.dir).expect("redis-server restarts");
        if let Err(e) = wait_ready(&client, &mut s.child, &s.dir, Duration::from_secs(5)).await {
            panic!("redis did not come back: {e}");
        }
    }

    /// Freezes the private server (SIGSTOP): it reads nothing and answers
    /// nothing until [`TestRedis::resume`], as a stalled server would; what
    /// clients send piles up in the sockets' buffers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a server frozen by [`TestRedis::pause`] go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let s = self
            .server
            .as_ref()
            .expect("only a private server can be paused");
        let sent = std::process::Command::new("kill")
            .arg(signal)
            .arg(s.child.id().to_string())
            .status()
            .is_ok_and(|st| st.success());
        assert!(sent, "kill {signal} redis-server");
    }

    /// Whether this is a private server (stop/restart available).
    pub fn is_private(&self) -> bool {
        self.server.is_some()
    }
}

fn new_prefix() -> String {
    format!("t{}:", uuid::Uuid::new_v4().simple())
}
