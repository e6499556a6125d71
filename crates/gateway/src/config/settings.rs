//! The table: one `Setting` constant per setting, [`SETTINGS`] (the order of the
//! listings) and the listings' types. Adding a setting starts here; `build` in the
//! parent module is where its value meets its [`Config`](super::Config) field.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use authgate_core::limits::Limits;

use super::formats::{
    Addr, FilePath, Flag, Format, Ip, List, OneOf, Optional, Origin, PublicUrl, RateLimit,
    ReturnUrl, Secret, Span, Text, Unit, Whole,
};

pub(super) const BIND: Setting<Addr> = Setting {
    var: "AUTHGATE_BIND",
    key: Some("bind"),
    format: Addr,
    default: || SocketAddr::from(([127, 0, 0, 1], 8080)),
    about: "address to listen on",
};

pub(super) const REDIS_URL: Setting<Optional<Text>> = Setting {
    var: "AUTHGATE_REDIS_URL",
    key: Some("redis_url"),
    format: Optional {
        inner: Text("redis[s]://[user:password@]host[:port][/db], or several nodes of a cluster separated by commas"),
        unset: "unset: memory",
    },
    default: || None,
    about: "Redis server, or any node(s) of a Redis Cluster (the rest are discovered); rediss:// for TLS; unset runs on the embedded in-memory store",
};

pub(super) const REDIS_MODE: Setting<OneOf> = Setting {
    var: "AUTHGATE_REDIS_MODE",
    key: Some("redis_mode"),
    format: OneOf(&["auto", "standalone", "cluster"]),
    default: || "auto".into(),
    about: "one server or a cluster; auto asks the server",
};

pub(super) const REDIS_CA_CERT: Setting<Optional<FilePath>> = Setting {
    var: "AUTHGATE_REDIS_CA_CERT",
    key: Some("redis_ca_cert"),
    format: Optional {
        inner: FilePath("path of a PEM file"),
        unset: "unset: the system's roots",
    },
    default: || None,
    about: "certificate authorities trusted for rediss://, instead of the system's",
};

pub(super) const REDIS_CLIENT_CERT: Setting<Optional<FilePath>> = Setting {
    var: "AUTHGATE_REDIS_CLIENT_CERT",
    key: Some("redis_client_cert"),
    format: Optional {
        inner: FilePath("path of a PEM file"),
        unset: "unset",
    },
    default: || None,
    about: "client certificate presented to a rediss:// server that asks for one (with AUTHGATE_REDIS_CLIENT_KEY)",
};

pub(super) const REDIS_CLIENT_KEY: Setting<Optional<FilePath>> = Setting {
    var: "AUTHGATE_REDIS_CLIENT_KEY",
    key: Some("redis_client_key"),
    format: Optional {
        inner: FilePath("path of a PEM file"),
        unset: "unset",
    },
    default: || None,
    about: "private key of AUTHGATE_REDIS_CLIENT_CERT",
};

pub(super) const REDIS_OUTBOX_REPLICAS: Setting<Optional<Whole<usize>>> = Setting {
    var: "AUTHGATE_REDIS_OUTBOX_REPLICAS",
    key: Some("redis_outbox_replicas"),
    format: Optional {
        inner: Whole {
            min: 0,
            max: Some(16),
            unit: "",
        },
        unset: "unset: 1 when the primaries have replicas",
    },
    default: || None,
    about: "replicas an accepted code's delivery entry waits for (WAIT) before the answer, so a failover cannot lose it; 0 never waits",
};

pub(super) const REDIS_OUTBOX_WAIT: Setting<Span> = Setting {
    var: "AUTHGATE_REDIS_OUTBOX_WAIT_MS",
    key: Some("redis_outbox_wait_ms"),
    format: Span {
        unit: Unit::Milliseconds,
        min: 1,
        max: Some(10_000),
    },
    default: || Duration::from_millis(100),
    about: "the longest that wait lasts; the request is answered either way",
};

pub(super) const VERIFY_CACHE_ENTRIES: Setting<Whole<usize>> = Setting {
    var: "AUTHGATE_VERIFY_CACHE_ENTRIES",
    key: Some("verify_cache_entries"),
    format: Whole {
        min: 0,
        max: Some(10_000_000),
        unit: "sessions",
    },
    default: || 65_536,
    about: "token sessions each replica remembers, so that checking a token seen lately \
            (verify, introspection) needs no Redis round trip; Redis pushes every change of a \
            session (CLIENT TRACKING), and while those pushes are not known to flow nothing is \
            served from memory; 0 turns the memory off (under 1 KiB per session)",
};

