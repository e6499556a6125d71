//! authgate's HTTP gateway: both login schemes, the directory and the token checks
//! behind one OpenAPI document, plus configuration and the `authgate` binary.
//!
//! The gateway knows HTTP and nothing of Redis commands: it calls the core's
//! services and the scheme crates, and maps their outcomes to each dialect's wire
//! format in one place per dialect. Delivery of events (the outbox, its worker,
//! webhooks and code emails) is its own crate, `authgate_delivery`, which the
//! gateway builds at start-up ([`state`]) and runs beside the server ([`startup`]).
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
//! - [`demo`]: the `--demo` seed data.
//! - [`metrics`]: Prometheus metrics of requests and of the schemes' funnels.
//! - [`platform`]: the web phone SDK's `/platform` WebSocket (scheme A, SPEC §1b).
//! - [`server`]: the HTTP server under the routes: connection timeouts, the cap on
//!   open connections, graceful shutdown.
//! - [`ui`]: the hosted pages under `/ui/` (sign in with a code, confirm an
//!   emailed link, reset a password), server-rendered, outside the OpenAPI document.

pub mod api;
pub mod config;
pub mod cors;
pub mod demo;
pub mod errors;
pub mod metrics;
pub mod platform;
pub mod server;
pub mod startup;
pub mod state;
pub mod ui;

pub use config::Config;
pub use startup::Application;
