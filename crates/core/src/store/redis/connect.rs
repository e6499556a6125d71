//! Reaching Redis: one server or a cluster, plain or TLS, with ACL credentials.

use std::path::PathBuf;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::{Client, ClientTlsConfig, TlsCertificates};

use super::clock::ServerClock;
use super::wire::{self, Wire};
use super::{has_expire_conditions, unavailable, Connection, RedisStore};

use crate::store::StoreError;

/// Whether the store talks to one server or to a cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RedisMode {
    /// Ask the server (`INFO cluster`) and follow what it says.
    #[default]
    Auto,
    /// One server (a primary, or a proxy in front of several).
    Standalone,
    /// A Redis Cluster: the URLs are seeds, the rest of the nodes are discovered.
    Cluster,
}

impl std::str::FromStr for RedisMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "standalone" => Ok(Self::Standalone),
            "cluster" => Ok(Self::Cluster),
            other => Err(format!(
                "unknown Redis mode {other:?} (auto, standalone or cluster)"
            )),
        }
    }
}

/// How to reach Redis.
#[derive(Clone, Default)]
pub struct RedisOptions {
    /// One URL (`redis://`, `rediss://`, `unix://`), or a comma-separated list
    /// of a cluster's nodes. ACL credentials go in the URL (`redis://user:password@host`).
    pub url: String,
    /// One server, a cluster, or whichever the server says.
    pub mode: RedisMode,
    /// PEM file of the certificate authorities trusted for `rediss://` (instead
    /// of the system's roots).
    pub ca_cert: Option<PathBuf>,
    /// PEM file of a client certificate to present (with [`RedisOptions::client_key`]).
    pub client_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub client_key: Option<PathBuf>,
    /// Replicas that a write which must survive a failover (the outbox's)
    /// waits for: `None` waits for one when the primaries have replicas, `Some(0)` never waits.
    pub replicas: Option<usize>,
    /// The longest such a write waits for its replicas.
    pub replica_timeout: Duration,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &without_credentials(&self.url))
            .field("mode", &self.mode)
            .field("ca_cert", &self.ca_cert)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key.as_ref().map(|_| "<set>"))
            .field("replicas", &self.replicas)
            .field("replica_timeout", &self.replica_timeout)
            .finish()
    }
}

impl RedisOptions {
    /// Options for `url` with the defaults: mode found out, system roots, one
    /// replica awaited when there are replicas, for at most 100 ms.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            replica_timeout: Duration::from_millis(100),
            ..Self::default()
        }
    }
}

/// `url` with any password replaced, for logs and errors.
pub fn without_credentials(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let one = one.trim();
            match (one.find("://"), one.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    let userinfo = &one[scheme + 3..at];
                    let user = userinfo.split(':').next().unwrap_or_default();
                    let shown = if userinfo.contains(':') {
                        format!("{user}:***")
                    } else {
                        "***".to_owned()
                    };
                    format!("{}{shown}{}", &one[..scheme + 3], &one[at..])
                }
                _ => one.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A failure to connect: a refused password or certificate is a
/// configuration to fix (waiting will not help), the rest may pass.
fn refused(e: redis::RedisError) -> StoreError {
    let text = e.to_string();
    // The client's own checks ("invalid peer certificate: UnknownIssuer"), and
    // the server's refusal of the client's certificate ("received fatal alert:
    // UnknownCA", CertificateRequired, BadCertificate).
    let certificate = [
        "certificate",
        "Certificate",
        "UnknownIssuer",
        "UnknownCA",
        "tls handshake",
    ]
    .iter()
    .any(|m| text.contains(m));
    if e.kind() == redis::ErrorKind::AuthenticationFailed
        || text.contains("WRONGPASS")
        || text.contains("NOAUTH")
        || text.contains("NOPERM")
        || certificate
    {
        config_error(format!("Redis refused the connection: {text}"))
    } else {
        unavailable(e)
    }
}

fn config_error(message: String) -> StoreError {
    StoreError::Config(message)
}

/// The URLs of `options`, checked: one scheme for all, TLS never turned off.
fn urls(options: &RedisOptions) -> Result<Vec<String>, StoreError> {
    let urls: Vec<String> = options
        .url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    let Some(first) = urls.first() else {
        return Err(config_error("the Redis URL is empty".into()));
    };
    let tls = first.starts_with("rediss://");
    for url in &urls {
        let shown = without_credentials(url);
        if !(url.starts_with("redis://")
            || url.starts_with("rediss://")
            || url.starts_with("unix://"))
        {
            return Err(config_error(format!(
                "{shown} is not a redis://, rediss:// or unix:// URL"
            )));
        }
        if url.starts_with("rediss://") != tls {
            return Err(config_error(
                "the Redis URLs mix rediss:// and plain connections; use one scheme for all".into(),
            ));
        }
        // redis-rs reads `#insecure` as "skip certificate checks": never.
        if url.contains('#') {
            return Err(config_error(format!(
                "{shown}: a URL fragment is not accepted (certificate checks cannot be turned off)"
            )));
        }
    }
    let certificates =
        options.ca_cert.is_some() || options.client_cert.is_some() || options.client_key.is_some();
    if certificates && !tls {
        return Err(config_error(
            "AUTHGATE_REDIS_CA_CERT, AUTHGATE_REDIS_CLIENT_CERT and AUTHGATE_REDIS_CLIENT_KEY need a rediss:// URL".into(),
        ));
    }
    if options.client_cert.is_some() != options.client_key.is_some() {
        return Err(config_error(
            "AUTHGATE_REDIS_CLIENT_CERT and AUTHGATE_REDIS_CLIENT_KEY go together".into(),
        ));
    }
    if urls.len() > 1 && options.mode == RedisMode::Standalone {
        return Err(config_error(
            "several Redis URLs name a cluster's nodes, but AUTHGATE_REDIS_MODE is standalone"
                .into(),
        ));
    }
    Ok(urls)
}

fn read_pem(path: &PathBuf, what: &str) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| config_error(format!("{what} {}: {e}", path.display())))
}

