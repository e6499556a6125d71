//! Configuration: a TOML file, then `AUTHGATE_*` environment variables, which win.
//!
//! Every setting has a default that runs the gateway on the embedded store on
//! 127.0.0.1:8080. Secrets are [`SecretString`]s, and neither a [`Config`] nor a
//! [`ConfigFile`] prints one through `Debug`.
//!
//! # One table
//!
//! Each setting is stated once, as a `Setting` constant in `settings`: its variable,
//! its file key, its typed default, its `Format` (the text it accepts, bounds
//! included) and a one-line description. Everything else is derived from those
//! constants:
//!
//! - `build` is the one place where a [`Config`] field meets its setting. It fills the
//!   struct from a source of values: the defaults alone ([`Config::default`]), or the
//!   environment over the file over the defaults ([`Config::load_from`]), so the
//!   defaults and the loader cannot disagree.
//! - Both sources go through the same `Format::parse`: a file's integer or boolean is
//!   read as its text, and a file's array as the items of a comma-separated variable.
//!   A value is therefore accepted or refused alike from either source (never clamped),
//!   and a refusal names the variable or the file key.
//! - [`SETTINGS`] lists every variable, the two that `main.rs` reads included, for
//!   `authgate serve --help` and for [`markdown_table`], which `docs/configuration.md`
//!   embeds (`tests/settings.rs` compares the two).
//!
//! Why typed constants and not a macro: each setting is a plain struct literal that a
//! reader or an IDE can jump to, each format is an ordinary type with one parse, and
//! the compiler checks the glue. Adding a setting takes a field in [`Config`], a
//! constant, a line in [`SETTINGS`] and a line in `build`; the compiler insists on the
//! last, and a test on the one before.
//!
//! # Layout
//!
//! - this module: [`Config`], [`ConfigError`], `build` and the loaders
//!   ([`Config::load`], [`Config::load_from`]);
//! - `settings`: the table a reader edits to add a setting: a `Setting` constant per
//!   setting, [`SETTINGS`], and the listings' types ([`Describe`], [`Shown`], [`Toml`],
//!   [`markdown_table`]);
//! - `formats`: the `Format` trait and the formats a setting's text is read with
//!   (`Text`, `Addr`, `Secret`, `Span`, `Flag`, `RateLimit`, `List`, `Optional`, ...);
//! - `sources`: where values come from: the `Source` trait, `Defaults`, `Layered` and
//!   [`ConfigFile`].

mod formats;
mod settings;
mod sources;

pub use settings::{markdown_table, Describe, Shown, Toml, SETTINGS};
pub use sources::ConfigFile;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use authgate_core::limits::Limits;
use secrecy::SecretString;

use settings::{
    ACCESS_TOKEN_TTL, BIND, BODY_READ_TIMEOUT, CLIENT_ID, CLIENT_SECRET, CLIENT_TOKEN_TTL,
    CORS_ALLOWED_ORIGINS, CORS_ALLOW_CREDENTIALS, DELIVERY_WORKER, EMAIL_FROM, EMAIL_TEMPLATES,
    HEADER_READ_TIMEOUT, IDLE_TIMEOUT, LIMIT_GUESSES_PER_USER, LIMIT_PER_IP,
    LIMIT_REQUESTS_PER_USER, LOGIN_KEY_TTL, LOG_FORMAT, MAX_BODY_BYTES, MAX_CONNECTIONS,
    METRICS_BIND, OTP_TTL, PLATFORM_SOCKETS_PER_ADDRESS, PUBLIC_URL, REDIS_CA_CERT,
    REDIS_CLIENT_CERT, REDIS_CLIENT_KEY, REDIS_MODE, REDIS_OUTBOX_REPLICAS, REDIS_OUTBOX_WAIT,
    REDIS_PREFIX, REDIS_URL, REFRESH_TOKEN_TTL, REVEAL_UNKNOWN_USERS, SHUTDOWN_GRACE, SMTP_URL,
    TLS_CERT, TLS_KEY, TOKEN_SECRET, TRUSTED_PROXIES, UI_RETURN_URLS, UI_TEMPLATES,
    VERIFY_CACHE_ENTRIES, VERIFY_CACHE_MAX_AGE, WEBHOOK_MAX_ATTEMPTS, WEBHOOK_RETRY_BASE,
};
use sources::{Defaults, Layered, Source};

