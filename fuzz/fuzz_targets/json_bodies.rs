//! Every request body type of both dialects, read from any bytes as the
//! handlers read them (`Json<T>`, and the form bodies of
//! `/oauth/access_token` and `/v1/tokens/introspect`): no panic, the documented length bounds hold for what
//! is accepted, and it round-trips (`tests/tests/oracle/bodies.rs`).
//!
//! The first byte picks the type; the rest is the body.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/tests/oracle/bodies.rs"]
mod bodies;

fuzz_target!(|data: &[u8]| {
    let Some((pick, body)) = data.split_first() else {
        return;
    };
    let pick = usize::from(*pick) % (bodies::BODIES.len() + 1);
    match bodies::BODIES.get(pick) {
        Some((_, kind, check)) => check(*kind, body),
        None => bodies::check_forms(body),
    }
});