pub(super) const VERIFY_CACHE_MAX_AGE: Setting<Span> = Setting {
    var: "AUTHGATE_VERIFY_CACHE_MAX_AGE_SECS",
    key: Some("verify_cache_max_age_secs"),
    format: Span {
        unit: Unit::Seconds,
        min: 1,
        max: Some(3600),
    },
    default: || Duration::from_secs(60),
    about: "the longest a remembered session is used before it is read again, pushes or not",
};

pub(super) const REDIS_PREFIX: Setting<Text> = Setting {
    var: "AUTHGATE_REDIS_PREFIX",
    key: Some("redis_prefix"),
    format: Text("text"),
    default: || "authgate:".into(),
    about: "prefix of every Redis key, so that deployments can share one server",
};

pub(super) const TLS_CERT: Setting<Optional<FilePath>> = Setting {
    var: "AUTHGATE_TLS_CERT",
    key: Some("tls_cert"),
    format: Optional {
        inner: FilePath("path of a PEM file"),
        unset: "unset",
    },
    default: || None,
    about: "PEM certificate chain; with AUTHGATE_TLS_KEY, serve HTTPS and wss:// directly",
};

pub(super) const TLS_KEY: Setting<Optional<FilePath>> = Setting {
    var: "AUTHGATE_TLS_KEY",
    key: Some("tls_key"),
    format: Optional {
        inner: FilePath("path of a PEM file"),
        unset: "unset",
    },
    default: || None,
    about: "PEM private key (set both or neither)",
};

pub(super) const CLIENT_ID: Setting<Text> = Setting {
    var: "AUTHGATE_CLIENT_ID",
    key: Some("client_id"),
    format: Text("text"),
    default: || "authgate".into(),
    about: "the API client's id, for both grants (client credentials and implicit)",
};

pub(super) const CLIENT_SECRET: Setting<Optional<Secret>> = Setting {
    var: "AUTHGATE_CLIENT_SECRET",
    key: Some("client_secret"),
    format: Optional {
        inner: Secret {
            what: "text",
            min_len: 12,
        },
        unset: "generated",
    },
    default: || None,
    about: "the API client's secret; unset, one is generated and shared through the store",
};

pub(super) const TOKEN_SECRET: Setting<Optional<Secret>> = Setting {
    var: "AUTHGATE_TOKEN_SECRET",
    key: Some("token_secret"),
    format: Optional {
        inner: Secret {
            what: "text",
            min_len: 32,
        },
        unset: "generated",
    },
    default: || None,
    about: "root secret of login keys, code digests, token signatures and the sealing of \
            HA1s and webhook secrets (e.g. openssl rand -base64 32)",
};

/// Lifetimes: whole seconds, at least one.
const SECONDS: Span = Span {
    unit: Unit::Seconds,
    min: 1,
    max: None,
};

pub(super) const LOGIN_KEY_TTL: Setting<Span> = Setting {
    var: "AUTHGATE_LOGIN_KEY_TTL_SECS",
    key: Some("login_key_ttl_secs"),
    format: SECONDS,
    default: || Duration::from_secs(300),
    about: "lifetime of a one-time login key",
};

pub(super) const OTP_TTL: Setting<Span> = Setting {
    var: "AUTHGATE_OTP_TTL_SECS",
    key: Some("otp_ttl_secs"),
    format: SECONDS,
    default: || Duration::from_secs(600),
    about: "lifetime of one-time password codes",
};

pub(super) const ACCESS_TOKEN_TTL: Setting<Span> = Setting {
    var: "AUTHGATE_ACCESS_TOKEN_TTL_SECS",
    key: Some("access_token_ttl_secs"),
    format: SECONDS,
    default: || Duration::from_secs(48 * 3600),
    about: "lifetime of user access tokens (48 h)",
};

pub(super) const REFRESH_TOKEN_TTL: Setting<Span> = Setting {
    var: "AUTHGATE_REFRESH_TOKEN_TTL_SECS",
    key: Some("refresh_token_ttl_secs"),
    format: SECONDS,
    default: || Duration::from_secs(30 * 86400),
    about: "lifetime of refresh tokens (30 days)",
};

