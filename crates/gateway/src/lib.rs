//! authgate's HTTP gateway: both login schemes, the directory and the token checks
//! behind one OpenAPI document, plus configuration and the `authgate` binary.
//!
//! The gateway knows HTTP and nothing of Redis commands: it calls the core's
//! services and the scheme crates, and maps their outcomes to each dialect's wire
//! format in one place per dialect.
//!
//! # Layout
//!
//! - [`config`]: settings from a TOML file and `AUTHGATE_*` variables.
//! - [`state`]: the store, the services and bootstrapping of shared secrets.
//! - [`startup`]: [`startup::Application`], which binds, announces and serves.
//! - [`api`]: the endpoints, one module per group, and the OpenAPI document.
//! - [`cors`]: CORS for browser frontends, and `OPTIONS`.
//! - [`errors`]: error bodies in each dialect, and the middleware that shapes
//!   errors no handler saw.
//! - [`delivery`]: the outbox and the worker that delivers events to integrations.
//! - [`demo`]: the `--demo` seed data.
//! - [`email`]: code emails: templates, and SMTP or log transport.
//! - [`metrics`]: Prometheus metrics of requests and of the schemes' funnels.
//! - [`platform`]: the web phone SDK's `/platform` WebSocket (scheme A, SPEC §1b).

pub mod api;
pub mod config;
pub mod cors;
pub mod delivery;
pub mod demo;
pub mod email;
pub mod errors;
pub mod metrics;
pub mod platform;
pub mod startup;
pub mod state;

pub use config::Config;
pub use startup::Application;
