//! Configuration: a TOML file, then `AUTHGATE_*` environment variables, which win.
//!
//! Every setting has a default that runs the gateway on the embedded store on
//! 127.0.0.1:8080. Secrets are [`SecretString`]s, and neither a [`Config`] nor a
//! [`ConfigFile`] prints one through `Debug`.
//!
//! # One table
//!
//! Each setting is stated once, as a `Setting` constant below: its variable, its file
//! key, its typed default, its `Format` (the text it accepts, bounds included) and a
//! one-line description. Everything else is derived from those constants:
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
//! The module reads top down: [`Config`] and its errors, the table (a constant per
//! setting, then [`SETTINGS`]), `build` and the loaders, the listings' types, the
//! formats, the two sources (`Defaults`, `Layered`) and [`ConfigFile`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use authgate_core::limits::{Limit, Limits};
use secrecy::SecretString;

/// The gateway's settings.
#[derive(Clone)]
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
            smtp_url,
            email_from,
            email_templates,
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
            .field("redis_url", &redis_url.as_deref().map(without_credentials))
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
            .field("smtp_url", smtp_url)
            .field("email_from", email_from)
            .field("email_templates", email_templates)
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

/// `url` with its user information (`user:password@`) replaced by `***`.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        // The last `@` ends the user information even when a password holds an
        // unescaped `/`; hiding too much is the safe way to be wrong.
        Some((scheme, rest)) => match rest.rfind('@') {
            Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
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

const BIND: Setting<Addr> = Setting {
    var: "AUTHGATE_BIND",
    key: Some("bind"),
    format: Addr,
    default: || SocketAddr::from(([127, 0, 0, 1], 8080)),
    about: "address to listen on",
};

const REDIS_URL: Setting<Optional<Text>> = Setting {
    var: "AUTHGATE_REDIS_URL",
    key: Some("redis_url"),
    format: Optional {
        inner: Text("redis://[:password@]host[:port][/db]"),
        unset: "unset: memory",
    },
    default: || None,
    about: "Redis server; unset runs on the embedded in-memory store",
};

const REDIS_PREFIX: Setting<Text> = Setting {
    var: "AUTHGATE_REDIS_PREFIX",
    key: Some("redis_prefix"),
    format: Text("text"),
    default: || "authgate:".into(),
    about: "prefix of every Redis key, so that deployments can share one server",
};

const TLS_CERT: Setting<Optional<FilePath>> = Setting {
    var: "AUTHGATE_TLS_CERT",
    key: Some("tls_cert"),
    format: Optional {
        inner: FilePath("path of a PEM file"),
        unset: "unset",
    },
    default: || None,
    about: "PEM certificate chain; with AUTHGATE_TLS_KEY, serve HTTPS and wss:// directly",
};

const TLS_KEY: Setting<Optional<FilePath>> = Setting {
    var: "AUTHGATE_TLS_KEY",
    key: Some("tls_key"),
    format: Optional {
        inner: FilePath("path of a PEM file"),
        unset: "unset",
    },
    default: || None,
    about: "PEM private key (set both or neither)",
};

const CLIENT_ID: Setting<Text> = Setting {
    var: "AUTHGATE_CLIENT_ID",
    key: Some("client_id"),
    format: Text("text"),
    default: || "authgate".into(),
    about: "the API client's id, for both grants (client credentials and implicit)",
};

const CLIENT_SECRET: Setting<Optional<Secret>> = Setting {
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

const TOKEN_SECRET: Setting<Optional<Secret>> = Setting {
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

const LOGIN_KEY_TTL: Setting<Span> = Setting {
    var: "AUTHGATE_LOGIN_KEY_TTL_SECS",
    key: Some("login_key_ttl_secs"),
    format: SECONDS,
    default: || Duration::from_secs(300),
    about: "lifetime of a one-time login key",
};

const OTP_TTL: Setting<Span> = Setting {
    var: "AUTHGATE_OTP_TTL_SECS",
    key: Some("otp_ttl_secs"),
    format: SECONDS,
    default: || Duration::from_secs(600),
    about: "lifetime of one-time password codes",
};

const ACCESS_TOKEN_TTL: Setting<Span> = Setting {
    var: "AUTHGATE_ACCESS_TOKEN_TTL_SECS",
    key: Some("access_token_ttl_secs"),
    format: SECONDS,
    default: || Duration::from_secs(48 * 3600),
    about: "lifetime of user access tokens (48 h)",
};

const REFRESH_TOKEN_TTL: Setting<Span> = Setting {
    var: "AUTHGATE_REFRESH_TOKEN_TTL_SECS",
    key: Some("refresh_token_ttl_secs"),
    format: SECONDS,
    default: || Duration::from_secs(30 * 86400),
    about: "lifetime of refresh tokens (30 days)",
};

const CLIENT_TOKEN_TTL: Setting<Span> = Setting {
    var: "AUTHGATE_CLIENT_TOKEN_TTL_SECS",
    key: Some("client_token_ttl_secs"),
    format: SECONDS,
    default: || Duration::from_secs(3600),
    about: "lifetime of API client tokens",
};

const REVEAL_UNKNOWN_USERS: Setting<Flag> = Setting {
    var: "AUTHGATE_REVEAL_UNKNOWN_USERS",
    key: Some("reveal_unknown_users"),
    format: Flag,
    default: || false,
    about: "answer key requests for unknown users with 404 invalid username instead of a decoy key",
};

// The limits' defaults are the core's, which owns what the limits mean.
const LIMIT_REQUESTS_PER_USER: Setting<RateLimit> = Setting {
    var: "AUTHGATE_LIMIT_REQUESTS_PER_USER",
    key: Some("limit_requests_per_user"),
    format: RateLimit,
    default: || Limits::default().requests_per_user,
    about: "key and code requests per username, known or not",
};

const LIMIT_GUESSES_PER_USER: Setting<RateLimit> = Setting {
    var: "AUTHGATE_LIMIT_GUESSES_PER_USER",
    key: Some("limit_guesses_per_user"),
    format: RateLimit,
    default: || Limits::default().guesses_per_user,
    about: "wrong hashes, passwords and codes per username",
};

const LIMIT_PER_IP: Setting<RateLimit> = Setting {
    var: "AUTHGATE_LIMIT_PER_IP",
    key: Some("limit_per_ip"),
    format: RateLimit,
    default: || Limits::default().per_ip,
    about: "login-related requests per client address",
};

const TRUSTED_PROXIES: Setting<List<Ip>> = Setting {
    var: "AUTHGATE_TRUSTED_PROXIES",
    key: Some("trusted_proxies"),
    format: List {
        item: Ip,
        empty: "none",
    },
    default: Vec::new,
    about: "proxies whose X-Forwarded-For is believed",
};

const MAX_BODY_BYTES: Setting<Whole<usize>> = Setting {
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

const SMTP_URL: Setting<Optional<Secret>> = Setting {
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

const EMAIL_FROM: Setting<Optional<Text>> = Setting {
    var: "AUTHGATE_EMAIL_FROM",
    key: Some("email_from"),
    format: Optional {
        inner: Text("a mailbox, e.g. Shop <no-reply@shop.example>"),
        unset: "unset",
    },
    default: || None,
    about: "default sender of emails",
};

const EMAIL_TEMPLATES: Setting<Optional<FilePath>> = Setting {
    var: "AUTHGATE_EMAIL_TEMPLATES",
    key: Some("email_templates"),
    format: Optional {
        inner: FilePath("path of a folder"),
        unset: "built-in",
    },
    default: || None,
    about: "a folder of email templates overriding the built-in ones",
};

const LOG_FORMAT: Setting<OneOf> = Setting {
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

const DELIVERY_WORKER: Setting<Flag> = Setting {
    var: "AUTHGATE_DELIVERY_WORKER",
    key: Some("delivery_worker"),
    format: Flag,
    default: || true,
    about: "run a delivery worker in this replica; false serves the API only (another \
            replica must run one)",
};

const WEBHOOK_MAX_ATTEMPTS: Setting<Whole<u32>> = Setting {
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

const WEBHOOK_RETRY_BASE: Setting<Span> = Setting {
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

const CORS_ALLOWED_ORIGINS: Setting<List<Origin>> = Setting {
    var: "AUTHGATE_CORS_ALLOWED_ORIGINS",
    key: Some("cors_allowed_origins"),
    format: List {
        item: Origin,
        empty: "none: no CORS",
    },
    default: Vec::new,
    about: "browser origins whose pages may call the API; other origins get no CORS headers",
};

const CORS_ALLOW_CREDENTIALS: Setting<Flag> = Setting {
    var: "AUTHGATE_CORS_ALLOW_CREDENTIALS",
    key: Some("cors_allow_credentials"),
    format: Flag,
    default: || false,
    about: "let those origins use credentials mode (cookies, HTTP authentication)",
};

/// Every variable the gateway reads, in the order of `authgate serve --help`.
pub const SETTINGS: &[&dyn Describe] = &[
    &BIND,
    &REDIS_URL,
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
    &SMTP_URL,
    &EMAIL_FROM,
    &EMAIL_TEMPLATES,
    &LOG_FORMAT,
    &LOG,
    &CONFIG,
    &DELIVERY_WORKER,
    &WEBHOOK_MAX_ATTEMPTS,
    &WEBHOOK_RETRY_BASE,
    &CORS_ALLOWED_ORIGINS,
    &CORS_ALLOW_CREDENTIALS,
];

/// The one place where each field meets its setting.
fn build<S: Source>(s: &mut S) -> Result<Config, S::Error> {
    Ok(Config {
        bind: s.value(&BIND)?,
        redis_url: s.value(&REDIS_URL)?,
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
        smtp_url: s.value(&SMTP_URL)?,
        email_from: s.value(&EMAIL_FROM)?,
        email_templates: s.value(&EMAIL_TEMPLATES)?,
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
struct Setting<F: Format> {
    var: &'static str,
    key: Option<&'static str>,
    format: F,
    default: fn() -> F::Value,
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

/// A value as a variable or the file gives it, before it is parsed. Not `Debug`:
/// it may be a secret.
enum Raw {
    /// A variable's text, or a file's string, integer or boolean as text.
    Text(String),
    /// A file's array of strings.
    List(Vec<String>),
}

/// How a setting's text becomes its value: the one parse both sources go through.
trait Format {
    /// The type of the field it fills.
    type Value;
    /// The TOML type of its file key.
    const FILE_TYPE: Toml;
    /// Reads a value; the error says what was expected and never repeats a secret.
    fn parse(&self, text: &str) -> Result<Self::Value, String>;
    /// Reads a value from either source; only a list takes the file's array.
    fn read(&self, raw: &Raw) -> Result<Self::Value, String> {
        match raw {
            Raw::Text(text) => self.parse(text),
            Raw::List(_) => Err(format!("expected {}", Self::FILE_TYPE)),
        }
    }
    /// A value (the default) as the listings show it.
    fn show(&self, value: &Self::Value) -> Shown;
    /// The text it accepts, bounds included.
    fn accepts(&self) -> String;
}

/// Any text, kept as written; the field says what it should be.
struct Text(&'static str);

impl Format for Text {
    type Value = String;
    const FILE_TYPE: Toml = Toml::String;
    fn parse(&self, text: &str) -> Result<String, String> {
        Ok(text.to_owned())
    }
    fn show(&self, value: &String) -> Shown {
        Shown::Value(value.clone())
    }
    fn accepts(&self) -> String {
        self.0.to_owned()
    }
}

/// A path, kept as written; the field says what it should name.
struct FilePath(&'static str);

impl Format for FilePath {
    type Value = PathBuf;
    const FILE_TYPE: Toml = Toml::String;
    fn parse(&self, text: &str) -> Result<PathBuf, String> {
        Ok(PathBuf::from(text))
    }
    fn show(&self, value: &PathBuf) -> Shown {
        Shown::Value(value.display().to_string())
    }
    fn accepts(&self) -> String {
        self.0.to_owned()
    }
}

/// A socket address, `IP:port`.
struct Addr;

impl Format for Addr {
    type Value = SocketAddr;
    const FILE_TYPE: Toml = Toml::String;
    fn parse(&self, text: &str) -> Result<SocketAddr, String> {
        text.trim()
            .parse()
            .map_err(|_| format!("expected IP:port, got {text:?}"))
    }
    fn show(&self, value: &SocketAddr) -> Shown {
        Shown::Value(value.to_string())
    }
    fn accepts(&self) -> String {
        "IP:port".to_owned()
    }
}

/// A secret of at least `min_len` bytes; errors never repeat it.
struct Secret {
    what: &'static str,
    min_len: usize,
}

impl Format for Secret {
    type Value = SecretString;
    const FILE_TYPE: Toml = Toml::String;
    fn parse(&self, text: &str) -> Result<SecretString, String> {
        if text.len() < self.min_len {
            return Err(format!("must be at least {} characters", self.min_len));
        }
        Ok(SecretString::from(text.to_owned()))
    }
    fn show(&self, _: &SecretString) -> Shown {
        Shown::Absent("(secret)")
    }
    fn accepts(&self) -> String {
        match self.min_len {
            0 => self.what.to_owned(),
            n => format!("{}, at least {n} characters", self.what),
        }
    }
}

/// A whole number within bounds.
struct Whole<N> {
    min: N,
    max: Option<N>,
    /// What it counts, for the listings; empty for a bare number.
    unit: &'static str,
}

impl<N: Copy + PartialOrd + fmt::Display + std::str::FromStr> Whole<N> {
    fn range(&self) -> String {
        match self.max {
            Some(max) => format!("{} to {max}", self.min),
            None => format!("at least {}", self.min),
        }
    }
}

impl<N: Copy + PartialOrd + fmt::Display + std::str::FromStr> Format for Whole<N> {
    type Value = N;
    const FILE_TYPE: Toml = Toml::Integer;
    fn parse(&self, text: &str) -> Result<N, String> {
        text.trim()
            .parse::<N>()
            .ok()
            .filter(|n| *n >= self.min && self.max.is_none_or(|max| *n <= max))
            .ok_or_else(|| {
                let of = match self.unit {
                    "" => String::new(),
                    unit => format!(" of {unit}"),
                };
                format!(
                    "expected a whole number{of}, {}; got {}",
                    self.range(),
                    text.trim()
                )
            })
    }
    fn show(&self, value: &N) -> Shown {
        Shown::Value(value.to_string())
    }
    fn accepts(&self) -> String {
        match self.unit {
            "" => self.range(),
            unit => format!("{unit}, {}", self.range()),
        }
    }
}

/// The unit a duration is written in.
#[derive(Clone, Copy)]
enum Unit {
    Seconds,
    Milliseconds,
}

/// A duration: a whole number of seconds or milliseconds within bounds.
struct Span {
    unit: Unit,
    min: u64,
    max: Option<u64>,
}

impl Span {
    fn whole(&self) -> Whole<u64> {
        Whole {
            min: self.min,
            max: self.max,
            unit: match self.unit {
                Unit::Seconds => "seconds",
                Unit::Milliseconds => "milliseconds",
            },
        }
    }
}

impl Format for Span {
    type Value = Duration;
    const FILE_TYPE: Toml = Toml::Integer;
    fn parse(&self, text: &str) -> Result<Duration, String> {
        let n = self.whole().parse(text)?;
        Ok(match self.unit {
            Unit::Seconds => Duration::from_secs(n),
            Unit::Milliseconds => Duration::from_millis(n),
        })
    }
    fn show(&self, value: &Duration) -> Shown {
        Shown::Value(match self.unit {
            Unit::Seconds => value.as_secs().to_string(),
            Unit::Milliseconds => value.as_millis().to_string(),
        })
    }
    fn accepts(&self) -> String {
        self.whole().accepts()
    }
}

/// `true` or `false`; a variable may also say `1`/`0`, `yes`/`no`, `on`/`off`.
struct Flag;

impl Format for Flag {
    type Value = bool;
    const FILE_TYPE: Toml = Toml::Boolean;
    fn parse(&self, text: &str) -> Result<bool, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err("expected true or false".to_owned()),
        }
    }
    fn show(&self, value: &bool) -> Shown {
        Shown::Value(value.to_string())
    }
    fn accepts(&self) -> String {
        "true or false".to_owned()
    }
}

/// One of a few words, exactly.
struct OneOf(&'static [&'static str]);

impl Format for OneOf {
    type Value = String;
    const FILE_TYPE: Toml = Toml::String;
    fn parse(&self, text: &str) -> Result<String, String> {
        if self.0.contains(&text) {
            Ok(text.to_owned())
        } else {
            Err(format!("expected {}", self.accepts()))
        }
    }
    fn show(&self, value: &String) -> Shown {
        Shown::Value(value.clone())
    }
    fn accepts(&self) -> String {
        match self.0.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

/// A rate limit: `COUNT/WINDOW` or `off`.
struct RateLimit;

impl Format for RateLimit {
    type Value = Limit;
    const FILE_TYPE: Toml = Toml::String;
    fn parse(&self, text: &str) -> Result<Limit, String> {
        text.parse()
            .map_err(|e: authgate_core::limits::LimitParseError| e.to_string())
    }
    fn show(&self, value: &Limit) -> Shown {
        Shown::Value(value.to_string())
    }
    fn accepts(&self) -> String {
        "COUNT/WINDOW (window units s, m, h, d) or off".to_owned()
    }
}

/// An IP address.
struct Ip;

impl Format for Ip {
    type Value = IpAddr;
    const FILE_TYPE: Toml = Toml::String;
    fn parse(&self, text: &str) -> Result<IpAddr, String> {
        let text = text.trim();
        text.parse().map_err(|e| format!("{text}: {e}"))
    }
    fn show(&self, value: &IpAddr) -> Shown {
        Shown::Value(value.to_string())
    }
    fn accepts(&self) -> String {
        "IP addresses".to_owned()
    }
}

/// An exact browser origin, normalised (lower case, no default port, no slash).
struct Origin;

impl Format for Origin {
    type Value = String;
    const FILE_TYPE: Toml = Toml::String;
    fn parse(&self, text: &str) -> Result<String, String> {
        crate::cors::normalise_origin(text)
    }
    fn show(&self, value: &String) -> Shown {
        Shown::Value(value.clone())
    }
    fn accepts(&self) -> String {
        "exact origins, scheme://host[:port]".to_owned()
    }
}

/// Several values: comma-separated in a variable, an array of strings in the file.
/// Blank items are skipped.
struct List<F> {
    item: F,
    /// What an empty list means, for the listings.
    empty: &'static str,
}

impl<F: Format> List<F> {
    fn items<'a>(&self, items: impl Iterator<Item = &'a str>) -> Result<Vec<F::Value>, String> {
        items
            .filter(|item| !item.trim().is_empty())
            .map(|item| self.item.parse(item))
            .collect()
    }
}

impl<F: Format> Format for List<F> {
    type Value = Vec<F::Value>;
    const FILE_TYPE: Toml = Toml::Array;
    fn parse(&self, text: &str) -> Result<Self::Value, String> {
        self.items(text.split(','))
    }
    fn read(&self, raw: &Raw) -> Result<Self::Value, String> {
        match raw {
            Raw::Text(text) => self.parse(text),
            Raw::List(items) => self.items(items.iter().map(String::as_str)),
        }
    }
    fn show(&self, value: &Self::Value) -> Shown {
        if value.is_empty() {
            return Shown::Absent(self.empty);
        }
        let items: Vec<String> = value
            .iter()
            .map(|v| self.item.show(v).to_string())
            .collect();
        Shown::Value(items.join(","))
    }
    fn accepts(&self) -> String {
        format!(
            "comma-separated {} (an array in the file)",
            self.item.accepts()
        )
    }
}

/// A value that may be left out; `unset` says what leaving it out means.
struct Optional<F> {
    inner: F,
    unset: &'static str,
}

impl<F: Format> Format for Optional<F> {
    type Value = Option<F::Value>;
    const FILE_TYPE: Toml = F::FILE_TYPE;
    fn parse(&self, text: &str) -> Result<Self::Value, String> {
        self.inner.parse(text).map(Some)
    }
    fn read(&self, raw: &Raw) -> Result<Self::Value, String> {
        self.inner.read(raw).map(Some)
    }
    fn show(&self, value: &Self::Value) -> Shown {
        match value {
            Some(v) => self.inner.show(v),
            None => Shown::Absent(self.unset),
        }
    }
    fn accepts(&self) -> String {
        self.inner.accepts()
    }
}

/// Where `build` takes each setting's value from.
trait Source {
    /// Why a value could not be had.
    type Error;
    /// The setting's value.
    fn value<F: Format>(&mut self, setting: &Setting<F>) -> Result<F::Value, Self::Error>;
}

/// Every setting at its default.
struct Defaults;

impl Source for Defaults {
    type Error = Infallible;
    fn value<F: Format>(&mut self, setting: &Setting<F>) -> Result<F::Value, Infallible> {
        Ok((setting.default)())
    }
}

/// A variable that is set and not empty, else the file's key, else the default.
struct Layered<'a, E> {
    env: E,
    file: Option<&'a ConfigFile>,
}

impl<E: Fn(&str) -> Option<String>> Source for Layered<'_, E> {
    type Error = ConfigError;
    fn value<F: Format>(&mut self, setting: &Setting<F>) -> Result<F::Value, ConfigError> {
        // An empty variable counts as unset: a shell or a compose file cannot
        // always leave one out.
        if let Some(text) = (self.env)(setting.var).filter(|v| !v.is_empty()) {
            return setting
                .format
                .read(&Raw::Text(text))
                .map_err(|reason| ConfigError::Invalid {
                    name: setting.var.to_owned(),
                    reason,
                });
        }
        let in_file = self
            .file
            .zip(setting.key)
            .and_then(|(file, key)| file.values.get(key).map(|raw| (file, key, raw)));
        match in_file {
            Some((file, key, raw)) => {
                setting
                    .format
                    .read(raw)
                    .map_err(|reason| ConfigError::InFile {
                        path: file.path.clone(),
                        key: key.to_owned(),
                        reason,
                    })
            }
            None => Ok((setting.default)()),
        }
    }
}

/// A config file, read and checked against [`SETTINGS`]: every key known and of its
/// TOML type. Its `Debug` shows the keys, never the values.
pub struct ConfigFile {
    path: PathBuf,
    values: BTreeMap<&'static str, Raw>,
}

impl ConfigFile {
    /// Reads and checks the file at `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Checks `text`, the contents of the file at `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Toml {
            path: path.to_owned(),
            reason: toml_reason(text, &e),
        })?;
        let mut values = BTreeMap::new();
        for (key, value) in table {
            let refused = |reason: String| ConfigError::InFile {
                path: path.to_owned(),
                key: key.clone(),
                reason,
            };
            let Some((known, setting)) = SETTINGS
                .iter()
                .find_map(|s| s.key().filter(|k| *k == key).map(|k| (k, s)))
            else {
                return Err(refused(
                    "unknown key (the keys are the variables' names in lower case, without \
                     AUTHGATE_)"
                        .to_owned(),
                ));
            };
            values.insert(
                known,
                raw_value(value, setting.file_type()).map_err(refused)?,
            );
        }
        Ok(Self {
            path: path.to_owned(),
            values,
        })
    }
}

impl fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A file value as text, if it has the TOML type `expected`; the error does not
/// repeat the value, which may be a secret.
fn raw_value(value: toml::Value, expected: Toml) -> Result<Raw, String> {
    use toml::Value as V;
    let wrong = || format!("expected {expected}");
    match (expected, value) {
        (Toml::String, V::String(text)) => Ok(Raw::Text(text)),
        (Toml::Integer, V::Integer(n)) => Ok(Raw::Text(n.to_string())),
        (Toml::Boolean, V::Boolean(b)) => Ok(Raw::Text(b.to_string())),
        (Toml::Array, V::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                V::String(text) => Ok(text),
                _ => Err(wrong()),
            })
            .collect::<Result<_, _>>()
            .map(Raw::List),
        _ => Err(wrong()),
    }
}

/// Where and why a file is not TOML. The parser's own message quotes the line,
/// and the line may hold a secret, so only its number is kept.
fn toml_reason(text: &str, e: &toml::de::Error) -> String {
    let Some(start) = e.span().map(|span| span.start) else {
        return e.message().to_owned();
    };
    let before = text.get(..start).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("line {line}, column {column}: {}", e.message())
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
            ("AUTHGATE_CLIENT_SECRET", "too-short"),
            ("AUTHGATE_MAX_BODY_BYTES", "1023"),
            ("AUTHGATE_WEBHOOK_MAX_ATTEMPTS", "0"),
            ("AUTHGATE_WEBHOOK_MAX_ATTEMPTS", "101"),
            ("AUTHGATE_WEBHOOK_RETRY_BASE_MS", "9"),
            ("AUTHGATE_WEBHOOK_RETRY_BASE_MS", "600001"),
            ("AUTHGATE_LOG_FORMAT", "xml"),
            ("AUTHGATE_TLS_CERT", "/etc/authgate/cert.pem"),
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

    #[test]
    fn credentials_in_a_url_are_hidden() {
        assert_eq!(
            without_credentials("redis://:pa/ss@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(
            without_credentials("redis://host:6379"),
            "redis://host:6379"
        );
        assert_eq!(without_credentials("log"), "log");
    }
}
