//! authgate's delivery of events: an accepted code request becomes a
//! `one-time-password-token-request.created` event that reaches every integration
//! observing it, as a signed webhook POST or as an email to the user.
//!
//! Delivery goes through a durable outbox shared by all replicas. The request
//! itself sends nothing: it appends one entry to a stream in the store (in the same
//! round trip as the code), so it answers in the same time whether or not the user
//! exists. Every replica runs a [`Worker`] in one consumer group: it takes new
//! entries, resolves their recipients, tries each integration, logs each try, and
//! acknowledges (and deletes) an entry only once it has been delivered or
//! rescheduled, so nothing accepted is lost when a receiver is down or a replica
//! dies. Failed tries go to a schedule with exponential backoff and jitter and
//! return to the stream when due; entries a dead replica left pending are claimed
//! by another after a grace period.
//!
//! This crate is a client of HTTP (reqwest) and SMTP (lettre); it serves nothing.
//! It depends on `authgate-core` (store, integrations) and `authgate-otp` (codes
//! and their recipients); the gateway depends on it, builds its parts at start-up
//! and runs the worker.
//!
//! # Layout
//!
//! - [`event`]: the typed webhook body ([`Event`]) and its payload, field for
//!   field as the platform sends them.
//! - [`outbox`]: the [`Outbox`]: its entries as stored, the op that enqueues a code
//!   request, every store operation on the outbox (read, claim, acknowledge,
//!   schedule), and the signal that wakes this replica's idle worker.
//! - [`worker`]: the [`Worker`]'s loop: read and claim entries, resolve recipients,
//!   fan out, retry with backoff, log each try; and [`DeliveryConfig`].
//! - [`send`]: the ways out ([`Senders`], built at start-up) and what one try came
//!   to ([`Attempt`], [`Failure`]).
//! - [`webhook`]: the webhook POST, its headers and [`webhook::signature`].
//! - [`email`]: code emails: templates per purpose and locale, SMTP or log transport.

use std::path::PathBuf;
use std::time::Duration;

pub mod email;
pub mod event;
pub mod outbox;
pub mod send;
pub mod webhook;
pub mod worker;

pub use email::{EmailSettings, Mailer};
pub use event::{Event, Payload};
pub use outbox::Outbox;
pub use send::{Attempt, Failure, Senders};
pub use worker::{DeliveryConfig, Worker};

/// A part of delivery that cannot be built, so the gateway must not start.
///
/// The cause is the error's source, so `{:#}` prints both.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The webhook HTTP client (with its timeout and no-redirect policy) could not be built.
    #[error("cannot build the webhook HTTP client ({} s timeout, no redirects)", timeout.as_secs())]
    HttpClient {
        /// How long a receiver may take to answer.
        timeout: Duration,
        /// Why reqwest refused.
        source: reqwest::Error,
    },
    /// `AUTHGATE_SMTP_URL` is not an SMTP URL lettre understands.
    #[error("invalid AUTHGATE_SMTP_URL")]
    SmtpUrl(#[source] lettre::transport::smtp::Error),
    /// `AUTHGATE_EMAIL_TEMPLATES` names something that is not a directory.
    #[error("AUTHGATE_EMAIL_TEMPLATES {} is not a directory", .0.display())]
    Templates(PathBuf),
}
