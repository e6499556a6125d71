//! Configuration: a TOML file, then `AUTHGATE_*` environment variables, which win.
//!
//! Every setting has a default that runs the gateway on the embedded store on
//! 127.0.0.1:8080. Secrets are [`SecretString`]s, so they never print.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use authgate_core::limits::{Limit, Limits};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Redis URL; `None` runs on the embedded in-memory store.
    pub redis_url: Option<String>,
    /// Prefix of every key in Redis (lets several deployments share one server).
    pub redis_prefix: String,
    /// PEM certificate chain; with `tls_key`, the gateway serves HTTPS itself.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// The API client's id (also the implicit grant's).
    pub client_id: String,
    /// The API client's secret; generated and shared through the store when unset.
    pub client_secret: Option<SecretString>,
    /// Root secret for token signatures, login keys and sealing; generated when unset.
    pub token_secret: Option<SecretString>,
    /// Lifetime of one-time login keys.
    pub login_key_ttl: Duration,
    /// Lifetime of one-time password codes.
    pub otp_ttl: Duration,
    /// Lifetime of access tokens.
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_token_ttl: Duration,
    /// Lifetime of API client tokens.
    pub client_token_ttl: Duration,
    /// Answer key requests for unknown users with 404 instead of a decoy key.
    pub reveal_unknown_users: bool,
    /// Shared rate limits.
    pub limits: Limits,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// SMTP server for email integrations.
    pub smtp_url: Option<SecretString>,
    /// Default sender of emails.
    pub email_from: Option<String>,
    /// A directory of email templates overriding the built-in ones.
    pub email_templates: Option<PathBuf>,
    /// Log format: `text` or `json`.
    pub log_format: String,
    /// Tries per event and integration before a delivery is abandoned.
    pub webhook_max_attempts: u32,
    /// Wait before the second delivery try (doubles each time, up to a minute).
    pub webhook_retry_base: Duration,
    /// Run this replica's delivery worker.
    pub delivery_worker: bool,
    /// How long a delivery may stay unacknowledged before another replica takes it over.
    pub delivery_claim_after: Duration,
    /// Browser origins that may call the API (CORS); empty sends no CORS headers.
    pub cors_allowed_origins: Vec<String>,
    /// Let those origins send cookies and HTTP authentication (credentials mode).
    pub cors_allow_credentials: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            redis_url: None,
            redis_prefix: "authgate:".into(),
            tls_cert: None,
            tls_key: None,
            client_id: "authgate".into(),
            client_secret: None,
            token_secret: None,
            login_key_ttl: Duration::from_secs(300),
            otp_ttl: Duration::from_secs(600),
            access_token_ttl: Duration::from_secs(48 * 3600),
            refresh_token_ttl: Duration::from_secs(30 * 86400),
            client_token_ttl: Duration::from_secs(3600),
            reveal_unknown_users: false,
            limits: Limits::default(),
            trusted_proxies: Vec::new(),
            max_body_bytes: 64 * 1024,
            smtp_url: None,
            email_from: None,
            email_templates: None,
            log_format: "text".into(),
            webhook_max_attempts: 20,
            webhook_retry_base: Duration::from_secs(1),
            delivery_worker: true,
            delivery_claim_after: Duration::from_secs(30),
            cors_allowed_origins: Vec::new(),
            cors_allow_credentials: false,
        }
    }
}

/// A setting that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these settings.
    #[error("invalid config file {path}: {source}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
    /// A value is malformed.
    #[error("invalid {name}: {reason}")]
    Invalid {
        /// The setting's variable name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The file's shape: the same names as the variables, lowercase, without the prefix.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    redis_url: Option<String>,
    redis_prefix: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    client_id: Option<String>,
    client_secret: Option<String>,
    token_secret: Option<String>,
    login_key_ttl_secs: Option<u64>,
    otp_ttl_secs: Option<u64>,
    access_token_ttl_secs: Option<u64>,
    refresh_token_ttl_secs: Option<u64>,
    client_token_ttl_secs: Option<u64>,
    reveal_unknown_users: Option<bool>,
    delivery_worker: Option<bool>,
    limit_requests_per_user: Option<String>,
    limit_guesses_per_user: Option<String>,
    limit_per_ip: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    max_body_bytes: Option<usize>,
    smtp_url: Option<String>,
    email_from: Option<String>,
    email_templates: Option<PathBuf>,
    log_format: Option<String>,
    webhook_max_attempts: Option<u32>,
    webhook_retry_base_ms: Option<u64>,
    cors_allowed_origins: Option<Vec<String>>,
    cors_allow_credentials: Option<bool>,
}