pub(super) const CLIENT_TOKEN_TTL: Setting<Span> = Setting {
    var: "AUTHGATE_CLIENT_TOKEN_TTL_SECS",
    key: Some("client_token_ttl_secs"),
    format: SECONDS,
    default: || Duration::from_secs(3600),
    about: "lifetime of API client tokens",
};

pub(super) const REVEAL_UNKNOWN_USERS: Setting<Flag> = Setting {
    var: "AUTHGATE_REVEAL_UNKNOWN_USERS",
    key: Some("reveal_unknown_users"),
    format: Flag,
    default: || false,
    about: "answer key requests for unknown users with 404 invalid username instead of a decoy key",
};

// The limits' defaults are the core's, which owns what the limits mean.
pub(super) const LIMIT_REQUESTS_PER_USER: Setting<RateLimit> = Setting {
    var: "AUTHGATE_LIMIT_REQUESTS_PER_USER",
    key: Some("limit_requests_per_user"),
    format: RateLimit,
    default: || Limits::default().requests_per_user,
    about: "key and code requests per username, known or not",
};

pub(super) const LIMIT_GUESSES_PER_USER: Setting<RateLimit> = Setting {
    var: "AUTHGATE_LIMIT_GUESSES_PER_USER",
    key: Some("limit_guesses_per_user"),
    format: RateLimit,
    default: || Limits::default().guesses_per_user,
    about: "wrong hashes, passwords and codes per username",
};

pub(super) const LIMIT_PER_IP: Setting<RateLimit> = Setting {
    var: "AUTHGATE_LIMIT_PER_IP",
    key: Some("limit_per_ip"),
    format: RateLimit,
    default: || Limits::default().per_ip,
    about: "login-related requests per client address",
};

pub(super) const TRUSTED_PROXIES: Setting<List<Ip>> = Setting {
    var: "AUTHGATE_TRUSTED_PROXIES",
    key: Some("trusted_proxies"),
    format: List {
        item: Ip,
        empty: "none",
    },
    default: Vec::new,
    about: "proxies whose X-Forwarded-For is believed",
};

pub(super) const MAX_BODY_BYTES: Setting<Whole<usize>> = Setting {
    var: "AUTHGATE_MAX_BODY_BYTES",
    key: Some("max_body_bytes"),
    format: Whole {
        min: 1024,
        max: None,
        unit: "bytes",
    },
    default: || 64 * 1024,
    about: "largest request body; a larger one gets 413",
};

pub(super) const SMTP_URL: Setting<Optional<Secret>> = Setting {
    var: "AUTHGATE_SMTP_URL",
    key: Some("smtp_url"),
    format: Optional {
        inner: Secret {
            what: "smtp://host:port (plain), smtp://host:587?tls=required (STARTTLS) or \
                   smtps://host:465, each with optional user:password@; or log",
            min_len: 0,
        },
        unset: "unset",
    },
    default: || None,
    about: "SMTP server for email integrations; log writes each message to the log instead",
};

pub(super) const EMAIL_FROM: Setting<Optional<Text>> = Setting {
    var: "AUTHGATE_EMAIL_FROM",
    key: Some("email_from"),
    format: Optional {
        inner: Text("a mailbox, e.g. Shop <no-reply@shop.example>"),
        unset: "unset",
    },
    default: || None,
    about: "default sender of emails",
};

pub(super) const EMAIL_TEMPLATES: Setting<Optional<FilePath>> = Setting {
    var: "AUTHGATE_EMAIL_TEMPLATES",
    key: Some("email_templates"),
    format: Optional {
        inner: FilePath("path of a folder"),
        unset: "built-in",
    },
    default: || None,
    about: "a folder of email templates overriding the built-in ones",
};

pub(super) const PUBLIC_URL: Setting<Optional<PublicUrl>> = Setting {
    var: "AUTHGATE_PUBLIC_URL",
    key: Some("public_url"),
    format: Optional {
        inner: PublicUrl,
        unset: "unset: http(s)://<listen address> (localhost for 0.0.0.0)",
    },
    default: || None,
    about: "where people reach the gateway: the base of the links in code emails of \
            integrations that name no page of their own (they then open the hosted pages \
            under /ui/)",
};