/// The certificates to use instead of the defaults, if any were given.
fn certificates(options: &RedisOptions) -> Result<Option<TlsCertificates>, StoreError> {
    if options.ca_cert.is_none() && options.client_cert.is_none() {
        return Ok(None);
    }
    let root_cert = options
        .ca_cert
        .as_ref()
        .map(|p| read_pem(p, "AUTHGATE_REDIS_CA_CERT"))
        .transpose()?;
    let client_tls = match (&options.client_cert, &options.client_key) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: read_pem(cert, "AUTHGATE_REDIS_CLIENT_CERT")?,
            client_key: read_pem(key, "AUTHGATE_REDIS_CLIENT_KEY")?,
        }),
        _ => None,
    };
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

fn client(url: &str, certs: &Option<TlsCertificates>) -> Result<Client, StoreError> {
    let client = match certs {
        Some(certs) => Client::build_with_tls(url, certs.clone()),
        None => Client::open(url),
    };
    client.map_err(|e| config_error(format!("{}: {e}", without_credentials(url))))
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// One command on a fresh connection to one server, for finding out what it is.
async fn ask(client: &Client, cmd: &redis::Cmd) -> Result<String, StoreError> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(refused)?;
    cmd.query_async(&mut conn).await.map_err(refused)
}

/// The value of `field` in an INFO-style text (`field:value` lines).
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// The fewest replicas any primary of a cluster has, from `CLUSTER NODES`.
fn fewest_replicas(nodes: &str) -> usize {
    let mut primaries: Vec<(&str, usize)> = Vec::new();
    let mut replica_of: Vec<&str> = Vec::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(id), Some(flags), Some(master)) = (fields.first(), fields.get(2), fields.get(3))
        else {
            continue;
        };
        if flags.contains("fail") {
            continue;
        }
        if flags.contains("master") && fields.len() > 8 {
            primaries.push((id, 0));
        } else if flags.contains("slave") {
            replica_of.push(master);
        }
    }
    for master in replica_of {
        if let Some(p) = primaries.iter_mut().find(|(id, _)| *id == master) {
            p.1 += 1;
        }
    }
    primaries.iter().map(|(_, n)| *n).min().unwrap_or(0)
}

/// Picks the process's TLS crypto provider when nothing has yet: the
/// dependency tree carries two, and rustls will not choose between them itself.
pub fn ensure_tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may have won the race; either provider is fine then.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

