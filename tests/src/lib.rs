//! Helpers for the black-box tests: a private `redis-server` per test, the real
//! gateway on port 0 over real sockets, and a client that speaks its API.
//!
//! # Layout
//!
//! - [`redis`]: [`TestRedis`], a private Redis server (or a unique prefix on the
//!   one named by `AUTHGATE_TEST_REDIS_URL`), with ways to read it back raw; TLS
//!   and ACL variants; [`TestCluster`], a private Redis Cluster; [`TestCa`], a
//!   throwaway CA for the TLS ones.
//! - [`app`]: [`spawn_app`] and [`TestApp`], the gateway and its API in test form;
//!   [`spawn_app_on`] for a Redis or Redis Cluster named by URL, [`spawn_starting`]
//!   for a gateway whose store may not answer yet ([`StartingApp`]).
//! - [`smtp`]: [`smtp::SmtpSink`], a real SMTP server that keeps what it receives.
//! - [`webhook`]: [`webhook::Receiver`], a real HTTP server that records deliveries.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod app;
pub mod redis;
pub mod smtp;
pub mod webhook;

pub use app::{
    spawn_app, spawn_app_on, spawn_app_with, spawn_config, spawn_starting, StartingApp, TestApp,
    WebUser,
};
pub use redis::{install_crypto_provider, TestCa, TestCluster, TestRedis};

/// A private Redis for this test, or `return` from the test when none can be had
/// (after [`TestRedis::start`] has said so loudly, or panicked under
/// `AUTHGATE_REQUIRE_REDIS=1`).
#[macro_export]
macro_rules! redis_or_skip {
    () => {
        match $crate::TestRedis::start().await {
            Some(r) => r,
            None => return,
        }
    };
}