pub(super) const UI_RETURN_URLS: Setting<List<ReturnUrl>> = Setting {
    var: "AUTHGATE_UI_RETURN_URLS",
    key: Some("ui_return_urls"),
    format: List {
        item: ReturnUrl,
        empty: "none: the pages show the token",
    },
    default: Vec::new,
    about: "where the hosted pages may send a signed-in user back (return_to): same scheme, \
            host and port, and a path equal to or under the listed one; the token travels in \
            the URL fragment",
};

pub(super) const UI_TEMPLATES: Setting<Optional<FilePath>> = Setting {
    var: "AUTHGATE_UI_TEMPLATES",
    key: Some("ui_templates"),
    format: Optional {
        inner: FilePath("path of a folder"),
        unset: "built-in",
    },
    default: || None,
    about: "a folder of page templates and style.css overriding the hosted pages' built-in \
            ones, a subfolder per locale (e.g. fr/)",
};

pub(super) const LOG_FORMAT: Setting<OneOf> = Setting {
    var: "AUTHGATE_LOG_FORMAT",
    key: Some("log_format"),
    format: OneOf(&["text", "json"]),
    default: || "text".into(),
    about: "log format",
};

// Read by `main.rs` before anything else, so it has no file key.
const LOG: Setting<Text> = Setting {
    var: "AUTHGATE_LOG",
    key: None,
    format: Text("a tracing EnvFilter, e.g. debug or authgate=debug"),
    default: || "info,poem=warn".into(),
    about: "log filter",
};

// Names the file, so it cannot be in it; `main.rs` reads it (clap's `--config`).
const CONFIG: Setting<Optional<FilePath>> = Setting {
    var: "AUTHGATE_CONFIG",
    key: None,
    format: Optional {
        inner: FilePath("path of a TOML file"),
        unset: "unset",
    },
    default: || None,
    about: "the config file (same as --config)",
};

pub(super) const DELIVERY_WORKER: Setting<Flag> = Setting {
    var: "AUTHGATE_DELIVERY_WORKER",
    key: Some("delivery_worker"),
    format: Flag,
    default: || true,
    about: "run a delivery worker in this replica; false serves the API only (another \
            replica must run one; this one's code requests then wait for that worker's next \
            look, up to a second on an idle system, as a request wakes only its own \
            replica's worker)",
};

pub(super) const WEBHOOK_MAX_ATTEMPTS: Setting<Whole<u32>> = Setting {
    var: "AUTHGATE_WEBHOOK_MAX_ATTEMPTS",
    key: Some("webhook_max_attempts"),
    format: Whole {
        min: 1,
        max: Some(100),
        unit: "",
    },
    default: || 20,
    about: "delivery tries per event and integration before it is abandoned",
};

pub(super) const WEBHOOK_RETRY_BASE: Setting<Span> = Setting {
    var: "AUTHGATE_WEBHOOK_RETRY_BASE_MS",
    key: Some("webhook_retry_base_ms"),
    format: Span {
        unit: Unit::Milliseconds,
        min: 10,
        max: Some(600_000),
    },
    default: || Duration::from_secs(1),
    about: "wait before the second delivery try; it doubles with each try, capped at 60 s",
};

pub(super) const CORS_ALLOWED_ORIGINS: Setting<List<Origin>> = Setting {
    var: "AUTHGATE_CORS_ALLOWED_ORIGINS",
    key: Some("cors_allowed_origins"),
    format: List {
        item: Origin,
        empty: "none: no CORS",
    },
    default: Vec::new,
    about: "browser origins whose pages may call the API; other origins get no CORS headers",
};

pub(super) const CORS_ALLOW_CREDENTIALS: Setting<Flag> = Setting {
    var: "AUTHGATE_CORS_ALLOW_CREDENTIALS",
    key: Some("cors_allow_credentials"),
    format: Flag,
    default: || false,
    about: "let those origins use credentials mode (cookies, HTTP authentication)",
};

pub(super) const METRICS_BIND: Setting<Optional<Addr>> = Setting {
    var: "AUTHGATE_METRICS_BIND",
    key: Some("metrics_bind"),
    format: Optional {
        inner: Addr,
        unset: "unset: /metrics on the main address",
    },
    default: || None,
    about: "a second address (plain HTTP) serving /metrics, /health/live and /health/ready; \
            set, the main address answers /metrics with 404",
};