/// The gateway's settings.
#[derive(Clone)]
pub struct Config {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Redis URL; `None` runs on the embedded in-memory store.
    pub redis_url: Option<String>,
    /// One server or a cluster (`auto`, `standalone`, `cluster`).
    pub redis_mode: String,
    /// Certificate authorities trusted for `rediss://` instead of the system's.
    pub redis_ca_cert: Option<PathBuf>,
    /// Client certificate for `rediss://`.
    pub redis_client_cert: Option<PathBuf>,
    /// The client certificate's key.
    pub redis_client_key: Option<PathBuf>,
    /// Replicas the outbox's writes wait for; `None` waits for one when there are replicas.
    pub redis_outbox_replicas: Option<usize>,
    /// The longest that wait lasts.
    pub redis_outbox_wait: Duration,
    /// Token sessions each replica remembers (0: none; only on Redis).
    pub verify_cache_entries: usize,
    /// The longest a remembered session is used.
    pub verify_cache_max_age: Duration,
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
    /// Time a request head may take to arrive whole.
    pub header_read_timeout: Duration,
    /// Time a request body may take to arrive whole, from the end of its head.
    pub body_read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Open connections (WebSockets included) beyond which new ones are turned away.
    pub max_connections: usize,
    /// Open `/platform` sockets per client address.
    pub platform_sockets_per_address: usize,
    /// How long a shutdown waits for requests in flight and deliveries under way.
    pub shutdown_grace: Duration,
    /// A second address serving `/metrics` and the health probes; set, the main
    /// address no longer serves `/metrics`.
    pub metrics_bind: Option<SocketAddr>,
    /// SMTP server for email integrations.
    pub smtp_url: Option<SecretString>,
    /// Default sender of emails.
    pub email_from: Option<String>,
    /// A directory of email templates overriding the built-in ones.
    pub email_templates: Option<PathBuf>,
    /// Where people reach the gateway (the base of emailed links to the hosted
    /// pages); `None` until [`crate::Application::build`] derives it from the
    /// listener.
    pub public_url: Option<String>,
    /// Where the hosted pages may return a signed-in user (`return_to` prefixes).
    pub ui_return_urls: Vec<String>,
    /// A directory of page templates overriding the hosted pages' built-in ones.
    pub ui_templates: Option<PathBuf>,
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
        let Ok(config) = build(&mut Defaults);
        config
    }
}

