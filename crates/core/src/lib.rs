//! The core of authgate: what both login schemes share.
//!
//! A gateway replica holds no state of its own: users, secrets with lifetimes,
//! sessions and rate-limit counters all live in a [`store::Store`], which is Redis
//! in production and an in-memory map for trying things out. Scheme crates build
//! their rules from the pieces here and know nothing of HTTP; the gateway crate
//! serves them.
//!
//! # Layout
//!
//! - [`store`]: the trait of atomic operations, key naming with cluster hash tags,
//!   and its two implementations (memory, Redis).
//! - [`ids`]: the ids that cross crate boundaries (realm, profile, user,
//!   credential, account, session), parsed once at the edge.
//! - [`directory`]: the realm, password profiles, users and their credentials.
//! - [`tokens`]: sessions, access and refresh tokens, rotation, revocation.
//! - [`funnel`]: the funnel events schemes report (issued, verified, burnt, ...).
//! - [`integrations`]: where events are delivered, and the delivery logs.
//! - [`limits`]: rate limits shared through the store.
//! - [`password`]: Argon2id hashing of passwords at rest.
//! - [`recent`]: a replica's short memory of rarely changing reads.
//! - [`crypto`]: random secrets, digests, constant-time comparison, sealing.
//! - [`text`]: the request path's short strings, built without `format!`.

pub mod crypto;
pub mod directory;
pub mod funnel;
pub mod ids;
pub mod integrations;
pub mod limits;
pub mod password;
pub mod recent;
pub mod store;
pub mod text;
pub mod tokens;