fn invalid(name: &str, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_owned(),
        reason: reason.to_string(),
    }
}

/// Every variable the gateway reads, with its default and meaning (shown by `authgate serve --help`).
pub const VARIABLES: &[(&str, &str, &str)] = &[
    ("AUTHGATE_BIND", "127.0.0.1:8080", "address to listen on"),
    (
        "AUTHGATE_REDIS_URL",
        "(unset: memory)",
        "Redis URL; unset runs on the embedded store",
    ),
    (
        "AUTHGATE_REDIS_PREFIX",
        "authgate:",
        "prefix of every Redis key",
    ),
    (
        "AUTHGATE_TLS_CERT",
        "(unset)",
        "PEM certificate chain; with the key, serve HTTPS and wss://",
    ),
    ("AUTHGATE_TLS_KEY", "(unset)", "PEM private key"),
    (
        "AUTHGATE_CLIENT_ID",
        "authgate",
        "API client id (also for the implicit grant)",
    ),
    ("AUTHGATE_CLIENT_SECRET", "(generated)", "API client secret"),
    (
        "AUTHGATE_TOKEN_SECRET",
        "(generated)",
        "root secret for tokens, login keys and sealing",
    ),
    (
        "AUTHGATE_LOGIN_KEY_TTL_SECS",
        "300",
        "lifetime of one-time login keys",
    ),
    (
        "AUTHGATE_OTP_TTL_SECS",
        "600",
        "lifetime of one-time password codes",
    ),
    (
        "AUTHGATE_ACCESS_TOKEN_TTL_SECS",
        "172800",
        "lifetime of access tokens",
    ),
    (
        "AUTHGATE_REFRESH_TOKEN_TTL_SECS",
        "2592000",
        "lifetime of refresh tokens",
    ),
    (
        "AUTHGATE_CLIENT_TOKEN_TTL_SECS",
        "3600",
        "lifetime of API client tokens",
    ),
    (
        "AUTHGATE_REVEAL_UNKNOWN_USERS",
        "false",
        "404 for unknown users' key requests",
    ),
    (
        "AUTHGATE_LIMIT_REQUESTS_PER_USER",
        "20/10m",
        "key and code requests per username",
    ),
    (
        "AUTHGATE_LIMIT_GUESSES_PER_USER",
        "10/15m",
        "wrong hashes, passwords and codes per username",
    ),
    (
        "AUTHGATE_LIMIT_PER_IP",
        "600/1m",
        "login-related requests per client address",
    ),
    (
        "AUTHGATE_TRUSTED_PROXIES",
        "(none)",
        "comma-separated peers whose X-Forwarded-For is believed",
    ),
    (
        "AUTHGATE_MAX_BODY_BYTES",
        "65536",
        "largest request body (larger: 413)",
    ),
    (
        "AUTHGATE_SMTP_URL",
        "(unset)",
        "SMTP server for email integrations",
    ),
    ("AUTHGATE_EMAIL_FROM", "(unset)", "default sender of emails"),
    ("AUTHGATE_LOG_FORMAT", "text", "text or json"),
    (
        "AUTHGATE_LOG",
        "info",
        "log filter (tracing EnvFilter syntax, e.g. debug or authgate=debug)",
    ),
    (
        "AUTHGATE_CONFIG",
        "(unset)",
        "a TOML config file (same as --config)",
    ),
    (
        "AUTHGATE_DELIVERY_WORKER",
        "true",
        "run a delivery worker in this replica (false: API only)",
    ),
    (
        "AUTHGATE_WEBHOOK_MAX_ATTEMPTS",
        "20",
        "delivery tries per event and integration",
    ),
    (
        "AUTHGATE_WEBHOOK_RETRY_BASE_MS",
        "1000",
        "wait before the second try; doubles, capped at 60 s",
    ),
    (
        "AUTHGATE_EMAIL_TEMPLATES",
        "(unset)",
        "a directory of email templates overriding the built-in ones",
    ),
    (
        "AUTHGATE_CORS_ALLOWED_ORIGINS",
        "(unset: no CORS)",
        "comma-separated exact browser origins that may call the API",
    ),
    (
        "AUTHGATE_CORS_ALLOW_CREDENTIALS",
        "false",
        "let those origins send cookies and HTTP authentication",
    ),
];

