//! Properties of the directory's checks of usernames (by a profile's username
//! format) and of web phone application names, over arbitrary and structured
//! input: no panic, what is accepted is in canonical form within the documented
//! bounds, and checking a canonical form again gives it back unchanged (so a
//! stored username is always one the same check accepts).
//!
//! The checks are in `oracle/`, which the `fuzz/` workspace's `directory_username`
//! target runs with coverage guidance, on nightly; this is their bounded run on
//! stable, with structured input besides.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod oracle;

use oracle::{check_application_name, check_usernames};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_usernames_never_panic_and_what_is_accepted_is_canonical(raw in any::<String>()) {
        check_usernames(&raw);
    }

    #[test]
    fn email_like_usernames_never_panic_and_what_is_accepted_is_canonical(
        local in "[a-zA-Z0-9._%+ \u{130}\u{212a}ẞΣ-]{0,40}",
        domain in "[a-zA-Z0-9. \u{130}-]{0,30}",
        pad in "[ \t]{0,2}",
    ) {
        check_usernames(&format!("{pad}{local}@{domain}{pad}"));
    }

    #[test]
    fn usernames_around_the_length_bound_never_panic_and_stay_bounded(
        unit in "[a-zA-Z\u{130}\u{212a}ẞé]",
        n in 60usize..300,
        domain in "[a-z]{1,3}\\.[a-z]{2,3}",
    ) {
        let long = unit.repeat(n);
        check_usernames(&long);
        check_usernames(&format!("{long}@{domain}"));
        check_usernames(&format!("a@{domain}{long}"));
    }

    #[test]
    fn arbitrary_application_names_never_panic_and_what_is_accepted_is_canonical(
        raw in prop_oneof![any::<String>(), "[ a-zA-Z0-9._İK\u{212a}-]{0,80}"],
    ) {
        check_application_name(&raw);
    }
}
