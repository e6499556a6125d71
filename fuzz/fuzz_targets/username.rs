//! `WebUsername::parse` on any UTF-8 input: no panic, and what it accepts has
//! the documented shape and prints back to itself
//! (`crates/onetimekey/tests/oracle/mod.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/onetimekey/tests/oracle/mod.rs"]
mod oracle;

fuzz_target!(|raw: &str| {
    oracle::check_username(raw);
});