pub(super) const HEADER_READ_TIMEOUT: Setting<Span> = Setting {
    var: "AUTHGATE_HEADER_READ_TIMEOUT_MS",
    key: Some("header_read_timeout_ms"),
    format: Span {
        unit: Unit::Milliseconds,
        min: 100,
        max: Some(600_000),
    },
    default: || Duration::from_secs(10),
    about: "time a request's head may take to arrive whole, from the connection's opening \
            (TLS handshake included) or from the first byte of a later request; then the \
            connection is closed",
};

pub(super) const BODY_READ_TIMEOUT: Setting<Span> = Setting {
    var: "AUTHGATE_BODY_READ_TIMEOUT_MS",
    key: Some("body_read_timeout_ms"),
    format: Span {
        unit: Unit::Milliseconds,
        min: 100,
        max: Some(3_600_000),
    },
    default: || Duration::from_secs(30),
    about: "time a request's body may take to arrive whole, from the end of its head; then \
            the request gets 408 and the connection is closed",
};

pub(super) const IDLE_TIMEOUT: Setting<Span> = Setting {
    var: "AUTHGATE_IDLE_TIMEOUT_SECS",
    key: Some("idle_timeout_secs"),
    format: Span {
        unit: Unit::Seconds,
        min: 1,
        max: Some(3600),
    },
    default: || Duration::from_secs(120),
    about: "a keep-alive connection waiting this long for its next request is closed (keep \
            it above the idle timeout of a proxy in front)",
};

pub(super) const MAX_CONNECTIONS: Setting<Whole<usize>> = Setting {
    var: "AUTHGATE_MAX_CONNECTIONS",
    key: Some("max_connections"),
    format: Whole {
        min: 1,
        max: Some(1_000_000),
        unit: "connections",
    },
    default: || 10_000,
    about: "open connections, WebSockets included; one more is answered 503 with \
            Retry-After (HTTPS: closed) at once; keep it below the open-file limit \
            (ulimit -n)",
};

pub(super) const PLATFORM_SOCKETS_PER_ADDRESS: Setting<Whole<usize>> = Setting {
    var: "AUTHGATE_PLATFORM_SOCKETS_PER_ADDRESS",
    key: Some("platform_sockets_per_address"),
    format: Whole {
        min: 1,
        max: Some(1_000_000),
        unit: "sockets",
    },
    default: || 100,
    about: "open /platform WebSockets per client address (as AUTHGATE_TRUSTED_PROXIES \
            determines it); one more is closed with 1008 at once",
};

pub(super) const SHUTDOWN_GRACE: Setting<Span> = Setting {
    var: "AUTHGATE_SHUTDOWN_GRACE_SECS",
    key: Some("shutdown_grace_secs"),
    format: Span {
        unit: Unit::Seconds,
        min: 1,
        max: Some(3600),
    },
    default: || Duration::from_secs(10),
    about: "on SIGTERM or SIGINT, the longest the gateway waits for requests in flight \
            and the delivery worker's current sends before it exits",
};

/// Every variable the gateway reads, in the order of `authgate serve --help`.
pub const SETTINGS: &[&dyn Describe] = &[
    &BIND,
    &REDIS_URL,
    &REDIS_MODE,
    &REDIS_CA_CERT,
    &REDIS_CLIENT_CERT,
    &REDIS_CLIENT_KEY,
    &REDIS_OUTBOX_REPLICAS,
    &REDIS_OUTBOX_WAIT,
    &VERIFY_CACHE_ENTRIES,
    &VERIFY_CACHE_MAX_AGE,
    &REDIS_PREFIX,
    &TLS_CERT,
    &TLS_KEY,
    &CLIENT_ID,
    &CLIENT_SECRET,
    &TOKEN_SECRET,
    &LOGIN_KEY_TTL,
    &OTP_TTL,
    &ACCESS_TOKEN_TTL,
    &REFRESH_TOKEN_TTL,
    &CLIENT_TOKEN_TTL,
    &REVEAL_UNKNOWN_USERS,
    &LIMIT_REQUESTS_PER_USER,
    &LIMIT_GUESSES_PER_USER,
    &LIMIT_PER_IP,
    &TRUSTED_PROXIES,
    &MAX_BODY_BYTES,
    &HEADER_READ_TIMEOUT,
    &BODY_READ_TIMEOUT,
    &IDLE_TIMEOUT,
    &MAX_CONNECTIONS,
    &PLATFORM_SOCKETS_PER_ADDRESS,
    &SHUTDOWN_GRACE,
    &METRICS_BIND,
    &SMTP_URL,
    &EMAIL_FROM,
    &EMAIL_TEMPLATES,
    &PUBLIC_URL,
    &UI_RETURN_URLS,
    &UI_TEMPLATES,
    &LOG_FORMAT,
    &LOG,
    &CONFIG,
    &DELIVERY_WORKER,
    &WEBHOOK_MAX_ATTEMPTS,
    &WEBHOOK_RETRY_BASE,
    &CORS_ALLOWED_ORIGINS,
    &CORS_ALLOW_CREDENTIALS,
];