// Written out rather than derived so that a password in the Redis URL stays hidden;
// the destructuring makes a new field a compile error here until it is shown.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Config {
            bind,
            redis_url,
            redis_mode,
            redis_ca_cert,
            redis_client_cert,
            redis_client_key,
            redis_outbox_replicas,
            redis_outbox_wait,
            verify_cache_entries,
            verify_cache_max_age,
            redis_prefix,
            tls_cert,
            tls_key,
            client_id,
            client_secret,
            token_secret,
            login_key_ttl,
            otp_ttl,
            access_token_ttl,
            refresh_token_ttl,
            client_token_ttl,
            reveal_unknown_users,
            limits,
            trusted_proxies,
            max_body_bytes,
            header_read_timeout,
            body_read_timeout,
            idle_timeout,
            max_connections,
            platform_sockets_per_address,
            shutdown_grace,
            metrics_bind,
            smtp_url,
            email_from,
            email_templates,
            public_url,
            ui_return_urls,
            ui_templates,
            log_format,
            webhook_max_attempts,
            webhook_retry_base,
            delivery_worker,
            delivery_claim_after,
            cors_allowed_origins,
            cors_allow_credentials,
        } = self;
        f.debug_struct("Config")
            .field("bind", bind)
            .field(
                "redis_url",
                &redis_url
                    .as_deref()
                    .map(authgate_core::store::without_credentials),
            )
            .field("redis_mode", redis_mode)
            .field("redis_ca_cert", redis_ca_cert)
            .field("redis_client_cert", redis_client_cert)
            .field("redis_client_key", redis_client_key)
            .field("redis_outbox_replicas", redis_outbox_replicas)
            .field("redis_outbox_wait", redis_outbox_wait)
            .field("verify_cache_entries", verify_cache_entries)
            .field("verify_cache_max_age", verify_cache_max_age)
            .field("redis_prefix", redis_prefix)
            .field("tls_cert", tls_cert)
            .field("tls_key", tls_key)
            .field("client_id", client_id)
            .field("client_secret", client_secret)
            .field("token_secret", token_secret)
            .field("login_key_ttl", login_key_ttl)
            .field("otp_ttl", otp_ttl)
            .field("access_token_ttl", access_token_ttl)
            .field("refresh_token_ttl", refresh_token_ttl)
            .field("client_token_ttl", client_token_ttl)
            .field("reveal_unknown_users", reveal_unknown_users)
            .field("limits", limits)
            .field("trusted_proxies", trusted_proxies)
            .field("max_body_bytes", max_body_bytes)
            .field("header_read_timeout", header_read_timeout)
            .field("body_read_timeout", body_read_timeout)
            .field("idle_timeout", idle_timeout)
            .field("max_connections", max_connections)
            .field("platform_sockets_per_address", platform_sockets_per_address)
            .field("shutdown_grace", shutdown_grace)
            .field("metrics_bind", metrics_bind)
            .field("smtp_url", smtp_url)
            .field("email_from", email_from)
            .field("email_templates", email_templates)
            .field("public_url", public_url)
            .field("ui_return_urls", ui_return_urls)
            .field("ui_templates", ui_templates)
            .field("log_format", log_format)
            .field("webhook_max_attempts", webhook_max_attempts)
            .field("webhook_retry_base", webhook_retry_base)
            .field("delivery_worker", delivery_worker)
            .field("delivery_claim_after", delivery_claim_after)
            .field("cors_allowed_origins", cors_allowed_origins)
            .field("cors_allow_credentials", cors_allow_credentials)
            .finish()
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
    /// The file is not valid TOML.
    #[error("invalid config file {path}: {reason}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// Where and why, without the text of the line (it may hold a secret).
        reason: String,
    },
    /// A variable's value is malformed or out of range.
    #[error("invalid {name}: {reason}")]
    Invalid {
        /// The setting's variable name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A file key is unknown, or its value malformed or out of range.
    #[error("invalid {key} in {path}: {reason}")]
    InFile {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Not a setting: fixed in production, shortened by tests that build a [`Config`].
const DELIVERY_CLAIM_AFTER: Duration = Duration::from_secs(30);

/// The one place where each field meets its setting.
fn build<S: Source>(s: &mut S) -> Result<Config, S::Error> {
    Ok(Config {
        bind: s.value(&BIND)?,
        redis_url: s.value(&REDIS_URL)?,
        redis_mode: s.value(&REDIS_MODE)?,
        redis_ca_cert: s.value(&REDIS_CA_CERT)?,
        redis_client_cert: s.value(&REDIS_CLIENT_CERT)?,
        redis_client_key: s.value(&REDIS_CLIENT_KEY)?,
        redis_outbox_replicas: s.value(&REDIS_OUTBOX_REPLICAS)?,
        redis_outbox_wait: s.value(&REDIS_OUTBOX_WAIT)?,
        verify_cache_entries: s.value(&VERIFY_CACHE_ENTRIES)?,
        verify_cache_max_age: s.value(&VERIFY_CACHE_MAX_AGE)?,
        redis_prefix: s.value(&REDIS_PREFIX)?,
        tls_cert: s.value(&TLS_CERT)?,
        tls_key: s.value(&TLS_KEY)?,
        client_id: s.value(&CLIENT_ID)?,
        client_secret: s.value(&CLIENT_SECRET)?,
        token_secret: s.value(&TOKEN_SECRET)?,
        login_key_ttl: s.value(&LOGIN_KEY_TTL)?,
        otp_ttl: s.value(&OTP_TTL)?,
        access_token_ttl: s.value(&ACCESS_TOKEN_TTL)?,
        refresh_token_ttl: s.value(&REFRESH_TOKEN_TTL)?,
        client_token_ttl: s.value(&CLIENT_TOKEN_TTL)?,
        reveal_unknown_users: s.value(&REVEAL_UNKNOWN_USERS)?,
        limits: Limits {
            requests_per_user: s.value(&LIMIT_REQUESTS_PER_USER)?,
            guesses_per_user: s.value(&LIMIT_GUESSES_PER_USER)?,
            per_ip: s.value(&LIMIT_PER_IP)?,
        },
        trusted_proxies: s.value(&TRUSTED_PROXIES)?,
        max_body_bytes: s.value(&MAX_BODY_BYTES)?,
        header_read_timeout: s.value(&HEADER_READ_TIMEOUT)?,
        body_read_timeout: s.value(&BODY_READ_TIMEOUT)?,
        idle_timeout: s.value(&IDLE_TIMEOUT)?,
        max_connections: s.value(&MAX_CONNECTIONS)?,
        platform_sockets_per_address: s.value(&PLATFORM_SOCKETS_PER_ADDRESS)?,
        shutdown_grace: s.value(&SHUTDOWN_GRACE)?,
        metrics_bind: s.value(&METRICS_BIND)?,
        smtp_url: s.value(&SMTP_URL)?,
        email_from: s.value(&EMAIL_FROM)?,
        email_templates: s.value(&EMAIL_TEMPLATES)?,
        public_url: s.value(&PUBLIC_URL)?,
        ui_return_urls: s.value(&UI_RETURN_URLS)?,
        ui_templates: s.value(&UI_TEMPLATES)?,
        log_format: s.value(&LOG_FORMAT)?,
        webhook_max_attempts: s.value(&WEBHOOK_MAX_ATTEMPTS)?,
        webhook_retry_base: s.value(&WEBHOOK_RETRY_BASE)?,
        delivery_worker: s.value(&DELIVERY_WORKER)?,
        delivery_claim_after: DELIVERY_CLAIM_AFTER,
        cors_allowed_origins: s.value(&CORS_ALLOWED_ORIGINS)?,
        cors_allow_credentials: s.value(&CORS_ALLOW_CREDENTIALS)?,
    })
}

impl Config {
    /// How to reach Redis, when a Redis is configured.
    pub fn redis_options(&self) -> Option<authgate_core::store::RedisOptions> {
        let url = self.redis_url.as_deref()?;
        let mut options = authgate_core::store::RedisOptions::new(url);
        // The setting accepts only the three names.
        options.mode = self.redis_mode.parse().unwrap_or_default();
        options.ca_cert = self.redis_ca_cert.clone();
        options.client_cert = self.redis_client_cert.clone();
        options.client_key = self.redis_client_key.clone();
        options.replicas = self.redis_outbox_replicas;
        options.replica_timeout = self.redis_outbox_wait;
        Some(options)
    }

    /// Reads the file (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, |name| std::env::var(name).ok())
    }

    /// Reads the file (if any), then variables from `env`.
    pub fn load_from(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file = file.map(ConfigFile::read).transpose()?;
        let config = build(&mut Layered {
            env,
            file: file.as_ref(),
        })?;
        if config.tls_cert.is_some() != config.tls_key.is_some() {
            return Err(ConfigError::Invalid {
                name: TLS_CERT.var.to_owned(),
                reason: "set both AUTHGATE_TLS_CERT and AUTHGATE_TLS_KEY (tls_cert and \
                         tls_key in the file), or neither"
                    .to_owned(),
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::convert::Infallible;

    use super::formats::Format;
    use super::settings::Setting;

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
        assert_eq!(c.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.body_read_timeout, Duration::from_secs(30));
        assert_eq!(c.idle_timeout, Duration::from_secs(120));
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.platform_sockets_per_address, 100);
        assert_eq!(c.shutdown_grace, Duration::from_secs(10));
        assert!(c.metrics_bind.is_none());
        let edges = Config::load_from(
            None,
            env(&[
                ("AUTHGATE_HEADER_READ_TIMEOUT_MS", "2500"),
                ("AUTHGATE_METRICS_BIND", "127.0.0.1:9090"),
            ]),
        )?;
        assert_eq!(edges.header_read_timeout, Duration::from_millis(2500));
        assert_eq!(
            edges.metrics_bind.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:9090")
        );
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
            ("AUTHGATE_CLIENT_SECRET", "too-short"),
            ("AUTHGATE_MAX_BODY_BYTES", "1023"),
            ("AUTHGATE_WEBHOOK_MAX_ATTEMPTS", "0"),
            ("AUTHGATE_WEBHOOK_MAX_ATTEMPTS", "101"),
            ("AUTHGATE_WEBHOOK_RETRY_BASE_MS", "9"),
            ("AUTHGATE_WEBHOOK_RETRY_BASE_MS", "600001"),
            ("AUTHGATE_LOG_FORMAT", "xml"),
            ("AUTHGATE_TLS_CERT", "/etc/authgate/cert.pem"),
            ("AUTHGATE_HEADER_READ_TIMEOUT_MS", "99"),
            ("AUTHGATE_BODY_READ_TIMEOUT_MS", "0"),
            ("AUTHGATE_IDLE_TIMEOUT_SECS", "0"),
            ("AUTHGATE_MAX_CONNECTIONS", "0"),
            ("AUTHGATE_PLATFORM_SOCKETS_PER_ADDRESS", "0"),
            ("AUTHGATE_SHUTDOWN_GRACE_SECS", "0"),
            ("AUTHGATE_METRICS_BIND", "9090"),
            ("AUTHGATE_PUBLIC_URL", "localhost:8080"),
            ("AUTHGATE_PUBLIC_URL", "https://auth.test/?x=1"),
            ("AUTHGATE_UI_RETURN_URLS", "https://app.test/cb#frag"),
            ("AUTHGATE_UI_RETURN_URLS", "javascript:alert(1)"),
            ("AUTHGATE_UI_RETURN_URLS", "https://user:pw@app.test/cb"),
        ] {
            let err = Config::load_from(None, env(&[(k, v)]))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(k), "{k}={v}: {err}");
        }
    }

    /// Records which settings `build` reads.
    struct Recorder(Vec<&'static str>);

    impl Source for Recorder {
        type Error = Infallible;
        fn value<F: Format>(&mut self, setting: &Setting<F>) -> Result<F::Value, Infallible> {
            self.0.push(setting.var);
            Ok((setting.default)())
        }
    }

    #[test]
    fn every_setting_with_a_file_key_is_read_once_and_listed() {
        let mut read = Recorder(Vec::new());
        let Ok(_) = build(&mut read);
        let mut read = read.0;
        read.sort_unstable();
        let mut listed: Vec<_> = SETTINGS
            .iter()
            .filter(|s| s.key().is_some())
            .map(|s| s.var())
            .collect();
        listed.sort_unstable();
        assert_eq!(read, listed);
    }

    #[test]
    fn credentials_in_a_url_are_hidden() {
        use authgate_core::store::without_credentials;
        assert_eq!(
            without_credentials("redis://:pa/ss@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        let shown = format!(
            "{:?}",
            Config {
                redis_url: Some("redis://app:pw1@a:1,redis://app:pw1@b:2".into()),
                ..Config::default()
            }
        );
        assert!(!shown.contains("pw1"), "{shown}");
        assert_eq!(
            without_credentials("redis://host:6379"),
            "redis://host:6379"
        );
        assert_eq!(without_credentials("log"), "log");
    }
}
