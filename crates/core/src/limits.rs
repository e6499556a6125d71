//! Rate limits shared by all replicas through the store: fixed windows counted by
//! the store ([`Batch::count`]), written as `COUNT/WINDOW` (`20/10m`) or `off`;
//! and [`AddressLimiter`], the one per-address limit every login-related request
//! goes through.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::store::{Batch, Count, Handle, Keys, StoreError};

/// At most `count` events per `window`, or no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Events allowed per window; 0 means no limit.
    pub count: u64,
    /// The window's length.
    pub window: Duration,
}

/// A limit that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid rate limit {0:?}: expected COUNT/WINDOW such as 20/10m (units s, m, h, d) or off")]
pub struct LimitParseError(String);

impl Limit {
    /// No limit at all.
    pub const OFF: Limit = Limit {
        count: 0,
        window: Duration::from_secs(1),
    };

    /// `count` events per `window`.
    pub const fn new(count: u64, window: Duration) -> Self {
        Self { count, window }
    }

    /// Whether the limit is switched off.
    pub fn is_off(&self) -> bool {
        self.count == 0
    }

    /// Whether `seen` events (this one included) exceed the limit.
    pub fn exceeded_by(&self, seen: u64) -> bool {
        !self.is_off() && seen > self.count
    }
}

impl FromStr for Limit {
    type Err = LimitParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || LimitParseError(s.to_owned());
        let t = s.trim();
        if t.eq_ignore_ascii_case("off") {
            return Ok(Limit::OFF);
        }
        let (count, window) = t.split_once('/').ok_or_else(err)?;
        let count: u64 = count.trim().parse().map_err(|_| err())?;
        let window = window.trim();
        let split = window
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(window.len());
        let (n, unit) = window.split_at(split);
        let n: u64 = if n.is_empty() {
            1
        } else {
            n.parse().map_err(|_| err())?
        };
        let secs = match unit {
            "s" | "" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            _ => return Err(err()),
        };
        if count == 0 || n == 0 {
            return Err(err());
        }
        Ok(Limit::new(count, Duration::from_secs(n * secs)))
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            return f.write_str("off");
        }
        let s = self.window.as_secs();
        let (n, unit) = match s {
            _ if s.is_multiple_of(86400) => (s / 86400, "d"),
            _ if s.is_multiple_of(3600) => (s / 3600, "h"),
            _ if s.is_multiple_of(60) => (s / 60, "m"),
            _ => (s, "s"),
        };
        write!(f, "{}/{n}{unit}", self.count)
    }
}

/// The gateway's limits (SPEC §4), each overridable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Key and code requests per username, known or not.
    pub requests_per_user: Limit,
    /// Wrong hashes, passwords and codes per username.
    pub guesses_per_user: Limit,
    /// Login-related requests per client address.
    pub per_ip: Limit,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            requests_per_user: Limit::new(20, Duration::from_secs(600)),
            guesses_per_user: Limit::new(10, Duration::from_secs(900)),
            per_ip: Limit::new(600, Duration::from_secs(60)),
        }
    }
}

/// A request refused by a limit, with when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Time until the window resets (what `Retry-After` says).
    pub retry_after: Duration,
}

impl Throttled {
    /// `Retry-After` in whole seconds, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// The per-client-address limit (`AUTHGATE_LIMIT_PER_IP`), shared by every
/// replica: one counter per address and bucket (logins and client
/// authentication are counted apart), queued with the request's own reads.
#[derive(Debug, Clone)]
pub struct AddressLimiter {
    keys: Keys,
    limit: Limit,
}

/// An address's count queued on a batch ([`AddressLimiter::count_in`]); the
/// default counts nothing.
#[derive(Debug, Default)]
pub struct AddressCount(Option<Handle<Count>>);

impl AddressLimiter {
    /// A limiter of `limit` per address.
    pub fn new(keys: Keys, limit: Limit) -> Self {
        Self { keys, limit }
    }

    /// Queues one request from `address` in `bucket` (nothing when the limit is off).
    pub fn count_in(&self, batch: &mut Batch, bucket: &str, address: &str) -> AddressCount {
        AddressCount(
            (!self.limit.is_off())
                .then(|| batch.count(self.keys.address(bucket, address), self.limit.window)),
        )
    }

    /// Whether the counted request may go on: `Err` of the store, or of the limit.
    pub fn verdict(&self, counted: AddressCount) -> Result<Result<(), Throttled>, StoreError> {
        let Some(handle) = counted.0 else {
            return Ok(Ok(()));
        };
        let c = handle.get()?;
        Ok(if self.limit.exceeded_by(c.count) {
            Err(Throttled {
                retry_after: c.reset,
            })
        } else {
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_from_the_documented_forms() {
        assert_eq!(
            "20/10m".parse(),
            Ok(Limit::new(20, Duration::from_secs(600)))
        );
        assert_eq!(
            "600/1m".parse(),
            Ok(Limit::new(600, Duration::from_secs(60)))
        );
        assert_eq!("5/s".parse(), Ok(Limit::new(5, Duration::from_secs(1))));
        assert_eq!("3/2h".parse(), Ok(Limit::new(3, Duration::from_secs(7200))));
        assert_eq!("off".parse(), Ok(Limit::OFF));
        for bad in ["", "20", "x/1m", "20/1y", "0/1m", "20/0m", "-1/1m"] {
            assert!(bad.parse::<Limit>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn limits_print_as_they_parse() {
        for s in ["20/10m", "10/15m", "600/1m", "7/3h", "2/1d", "9/45s", "off"] {
            assert_eq!(s.parse::<Limit>().map(|l| l.to_string()).as_deref(), Ok(s));
        }
    }

    #[test]
    fn a_limit_is_exceeded_only_past_its_count() {
        let l = Limit::new(2, Duration::from_secs(1));
        assert!(!l.exceeded_by(2));
        assert!(l.exceeded_by(3));
        assert!(!Limit::OFF.exceeded_by(1_000_000));
    }
}
