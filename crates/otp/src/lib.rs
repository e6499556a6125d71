//! One-time password tokens of the commerce platform's API.
//!
//! A user asks for a code for (password profile, username, purpose); the code, six
//! characters of `[a-z0-9]`, reaches them through an integration (a webhook, an
//! email); they exchange it once, within ten minutes, for an account management
//! authentication token, to log in without a password or to reset it. A new
//! request replaces the earlier code, and five wrong tries burn it. Codes are kept
//! only as keyed digests.
//!
//! This crate holds the rules and knows nothing of HTTP or of delivery: the gateway
//! serves the endpoints, and the delivery crate hands issued codes on.
//!
//! # Layout
//!
//! - [`code`]: the code and the purpose, parsed and generated.
//! - [`service`]: the scheme on the core's store and directory: code requests
//!   and who their codes go to; its `exchange` submodule, the token exchange by
//!   code or password.

pub mod code;
pub mod service;

pub use code::{OneTimeCode, Purpose};
pub use service::{CodeRequest, IssuedCode, Member, OtpConfig, OtpError, OtpScheme};
