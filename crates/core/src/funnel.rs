//! Funnel events: what the schemes report as keys and codes move through their
//! lives, for whoever counts them (the gateway's metrics).
//!
//! A scheme holds a [`Funnel`]: its name in the funnels and the [`Observer`]
//! told of each [`Stage`] it reaches.

use std::sync::Arc;

/// The stages of a scheme's funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// A key or code was handed out.
    Issued,
    /// A code reached its integration.
    Delivered,
    /// A login or exchange succeeded.
    Verified,
    /// A wrong hash, password, code or token.
    Failed,
    /// An expired token, or a login that found no live key or code.
    Expired,
    /// A key consumed by a wrong attempt, or a code burnt by its last wrong try.
    Burnt,
    /// A rate limit refused the request.
    Throttled,
}

impl Stage {
    /// The label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Stage::Issued => "issued",
            Stage::Delivered => "delivered",
            Stage::Verified => "verified",
            Stage::Failed => "failed",
            Stage::Expired => "expired",
            Stage::Burnt => "burnt",
            Stage::Throttled => "throttled",
        }
    }
}

/// The one-time login key scheme's name in funnels.
pub const ONE_TIME_KEY: &str = "one_time_key";
/// The one-time password token scheme's name in funnels.
pub const ONE_TIME_PASSWORD: &str = "one_time_password";

/// Receives funnel events.
pub trait Observer: Send + Sync + 'static {
    /// `scheme` reached `stage` once.
    fn observe(&self, scheme: &'static str, stage: Stage);
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ignore;

impl Observer for Ignore {
    fn observe(&self, _: &'static str, _: Stage) {}
}

/// A scheme's funnel: its name and whoever is told of the stages it reaches.
#[derive(Clone)]
pub struct Funnel {
    scheme: &'static str,
    observer: Arc<dyn Observer>,
}

impl std::fmt::Debug for Funnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Funnel")
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

impl Funnel {
    /// The funnel of `scheme` (such as [`ONE_TIME_KEY`]), telling nobody yet.
    pub fn new(scheme: &'static str) -> Self {
        Self {
            scheme,
            observer: Arc::new(Ignore),
        }
    }

    /// The same funnel, telling `observer` instead.
    pub fn observed_by(self, observer: Arc<dyn Observer>) -> Self {
        Self { observer, ..self }
    }

    /// The scheme reached `stage` once.
    pub fn saw(&self, stage: Stage) {
        self.observer.observe(self.scheme, stage);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Seen(Mutex<Vec<(&'static str, Stage)>>);

    impl Observer for Seen {
        fn observe(&self, scheme: &'static str, stage: Stage) {
            if let Ok(mut seen) = self.0.lock() {
                seen.push((scheme, stage));
            }
        }
    }

    #[test]
    fn a_funnel_tells_its_observer_each_stage_under_the_scheme_s_name() {
        let seen = Arc::new(Seen::default());
        let funnel = Funnel::new(ONE_TIME_KEY);
        funnel.saw(Stage::Issued);
        let funnel = funnel.observed_by(seen.clone());
        funnel.saw(Stage::Verified);
        funnel.clone().saw(Stage::Burnt);
        let seen = seen.0.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(
            seen,
            [
                (ONE_TIME_KEY, Stage::Verified),
                (ONE_TIME_KEY, Stage::Burnt)
            ]
        );
    }
}
