//! The one-time login key scheme of web phone SDKs.
//!
//! A browser asks for a key for `user@app.account.voximplant.com`; the customer's
//! backend, which keeps only `HA1 = MD5("user:voximplant.com:password")`, answers
//! `MD5("key|HA1")`; the browser logs in with that. A key lives five minutes, a new
//! one voids the old, and any login attempt consumes it. The same users can also log
//! in with their password (or its HA1), with an access token, and refresh tokens.
//!
//! This crate holds the rules, not the transport: the gateway serves them over REST
//! and over the SDK's WebSocket protocol alike.
//!
//! # Layout
//!
//! - [`username`]: the accepted username forms, parsed into (user, application).
//! - [`digest`]: the MD5 formula (HA1 and the key response), with known answers.
//! - [`service`]: key requests and the logins, on the core's store, directory,
//!   token service and limits.

pub mod digest;
pub mod service;
pub mod username;

pub use service::{Failure, KeyScheme, KeySchemeConfig, LoggedIn};
pub use username::WebUsername;