pub(super) async fn open(options: &RedisOptions) -> Result<RedisStore, StoreError> {
    ensure_tls_provider();
    let urls = urls(options)?;
    let certs = certificates(options)?;
    let clients = urls
        .iter()
        .map(|u| client(u, &certs))
        .collect::<Result<Vec<_>, _>>()?;
    let cluster = match options.mode {
        RedisMode::Standalone => false,
        RedisMode::Cluster => true,
        RedisMode::Auto => {
            let mut info = Err(StoreError::Unavailable("no Redis URL".into()));
            for client in &clients {
                info = ask(client, redis::cmd("INFO").arg("cluster")).await;
                if info.is_ok() {
                    break;
                }
            }
            info_field(&info?, "cluster_enabled") == Some("1")
        }
    };
    let wait = |found: usize| match options.replicas {
        Some(0) => None,
        Some(n) => Some((n, options.replica_timeout)),
        None if found > 0 => Some((1, options.replica_timeout)),
        None => None,
    };
    if cluster {
        let mut builder =
            ClusterClientBuilder::new(clients.iter().map(|c| c.get_connection_info().clone()))
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT)
                .retries(4)
                .min_retry_wait(50)
                .max_retry_wait(1_000);
        if let Some(certs) = certs {
            builder = builder.certs(certs);
        }
        let client = builder
            .build()
            .map_err(|e| config_error(format!("Redis Cluster: {e}")))?;
        let mut conn = client.get_async_connection().await.map_err(refused)?;
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut conn)
            .await
            .map_err(refused)?;
        Ok(RedisStore {
            conn: Connection::Cluster(conn),
            replicate: wait(fewest_replicas(&nodes)),
            node: clients[0].get_connection_info().clone(),
            cache: None,
            // A cluster's nodes may run different versions during an upgrade,
            // and its pipelines go as transactions, which an unknown command
            // option would abort whole: the script everywhere.
            plain_index: None,
            index_adds: Default::default(),
            wire: None,
        })
    } else {
        let [client] = <[Client; 1]>::try_from(clients).map_err(|_| {
            config_error("several Redis URLs, but the server is not a cluster".into())
        })?;
        // The default sections: the server's version and its replication.
        let info = ask(&client, &redis::cmd("INFO")).await?;
        let plain = info_field(&info, "redis_version").is_some_and(has_expire_conditions);
        let replicas = info_field(&info, "connected_slaves")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let node = client.get_connection_info().clone();
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(refused)?;
        let plain_index = match plain {
            true => Some(ServerClock::start(&conn).await.map_err(refused)?),
            false => None,
        };
        let wire = match wire::can_open(&node) {
            true => Some(Wire::open(node.clone()).await.map_err(refused)?),
            false => None,
        };
        Ok(RedisStore {
            conn: Connection::Server(conn),
            replicate: wait(replicas),
            node,
            cache: None,
            plain_index,
            index_adds: Default::default(),
            wire,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_a_log() {
        assert_eq!(
            without_credentials("redis://app:s3cret@h:6379/0,rediss://:pw@h2"),
            "redis://app:***@h:6379/0,rediss://:***@h2"
        );
        assert_eq!(without_credentials("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn urls_are_checked_before_anything_connects() {
        let bad = |url: &str, mode: RedisMode| {
            let mut o = RedisOptions::new(url);
            o.mode = mode;
            urls(&o).err().map(|e| e.to_string()).unwrap_or_default()
        };
        assert!(bad("rediss://h:1/#insecure", RedisMode::Auto).contains("cannot be turned off"));
        assert!(bad("redis://a:1,rediss://b:2", RedisMode::Auto).contains("mix"));
        assert!(bad("http://a:1", RedisMode::Auto).contains("not a redis"));
        assert!(bad("redis://a:1,redis://b:2", RedisMode::Standalone).contains("standalone"));
        assert!(bad(" , ", RedisMode::Auto).contains("empty"));
        let mut o = RedisOptions::new("redis://a:1");
        o.ca_cert = Some("/ca.pem".into());
        assert!(urls(&o).is_err(), "a CA with a plain URL is a mistake");
        let o = RedisOptions::new("redis://a:1, redis://b:2");
        assert_eq!(
            urls(&o).ok(),
            Some(vec!["redis://a:1".into(), "redis://b:2".into()])
        );
    }

    #[test]
    fn index_adds_go_as_plain_commands_from_redis_7() {
        for (version, plain) in [
            ("6.2.14", false),
            ("7.0.15", true),
            ("7.4.2", true),
            ("8.0.0", true),
            ("", false),
            ("unknown", false),
        ] {
            assert_eq!(has_expire_conditions(version), plain, "{version}");
        }
    }

    #[test]
    fn the_fewest_replicas_of_any_primary_is_what_a_write_can_wait_for() {
        let nodes = "\
a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922
c 127.0.0.1:7002@17002 master - 0 0 3 connected 10923-16383
d 127.0.0.1:7003@17003 slave a 0 0 1 connected
e 127.0.0.1:7004@17004 slave b 0 0 2 connected
f 127.0.0.1:7005@17005 slave c 0 0 3 connected
";
        assert_eq!(fewest_replicas(nodes), 1);
        let one_lost = nodes.replace("slave c", "slave,fail c");
        assert_eq!(fewest_replicas(&one_lost), 0);
    }
}
