//! The documented properties of the web phone username parser, as checks that
//! panic on a violation: shared by the proptest run (`username_properties.rs`)
//! and the cargo-fuzz target (`fuzz/fuzz_targets/username.rs`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use authgate_core::directory::check_application;
use authgate_onetimekey::WebUsername;

/// Parses `raw`; anything accepted must have the documented shape.
pub fn check_username(raw: &str) -> Option<WebUsername> {
    let u = WebUsername::parse(raw).ok()?;
    check_accepted(raw, &u);
    Some(u)
}

/// What every accepted username looks like: a user of 1 to 255 bytes without
/// `@` or control characters, an application of two lowercase labels of 1 to 63
/// characters of `[a-z0-9-]` that the directory accepts as a profile's
/// application; and its canonical form (`user@app.account`) parses back to it.
pub fn check_accepted(raw: &str, u: &WebUsername) {
    let user = u.user();
    assert!(
        !user.is_empty() && user.len() <= 255,
        "{raw:?}: user {user:?}"
    );
    assert!(!user.contains('@'), "{raw:?}: user {user:?}");
    assert!(
        !user.chars().any(char::is_control),
        "{raw:?}: user {user:?}"
    );
    let labels: Vec<&str> = u.application().split('.').collect();
    assert_eq!(
        labels.len(),
        2,
        "{raw:?}: application {:?}",
        u.application()
    );
    for label in labels {
        assert!(
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{raw:?}: label {label:?}"
        );
    }
    let canonical = u.to_string();
    assert_eq!(canonical, format!("{user}@{}", u.application()));
    assert_eq!(
        WebUsername::parse(&canonical).as_ref(),
        Ok(u),
        "{raw:?}: canonical {canonical:?}"
    );
    assert_eq!(
        check_application(u.application()).ok().as_deref(),
        Some(u.application()),
        "{raw:?}: the directory refuses its application"
    );
}
