//! `Directory::check_username` (in profiles of every username format) and
//! `check_application` on any UTF-8 input: no panic, and what they accept is
//! canonical, within the bounds, and checks as itself
//! (`crates/core/tests/oracle/mod.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/core/tests/oracle/mod.rs"]
mod oracle;

fuzz_target!(|raw: &str| {
    oracle::check_usernames(raw);
    oracle::check_application_name(raw);
});
