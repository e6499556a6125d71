//! Properties of the web phone username parser ([`WebUsername::parse`]), over
//! arbitrary and structured input: it never panics, everything it accepts has the
//! documented shape and prints back to itself, every documented form of a user
//! names the same user, and malformed names are refused.
//!
//! The checks of what is accepted are in `oracle/`, which the `fuzz/` workspace's
//! `username` target runs with coverage guidance, on nightly; this is their
//! bounded run on stable, with structured input besides.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod oracle;

use authgate_core::directory::check_application;
use authgate_onetimekey::username::UsernameError;
use authgate_onetimekey::WebUsername;
use oracle::{check_accepted, check_username};
use proptest::prelude::*;

/// A user part as a user types it: no `@`, no control characters, not starting
/// with white space (the whole name is trimmed), 1 to 300 bytes.
fn user_part() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._+-]{1,40}",
        "[^@\\p{Cc}]{1,60}",
        // Around the 255-byte bound.
        (250usize..260).prop_map(|n| "u".repeat(n)),
        (60usize..75).prop_map(|n| "ü".repeat(n)),
    ]
    .prop_filter("no leading white space", |u| {
        u.trim_start() == u.as_str() && !u.is_empty()
    })
}

/// A DNS-ish label as the parser accepts it, in any case.
fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9-]{1,63}"
}

/// Upper-cases the letters where `mask` says so.
fn recase(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// Strings near the grammar: mostly the characters that matter to it.
fn near_grammar() -> impl Strategy<Value = String> {
    "[ a-zA-Z0-9@.n_\\-\t\u{0}\u{7f}é\u{2028}İ]{0,48}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_never_panics_and_what_is_accepted_is_well_formed(raw in any::<String>()) {
        check_username(&raw);
    }

    #[test]
    fn input_near_the_grammar_never_panics_and_what_is_accepted_is_well_formed(raw in near_grammar()) {
        check_username(&raw);
    }

    #[test]
    fn every_documented_form_names_the_same_user(
        user in user_part(),
        app in label(),
        account in label(),
        node in 0u32..100,
        mask in any::<u64>(),
        pad_left in "[ \t]{0,2}",
        pad_right in "[ \t\u{3000}]{0,2}",
    ) {
        let application = format!("{app}.{account}");
        let forms = [
            format!("{user}@{application}"),
            format!("{user}@{}", recase(&application, mask)),
            format!("{user}@{application}.voximplant.com"),
            format!("{user}@{}", recase(&format!("{application}.voximplant.com"), mask)),
            format!("{user}@{application}.n{node}.voximplant.com"),
            format!("{pad_left}{user}@{application}.N{node}.VOXIMPLANT.COM{pad_right}"),
        ];
        let want = WebUsername::parse(&forms[0]);
        // The user part is bounded; everything else about these forms is valid.
        prop_assert_eq!(want.is_ok(), user.len() <= 255, "{:?}", forms[0]);
        for form in &forms {
            prop_assert_eq!(&WebUsername::parse(form), &want, "{:?}", form);
        }
        if let Ok(u) = want {
            check_accepted(&forms[0], &u);
            // The user is kept as sent; the application compares without case.
            prop_assert_eq!(u.user(), user.as_str());
            prop_assert_eq!(u.application(), application.to_ascii_lowercase());
        }
    }

    #[test]
    fn malformed_names_are_refused(
        user in user_part(),
        app in label(),
        account in label(),
        extra in label(),
        bad_node in "[a-mo-z][0-9]{0,3}|n|n[0-9]*[a-z][0-9a-z]*",
        bad_char in "[^a-zA-Z0-9\\-.]",
        long in 64usize..100,
        control in "\\p{Cc}",
    ) {
        let application = format!("{app}.{account}");
        let refused = [
            // No @, or nothing before it.
            format!("{user}{application}"),
            format!("@{application}"),
            // One label, three labels, or an empty one.
            format!("{user}@{app}"),
            format!("{user}@{application}.{extra}"),
            format!("{user}@{app}..{account}"),
            format!("{user}@.{application}"),
            format!("{user}@{application}."),
            // A node label that is not `n` and digits.
            format!("{user}@{application}.{bad_node}.voximplant.com"),
            // A label too long, or with a character outside [a-zA-Z0-9-].
            format!("{user}@{}.{account}", "a".repeat(long)),
            format!("{user}@{app}{bad_char}.{account}"),
            // A control character in the user.
            format!("{user}{control}x@{application}"),
            // A user longer than 255 bytes.
            format!("{}@{application}", "u".repeat(256)),
        ];
        for raw in &refused {
            prop_assert_eq!(WebUsername::parse(raw), Err(UsernameError), "{:?}", raw);
        }
    }

    #[test]
    fn every_application_the_directory_accepts_can_log_in(
        app in "[ a-zA-Z0-9.\\-_]{1,20}",
        user in "[a-z0-9]{1,8}",
    ) {
        // A profile's application (checked by the directory) and the application
        // parsed out of a login name agree, or its users could never log in.
        if let Ok(application) = check_application(&app) {
            let u = WebUsername::parse(&format!("{user}@{application}.voximplant.com"));
            prop_assert_eq!(u.map(|u| u.application().to_owned()), Ok(application));
        }
    }
}
