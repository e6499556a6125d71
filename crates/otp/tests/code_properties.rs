//! Properties of the one-time code parser ([`OneTimeCode::parse`]) and of
//! purposes, over arbitrary and structured input: no panic, exactly the
//! documented codes are accepted (six characters of `[a-z0-9]`, forgiving
//! surrounding white space and upper case), and what is accepted round-trips.
//!
//! The checks are in `oracle/`, which the `fuzz/` workspace's `otp_code` target
//! runs with coverage guidance, on nightly; this is their bounded run on stable,
//! with structured input besides.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod oracle;

use authgate_otp::code::CodeError;
use authgate_otp::OneTimeCode;
use oracle::{check_code, check_purpose, documented};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_is_accepted_exactly_when_documented(raw in any::<String>()) {
        check_code(&raw);
    }

    #[test]
    fn input_near_a_code_is_accepted_exactly_when_documented(
        raw in "[ \t\u{a0}\u{3000}a-zA-Z0-9_äİK\u{212a}-]{0,10}",
    ) {
        check_code(&raw);
    }

    #[test]
    fn typed_codes_are_forgiven_case_and_surrounding_space(
        code in "[a-z0-9]{6}",
        mask in any::<u8>(),
        left in "[ \t\r\n\u{3000}]{0,3}",
        right in "[ \t\r\n\u{a0}]{0,3}",
    ) {
        let typed: String = code
            .chars()
            .enumerate()
            .map(|(i, c)| if mask >> i & 1 == 1 { c.to_ascii_uppercase() } else { c })
            .collect();
        let parsed = OneTimeCode::parse(&format!("{left}{typed}{right}"));
        prop_assert_eq!(parsed.map(|c| c.as_str().to_owned()), Ok(code));
    }

    #[test]
    fn wrong_lengths_and_foreign_characters_are_refused(
        short in "[a-z0-9]{0,5}",
        long in "[a-z0-9]{7,40}",
        code in "[a-z0-9]{6}",
        at in 0usize..6,
        foreign in "[^a-zA-Z0-9\\s]",
    ) {
        prop_assert_eq!(OneTimeCode::parse(&short), Err(CodeError));
        prop_assert_eq!(OneTimeCode::parse(&long), Err(CodeError));
        let mut bad = code.clone();
        bad.replace_range(at..at + 1, &foreign);
        prop_assert_eq!(OneTimeCode::parse(&bad), Err(CodeError), "{:?}", bad);
        // Inner white space is not forgiven.
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        prop_assert_eq!(OneTimeCode::parse(&spaced), Err(CodeError));
    }

    #[test]
    fn purposes_are_exactly_their_wire_names(raw in "[a-z_]{0,30}|reset_password|passwordless_authentication|\\PC{0,30}") {
        check_purpose(&raw);
    }
}

#[test]
fn generated_codes_parse_back_to_themselves() {
    for _ in 0..2000 {
        let code = OneTimeCode::generate();
        assert_eq!(documented(code.as_str()).as_deref(), Some(code.as_str()));
        assert_eq!(OneTimeCode::parse(code.as_str()), Ok(code));
    }
}
