//! The formats: how a setting's text becomes its value, the one parse that a
//! variable and the file both go through, and how a default is shown.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use authgate_core::limits::Limit;
use secrecy::SecretString;

use super::settings::{Shown, Toml};
use super::sources::Raw;

/// How a setting's text becomes its value: the one parse both sources go through.
pub(super) trait Format {
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
pub(super) struct Text(pub(super) &'static str);

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
pub(super) struct FilePath(pub(super) &'static str);

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
pub(super) struct Addr;

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
pub(super) struct Secret {
    pub(super) what: &'static str,
    pub(super) min_len: usize,
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
pub(super) struct Whole<N> {
    pub(super) min: N,
    pub(super) max: Option<N>,
    /// What it counts, for the listings; empty for a bare number.
    pub(super) unit: &'static str,
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
pub(super) enum Unit {
    Seconds,
    Milliseconds,
}

/// A duration: a whole number of seconds or milliseconds within bounds.
pub(super) struct Span {
    pub(super) unit: Unit,
    pub(super) min: u64,
    pub(super) max: Option<u64>,
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
pub(super) struct Flag;

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
pub(super) struct OneOf(pub(super) &'static [&'static str]);

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
pub(super) struct RateLimit;

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
pub(super) struct Ip;

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
pub(super) struct Origin;

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
pub(super) struct List<F> {
    pub(super) item: F,
    /// What an empty list means, for the listings.
    pub(super) empty: &'static str,
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
pub(super) struct Optional<F> {
    pub(super) inner: F,
    pub(super) unset: &'static str,
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

/// An http(s) URL the gateway is reached at, without query or fragment; kept
/// without a trailing slash.
pub(super) struct PublicUrl;

impl Format for PublicUrl {
    type Value = String;
    const FILE_TYPE: Toml = Toml::String;
    fn parse(&self, text: &str) -> Result<String, String> {
        crate::ui::returns::normalise_public_url(text)
    }
    fn show(&self, value: &String) -> Shown {
        Shown::Value(value.clone())
    }
    fn accepts(&self) -> String {
        "an http(s) URL, e.g. https://auth.example.com (a path prefix is kept)".to_owned()
    }
}

/// An allowed `return_to` of the hosted pages: an http(s) URL (origin and path
/// prefix), normalised as browsers parse it.
pub(super) struct ReturnUrl;

impl Format for ReturnUrl {
    type Value = String;
    const FILE_TYPE: Toml = Toml::String;
    fn parse(&self, text: &str) -> Result<String, String> {
        crate::ui::returns::normalise_allowed(text)
    }
    fn show(&self, value: &String) -> Shown {
        Shown::Value(value.clone())
    }
    fn accepts(&self) -> String {
        "http(s) URLs, scheme://host[:port]/path (no query or fragment)".to_owned()
    }
}