/// The settings as a Markdown table: what `docs/configuration.md` embeds.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| Variable | File key | Default | Accepts | Meaning |\n|---|---|---|---|---|\n",
    );
    for s in SETTINGS {
        let key = s
            .key()
            .map_or_else(|| "(variable only)".to_owned(), |k| format!("`{k}`"));
        let default = match s.default_shown() {
            Shown::Value(v) => format!("`{v}`"),
            Shown::Absent(what) => what.to_owned(),
        };
        let cell = |text: &str| text.replace('|', "\\|");
        out.push_str(&format!(
            "| `{}` | {key} | {default} | {} | {} |\n",
            s.var(),
            cell(&s.accepts()),
            cell(s.about()),
        ));
    }
    out
}

/// A setting as the listings see it, whatever the type of its value.
pub trait Describe {
    /// Its environment variable.
    fn var(&self) -> &'static str;
    /// Its key in the TOML file; `None` for the variables only `main.rs` reads.
    fn key(&self) -> Option<&'static str>;
    /// The TOML type its file key takes.
    fn file_type(&self) -> Toml;
    /// Its default, as one would write it.
    fn default_shown(&self) -> Shown;
    /// The text it accepts, bounds included.
    fn accepts(&self) -> String;
    /// What it does.
    fn about(&self) -> &'static str;
    /// Whether the shown default reads back as itself (a check for the tests).
    fn default_reads_back(&self) -> bool;
}

/// A default as the listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// A value, written as one would set it.
    Value(String),
    /// No value; the text says what that means (`generated`, `none`).
    Absent(&'static str),
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shown::Value(text) => f.write_str(text),
            Shown::Absent(what) => f.write_str(what),
        }
    }
}

/// The TOML type of a file key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toml {
    /// A string.
    String,
    /// An integer.
    Integer,
    /// A boolean.
    Boolean,
    /// An array of strings.
    Array,
}

impl fmt::Display for Toml {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Toml::String => "a string",
            Toml::Integer => "an integer",
            Toml::Boolean => "true or false",
            Toml::Array => "an array of strings",
        })
    }
}

/// One setting: where its value comes from, how its text is read, what it means.
pub(super) struct Setting<F: Format> {
    pub(super) var: &'static str,
    pub(super) key: Option<&'static str>,
    pub(super) format: F,
    pub(super) default: fn() -> F::Value,
    about: &'static str,
}

impl<F: Format> Describe for Setting<F> {
    fn var(&self) -> &'static str {
        self.var
    }
    fn key(&self) -> Option<&'static str> {
        self.key
    }
    fn file_type(&self) -> Toml {
        F::FILE_TYPE
    }
    fn default_shown(&self) -> Shown {
        self.format.show(&(self.default)())
    }
    fn accepts(&self) -> String {
        self.format.accepts()
    }
    fn about(&self) -> &'static str {
        self.about
    }
    fn default_reads_back(&self) -> bool {
        match self.default_shown() {
            Shown::Value(text) => self
                .format
                .parse(&text)
                .is_ok_and(|v| self.format.show(&v) == Shown::Value(text.clone())),
            Shown::Absent(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_and_keys_are_unique_and_keys_follow_the_variables() {
        let vars: std::collections::HashSet<_> = SETTINGS.iter().map(|s| s.var()).collect();
        assert_eq!(vars.len(), SETTINGS.len());
        for s in SETTINGS {
            assert!(s.var().starts_with("AUTHGATE_"), "{}", s.var());
            if let Some(key) = s.key() {
                let from_var = s.var().trim_start_matches("AUTHGATE_").to_ascii_lowercase();
                assert_eq!(key, from_var, "the file key of {}", s.var());
            }
        }
    }

    #[test]
    fn every_shown_default_reads_back_as_the_default() {
        for s in SETTINGS {
            assert!(s.default_reads_back(), "{}: {}", s.var(), s.default_shown());
        }
    }
}
