//! The documented properties of the directory's checks of usernames and
//! application names, as checks that panic on a violation: shared by the
//! proptest run (`directory_properties.rs`) and the cargo-fuzz target
//! (`fuzz/fuzz_targets/directory_username.rs`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use authgate_core::directory::{check_application, Directory, PasswordProfile, UsernameFormat};
use authgate_core::ids::ProfileId;

fn profile(format: UsernameFormat, application: Option<&str>) -> PasswordProfile {
    PasswordProfile {
        id: ProfileId::new(),
        name: "p".into(),
        username_format: format,
        enable_one_time_password_token: true,
        voximplant_application: application.map(str::to_owned),
        created_at: "2024-01-01T00:00:00Z".into(),
        updated_at: "2024-01-01T00:00:00Z".into(),
    }
}

/// The three kinds of profile whose usernames are checked differently.
pub fn profiles() -> [PasswordProfile; 3] {
    [
        profile(UsernameFormat::Any, None),
        profile(UsernameFormat::Any, Some("shop.acme")),
        profile(UsernameFormat::Email, None),
    ]
}

/// Checks `raw` as a username in every kind of profile: what is accepted is
/// 1 to 255 bytes, trimmed, without control characters; an email (lowercase,
/// with a local part, a dotted domain and no space) in an email profile; without
/// `@` in a profile exposed to web phone login; as sent (trimmed) otherwise; and
/// the canonical form is a fixed point: a stored username checks as itself.
pub fn check_usernames(raw: &str) {
    for p in profiles() {
        let Ok(u) = Directory::check_username(&p, raw) else {
            continue;
        };
        let what = format!("{raw:?} in {:?} as {u:?}", p.username_format);
        assert!(!u.is_empty() && u.len() <= 255, "{what}: length");
        assert_eq!(u.trim(), u, "{what}: untrimmed");
        assert!(!u.chars().any(char::is_control), "{what}: control");
        match (p.username_format, &p.voximplant_application) {
            (UsernameFormat::Email, _) => {
                let (local, domain) = u.split_once('@').expect("an email has an @");
                assert!(!local.is_empty() && domain.contains('.'), "{what}");
                assert!(!u.contains(' '), "{what}: space");
                assert_eq!(u.to_lowercase(), u, "{what}: not lowercase");
            }
            (UsernameFormat::Any, Some(_)) => assert!(!u.contains('@'), "{what}: @"),
            (UsernameFormat::Any, None) => assert_eq!(u, raw.trim(), "{what}: changed"),
        }
        assert_eq!(
            Directory::check_username(&p, &u).ok().as_deref(),
            Some(u.as_str()),
            "{what}: canonical form refused or changed"
        );
    }
}

/// Checks `raw` as a web phone application: what is accepted is the trimmed,
/// lowercased input, two labels of 1 to 63 characters of `[a-z0-9-]`, and
/// checks as itself.
pub fn check_application_name(raw: &str) {
    let Ok(a) = check_application(raw) else {
        return;
    };
    let labels: Vec<&str> = a.split('.').collect();
    assert_eq!(labels.len(), 2, "{raw:?}: {a:?}");
    for label in labels {
        assert!((1..=63).contains(&label.len()), "{raw:?}: {a:?}");
        assert!(
            label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{raw:?}: {a:?}"
        );
    }
    assert_eq!(check_application(&a).ok().as_deref(), Some(a.as_str()));
    assert_eq!(a, raw.trim().to_ascii_lowercase());
}
