//! `OneTimeCode::parse` and `Purpose::parse` on any UTF-8 input: exactly the
//! documented codes and purposes are accepted, and they round-trip
//! (`crates/otp/tests/oracle/mod.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/otp/tests/oracle/mod.rs"]
mod oracle;

fuzz_target!(|raw: &str| {
    oracle::check_code(raw);
    oracle::check_purpose(raw);
});
