//! A private Redis for each test.
//!
//! Each [`TestRedis`] is its own `redis-server` on a free loopback port, with no
//! persistence, killed when dropped; tests never share state through the Redis
//! that the machine runs. Without `redis-server` on the PATH, the tests fall back
//! to `AUTHGATE_TEST_REDIS_URL` with a unique key prefix; with neither, they skip
//! loudly, and `AUTHGATE_REQUIRE_REDIS=1` turns that skip into a failure.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;
use ::redis::AsyncCommands;

/// A Redis for one test.
pub struct TestRedis {
    /// The URL to connect to.
    pub url: String,
    /// The key prefix the gateway under test must use.
    pub prefix: String,
    server: Option<Server>,
}

struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn has_redis_server() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn start_server(port: u16, dir: &std::path::Path) -> std::io::Result<Child> {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--dir", &dir.to_string_lossy()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

async fn wait_ready(url: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(client) = ::redis::Client::open(url) {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                if ::redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
                {
                    return true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

impl TestRedis {
    /// A private Redis, or `None` (after saying so loudly) when none can be had.
    pub async fn start() -> Option<Self> {
        let prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
        if has_redis_server() {
            for _ in 0..3 {
                let port = free_port();
                let dir = std::env::temp_dir().join(format!(
                    "authgate-redis-{port}-{}",
                    uuid::Uuid::new_v4().simple()
                ));
                std::fs::create_dir_all(&dir).expect("temp dir");
                let child = start_server(port, &dir).expect("redis-server starts");
                let server = Server { child, port, dir };
                let url = format!("redis://127.0.0.1:{port}");
                if wait_ready(&url, Duration::from_secs(5)).await {
                    return Some(Self {
                        url,
                        prefix,
                        server: Some(server),
                    });
                }
            }
            panic!("redis-server is installed but did not start on a free port three times");
        }
        if let Ok(url) = std::env::var("AUTHGATE_TEST_REDIS_URL") {
            return Some(Self {
                url,
                prefix,
                server: None,
            });
        }
        let msg = "SKIPPED: neither redis-server on PATH nor AUTHGATE_TEST_REDIS_URL; this Redis test did not run";
        if std::env::var("AUTHGATE_REQUIRE_REDIS").is_ok_and(|v| v == "1") {
            panic!("{msg} (AUTHGATE_REQUIRE_REDIS=1 makes that a failure)");
        }
        eprintln!("\n*** {msg} ***\n");
        None
    }

    /// A connection for reading the store back.
    pub async fn conn(&self) -> MultiplexedConnection {
        ::redis::Client::open(self.url.as_str())
            .expect("valid url")
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

    /// Starts the private server again on the same port (empty: no persistence).
    pub async fn restart(&mut self) {
        let s = self
            .server
            .as_mut()
            .expect("only a private server can be restarted");
        s.child = start_server(s.port, &s.dir).expect("redis-server restarts");
        assert!(
            wait_ready(&self.url, Duration::from_secs(5)).await,
            "redis came back"
        );
    }

    /// Whether this is a private server (stop/restart available).
    pub fn is_private(&self) -> bool {
        self.server.is_some()
    }
}
