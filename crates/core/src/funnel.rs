//! Funnel events: what the schemes report as keys and codes move through their
//! lives, for whoever counts them (the gateway's metrics).

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