impl Config {
    /// Reads the file (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, |name| std::env::var(name).ok())
    }

    /// Reads the file (if any), then variables from `env`.
    pub fn load_from(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let parsed = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Toml {
                    path: path.to_owned(),
                    source,
                })?
            }
            None => FileConfig::default(),
        };
        let mut c = Config::default();
        let get = |var: &str, file: Option<String>| env(var).filter(|v| !v.is_empty()).or(file);
        let secs =
            |var: &str, file: Option<u64>, default: Duration| -> Result<Duration, ConfigError> {
                match env(var).filter(|v| !v.is_empty()) {
                    Some(v) => v
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .map(Duration::from_secs)
                        .ok_or_else(|| invalid(var, "expected a positive number of seconds")),
                    None => Ok(file.map(Duration::from_secs).unwrap_or(default)),
                }
            };
        if let Some(b) = get("AUTHGATE_BIND", parsed.bind) {
            c.bind = b.parse().map_err(|e| invalid("AUTHGATE_BIND", e))?;
        }
        c.redis_url = get("AUTHGATE_REDIS_URL", parsed.redis_url);
        if let Some(p) = get("AUTHGATE_REDIS_PREFIX", parsed.redis_prefix) {
            c.redis_prefix = p;
        }
        c.tls_cert = get("AUTHGATE_TLS_CERT", None)
            .map(PathBuf::from)
            .or(parsed.tls_cert);
        c.tls_key = get("AUTHGATE_TLS_KEY", None)
            .map(PathBuf::from)
            .or(parsed.tls_key);
        if c.tls_cert.is_some() != c.tls_key.is_some() {
            return Err(invalid(
                "AUTHGATE_TLS_CERT",
                "set both AUTHGATE_TLS_CERT and AUTHGATE_TLS_KEY, or neither",
            ));
        }
        if let Some(id) = get("AUTHGATE_CLIENT_ID", parsed.client_id) {
            c.client_id = id;
        }
        c.client_secret =
            get("AUTHGATE_CLIENT_SECRET", parsed.client_secret).map(SecretString::from);
        c.token_secret = get("AUTHGATE_TOKEN_SECRET", parsed.token_secret).map(SecretString::from);
        if c.client_secret
            .as_ref()
            .is_some_and(|s| s.expose_secret().len() < 12)
        {
            return Err(invalid(
                "AUTHGATE_CLIENT_SECRET",
                "must be at least 12 characters",
            ));
        }
        if c.token_secret
            .as_ref()
            .is_some_and(|s| s.expose_secret().len() < 32)
        {
            return Err(invalid(
                "AUTHGATE_TOKEN_SECRET",
                "must be at least 32 characters (e.g. openssl rand -base64 32)",
            ));
        }
        c.login_key_ttl = secs(
            "AUTHGATE_LOGIN_KEY_TTL_SECS",
            parsed.login_key_ttl_secs,
            c.login_key_ttl,
        )?;
        c.otp_ttl = secs("AUTHGATE_OTP_TTL_SECS", parsed.otp_ttl_secs, c.otp_ttl)?;
        c.access_token_ttl = secs(
            "AUTHGATE_ACCESS_TOKEN_TTL_SECS",
            parsed.access_token_ttl_secs,
            c.access_token_ttl,
        )?;
        c.refresh_token_ttl = secs(
            "AUTHGATE_REFRESH_TOKEN_TTL_SECS",
            parsed.refresh_token_ttl_secs,
            c.refresh_token_ttl,
        )?;
        c.client_token_ttl = secs(
            "AUTHGATE_CLIENT_TOKEN_TTL_SECS",
            parsed.client_token_ttl_secs,
            c.client_token_ttl,
        )?;
        let flag = |var: &str, file: Option<bool>, default: bool| -> Result<bool, ConfigError> {
            match env(var).filter(|v| !v.is_empty()) {
                Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => Ok(true),
                    "0" | "false" | "no" | "off" => Ok(false),
                    _ => Err(invalid(var, "expected true or false")),
                },
                None => Ok(file.unwrap_or(default)),
            }
        };
        c.reveal_unknown_users = flag(
            "AUTHGATE_REVEAL_UNKNOWN_USERS",
            parsed.reveal_unknown_users,
            c.reveal_unknown_users,
        )?;
        c.delivery_worker = flag(
            "AUTHGATE_DELIVERY_WORKER",
            parsed.delivery_worker,
            c.delivery_worker,
        )?;
        c.cors_allow_credentials = flag(
            "AUTHGATE_CORS_ALLOW_CREDENTIALS",
            parsed.cors_allow_credentials,
            c.cors_allow_credentials,
        )?;
        let origins = match env("AUTHGATE_CORS_ALLOWED_ORIGINS").filter(|v| !v.is_empty()) {
            Some(v) => v.split(',').map(str::to_owned).collect(),
            None => parsed.cors_allowed_origins.unwrap_or_default(),
        };
        c.cors_allowed_origins = origins
            .iter()
            .filter(|o| !o.trim().is_empty())
            .map(|o| {
                crate::cors::normalise_origin(o)
                    .map_err(|e| invalid("AUTHGATE_CORS_ALLOWED_ORIGINS", e))
            })
            .collect::<Result<_, _>>()?;
        let limit =
            |var: &str, file: Option<String>, default: Limit| -> Result<Limit, ConfigError> {
                match get(var, file) {
                    Some(v) => v.parse().map_err(|e| invalid(var, e)),
                    None => Ok(default),
                }
            };
        c.limits = Limits {
            requests_per_user: limit(
                "AUTHGATE_LIMIT_REQUESTS_PER_USER",
                parsed.limit_requests_per_user,
                c.limits.requests_per_user,
            )?,
            guesses_per_user: limit(
                "AUTHGATE_LIMIT_GUESSES_PER_USER",
                parsed.limit_guesses_per_user,
                c.limits.guesses_per_user,
            )?,
            per_ip: limit(
                "AUTHGATE_LIMIT_PER_IP",
                parsed.limit_per_ip,
                c.limits.per_ip,
            )?,
        };
        let proxies = match env("AUTHGATE_TRUSTED_PROXIES").filter(|v| !v.is_empty()) {
            Some(v) => v
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            None => parsed.trusted_proxies.unwrap_or_default(),
        };
        c.trusted_proxies = proxies
            .iter()
            .map(|p| {
                p.parse()
                    .map_err(|e| invalid("AUTHGATE_TRUSTED_PROXIES", format!("{p}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        if let Some(v) = env("AUTHGATE_MAX_BODY_BYTES").filter(|v| !v.is_empty()) {
            c.max_body_bytes = v
                .trim()
                .parse()
                .ok()
                .filter(|n| *n >= 1024)
                .ok_or_else(|| {
                    invalid(
                        "AUTHGATE_MAX_BODY_BYTES",
                        "expected a number of bytes, at least 1024",
                    )
                })?;
        } else if let Some(v) = parsed.max_body_bytes {
            c.max_body_bytes = v.max(1024);
        }
        c.smtp_url = get("AUTHGATE_SMTP_URL", parsed.smtp_url).map(SecretString::from);
        c.email_from = get("AUTHGATE_EMAIL_FROM", parsed.email_from);
        c.email_templates = get("AUTHGATE_EMAIL_TEMPLATES", None)
            .map(PathBuf::from)
            .or(parsed.email_templates);
        if let Some(v) = env("AUTHGATE_WEBHOOK_MAX_ATTEMPTS").filter(|v| !v.is_empty()) {
            c.webhook_max_attempts = v
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| invalid("AUTHGATE_WEBHOOK_MAX_ATTEMPTS", "expected 1 to 100"))?;
        } else if let Some(v) = parsed.webhook_max_attempts {
            c.webhook_max_attempts = v.clamp(1, 100);
        }
        if let Some(v) = env("AUTHGATE_WEBHOOK_RETRY_BASE_MS").filter(|v| !v.is_empty()) {
            c.webhook_retry_base = v
                .trim()
                .parse()
                .ok()
                .filter(|n| (10..=600_000).contains(n))
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    invalid(
                        "AUTHGATE_WEBHOOK_RETRY_BASE_MS",
                        "expected 10 to 600000 milliseconds",
                    )
                })?;
        } else if let Some(v) = parsed.webhook_retry_base_ms {
            c.webhook_retry_base = Duration::from_millis(v.clamp(10, 600_000));
        }
        if let Some(f) = get("AUTHGATE_LOG_FORMAT", parsed.log_format) {
            if f != "text" && f != "json" {
                return Err(invalid("AUTHGATE_LOG_FORMAT", "expected text or json"));
            }
            c.log_format = f;
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_match_the_documented_values() -> Result<(), ConfigError> {
        let c = Config::load_from(None, env(&[]))?;
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert!(c.redis_url.is_none());
        assert_eq!(c.login_key_ttl, Duration::from_secs(300));
        assert_eq!(c.otp_ttl, Duration::from_secs(600));
        assert_eq!(c.limits, Limits::default());
        assert!(!c.reveal_unknown_users);
        assert!(c.delivery_worker);
        let api_only = Config::load_from(None, env(&[("AUTHGATE_DELIVERY_WORKER", "off")]))?;
        assert!(!api_only.delivery_worker);
        assert!(c.cors_allowed_origins.is_empty());
        assert!(!c.cors_allow_credentials);
        Ok(())
    }

    #[test]
    fn cors_origins_are_read_as_exact_origins() -> Result<(), ConfigError> {
        let c = Config::load_from(
            None,
            env(&[(
                "AUTHGATE_CORS_ALLOWED_ORIGINS",
                "https://App.example.com/, http://127.0.0.1:3000",
            )]),
        )?;
        assert_eq!(
            c.cors_allowed_origins,
            ["https://app.example.com", "http://127.0.0.1:3000"]
        );
        Ok(())
    }

    #[test]
    fn variables_win_over_the_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("authgate-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("authgate.toml");
        std::fs::write(
            &file,
            "bind = \"127.0.0.1:9000\"\nlogin_key_ttl_secs = 60\nlimit_per_ip = \"5/1m\"\n",
        )?;
        let c = Config::load_from(
            Some(&file),
            env(&[
                ("AUTHGATE_LOGIN_KEY_TTL_SECS", "30"),
                ("AUTHGATE_LIMIT_PER_IP", "off"),
            ]),
        )?;
        assert_eq!(c.bind.port(), 9000);
        assert_eq!(c.login_key_ttl, Duration::from_secs(30));
        assert!(c.limits.per_ip.is_off());
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[test]
    fn malformed_values_are_refused_with_the_variable_named() {
        for (k, v) in [
            ("AUTHGATE_BIND", "nowhere"),
            ("AUTHGATE_LOGIN_KEY_TTL_SECS", "0"),
            ("AUTHGATE_LIMIT_PER_IP", "lots"),
            ("AUTHGATE_REVEAL_UNKNOWN_USERS", "maybe"),
            ("AUTHGATE_DELIVERY_WORKER", "sometimes"),
            ("AUTHGATE_TOKEN_SECRET", "short"),
            ("AUTHGATE_TRUSTED_PROXIES", "not-an-ip"),
            ("AUTHGATE_CORS_ALLOWED_ORIGINS", "*"),
            ("AUTHGATE_CORS_ALLOWED_ORIGINS", "https://app.test/path"),
            ("AUTHGATE_CORS_ALLOW_CREDENTIALS", "perhaps"),
        ] {
            let err = Config::load_from(None, env(&[(k, v)]))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(k), "{k}={v}: {err}");
        }
    }
}
