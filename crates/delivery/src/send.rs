//! The ways out, and what one try came to.
//!
//! [`Senders`] holds the webhook HTTP client and the mailer. Both are built once,
//! at start-up, and building either can fail ([`crate::StartupError`]): a gateway
//! whose webhook client lost its timeout or its no-redirect policy, or whose
//! SMTP URL is unusable, does not start. Each try of a delivery, by either way,
//! comes to an [`Attempt`], which the worker logs and acts on.

use crate::email::Mailer;
use crate::webhook::WebhookClient;
use crate::worker::DeliveryConfig;
use crate::StartupError;

/// The webhook client and the mailer, built at start-up.
#[derive(Debug, Clone)]
pub struct Senders {
    pub(crate) webhook: WebhookClient,
    pub(crate) mailer: Mailer,
}

impl Senders {
    /// The webhook client (with `config.timeout` and no redirects) beside `mailer`.
    pub fn new(config: &DeliveryConfig, mailer: Mailer) -> Result<Self, StartupError> {
        Ok(Self {
            webhook: WebhookClient::new(config.timeout)?,
            mailer,
        })
    }
}

/// What one try of one delivery came to, as the delivery log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The receiver's HTTP status or the SMTP server's reply code, if it answered.
    pub status_code: Option<u16>,
    /// The start of the receiver's answer (at most 1 KiB; empty for email).
    pub body: String,
    /// Why it was not delivered; `None` when it was.
    pub failure: Option<Failure>,
}

impl Attempt {
    /// A delivered try.
    pub fn delivered(status_code: Option<u16>, body: String) -> Self {
        Self {
            status_code,
            body,
            failure: None,
        }
    }

    /// A failed try.
    pub fn failed(status_code: Option<u16>, body: String, failure: Failure) -> Self {
        Self {
            status_code,
            body,
            failure: Some(failure),
        }
    }

    /// Whether the receiver took it.
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }
}

/// Why a try failed, and whether another could succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Worth trying again later: no answer, a non-2xx answer, a 4xx SMTP reply.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot mend it: no mail transport, a bad address, a 5xx SMTP
    /// reply, a broken template.
    #[error("{0}")]
    Permanent(String),
}

impl Failure {
    /// A failure retrying cannot mend.
    pub fn permanent(detail: impl Into<String>) -> Self {
        Self::Permanent(detail.into())
    }

    /// A failure worth retrying.
    pub fn transient(detail: impl Into<String>) -> Self {
        Self::Transient(detail.into())
    }

    /// What went wrong, for the delivery log.
    pub fn detail(&self) -> &str {
        match self {
            Self::Transient(d) | Self::Permanent(d) => d,
        }
    }

    /// Whether retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent(_))
    }
}
