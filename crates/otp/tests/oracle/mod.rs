//! The documented properties of the one-time code and purpose parsers, as
//! checks that panic on a violation: shared by the proptest run
//! (`code_properties.rs`) and the cargo-fuzz target (`fuzz/fuzz_targets/otp_code.rs`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use authgate_otp::code::{CodeError, PurposeError, CODE_LEN};
use authgate_otp::{OneTimeCode, Purpose};

/// What the documentation says a typed code is: after trimming and lower-casing,
/// six characters of `[a-z0-9]`.
pub fn documented(raw: &str) -> Option<String> {
    let s = raw.trim().to_ascii_lowercase();
    (s.len() == CODE_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
    .then_some(s)
}

/// `raw` is accepted exactly when documented, as the documented code; an
/// accepted code parses back to itself and never shows in debug output.
pub fn check_code(raw: &str) {
    let parsed = OneTimeCode::parse(raw);
    assert_eq!(
        parsed.as_ref().map(|c| c.as_str().to_owned()).ok(),
        documented(raw),
        "{raw:?}"
    );
    match parsed {
        Ok(code) => {
            assert_eq!(OneTimeCode::parse(code.as_str()), Ok(code.clone()));
            assert!(!format!("{code:?}").contains(code.as_str()));
        }
        Err(e) => assert_eq!(e, CodeError),
    }
}

/// A purpose is exactly one of its two wire names, and prints as it.
pub fn check_purpose(raw: &str) {
    match Purpose::parse(raw) {
        Ok(p) => {
            assert_eq!(p.as_str(), raw);
            assert_eq!(Purpose::parse(p.as_str()), Ok(p));
        }
        Err(e) => {
            assert_eq!(e, PurposeError);
            assert!(raw != "reset_password" && raw != "passwordless_authentication");
        }
    }
}
