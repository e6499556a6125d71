//! The ids that cross crate boundaries, as types: realm, password profile,
//! user, credential, account and session.
//!
//! Each is a small immutable string, built only by [`parse`](ProfileId::parse)
//! (which checks the form authgate gives it) or generated here, so a function
//! that takes a `ProfileId` never sees a username or a path's junk where an id
//! belongs. The gateway parses ids once, at its edge; an id that does not parse
//! names nothing, so it is answered as an unknown one would be.
//!
//! Serialized, an id is its plain string, exactly as stored before the types
//! existed; reading one parses it, as any other edge does.
//!
//! The forms, as generated:
//! - [`RealmId`], [`ProfileId`], [`UserId`], [`CredentialId`], [`AccountId`]: a
//!   UUID in its canonical text (36 characters, lowercase hex and dashes).
//! - [`SessionId`]: 16 random bytes in URL-safe base64 without padding (22
//!   characters), as tokens carry it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::crypto::random_token;

/// Why a string is not an id of some kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Nothing was given.
    #[error("empty {0} id")]
    Empty(&'static str),
    /// Longer than any id of the kind.
    #[error("{0} id longer than {1} characters")]
    TooLong(&'static str, usize),
    /// Not in the form authgate gives ids of the kind.
    #[error("malformed {0} id")]
    Malformed(&'static str),
}

impl IdError {
    /// What the id would have named, as errors say it (`password profile`).
    pub fn what(&self) -> &'static str {
        match self {
            IdError::Empty(what) | IdError::TooLong(what, _) | IdError::Malformed(what) => what,
        }
    }
}

/// The canonical text of a UUID: `8-4-4-4-12` lowercase hex digits.
const UUID_LEN: usize = 36;

fn check_uuid(s: &str, what: &'static str) -> Result<(), IdError> {
    check_len(s, UUID_LEN, what)?;
    let ok = s.len() == UUID_LEN
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        });
    if ok {
        Ok(())
    } else {
        Err(IdError::Malformed(what))
    }
}

/// A session id: `random_token::<16>()`.
const SESSION_LEN: usize = 22;

fn check_session(s: &str, what: &'static str) -> Result<(), IdError> {
    check_len(s, SESSION_LEN, what)?;
    let ok = s.len() == SESSION_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(IdError::Malformed(what))
    }
}

fn check_len(s: &str, max: usize, what: &'static str) -> Result<(), IdError> {
    if s.is_empty() {
        Err(IdError::Empty(what))
    } else if s.len() > max {
        Err(IdError::TooLong(what, max))
    } else {
        Ok(())
    }
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn new_session() -> String {
    random_token::<16>()
}

/// Declares an id type: its parse, its text, and serde as a plain string.
macro_rules! ids {
    ($(
        $(#[$doc:meta])*
        $name:ident: $what:literal, $check:ident, $generate:ident;
    )*) => {$(
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Box<str>);

        impl $name {
            /// What it names, as errors say it.
            pub const WHAT: &'static str = $what;

            /// The id in `s`, if `s` is in the form authgate gives it.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                $check(s, $what)?;
                Ok(Self(s.into()))
            }

            fn from_string(s: String) -> Result<Self, IdError> {
                $check(&s, $what)?;
                Ok(Self(s.into_boxed_str()))
            }

            /// A fresh, random one.
            // Not `Default`: a default that differs on every call would surprise.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self($generate().into_boxed_str())
            }

            /// Its text, as stored and shown.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.into()
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::from_string(String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    )*};
}

ids! {
    /// The authentication realm's id: one per deployment, made by the first
    /// replica to start on a store.
    RealmId: "authentication realm", check_uuid, new_uuid;
    /// A password profile's id.
    ProfileId: "password profile", check_uuid, new_uuid;
    /// A directory user's id (user authentication info), also the account member's.
    UserId: "user authentication info", check_uuid, new_uuid;
    /// A credential's id (user authentication password profile info): a user's
    /// username and password in one profile.
    CredentialId: "user authentication password profile info", check_uuid, new_uuid;
    /// An account member's personal account, the `scope` of their account tokens.
    AccountId: "account", check_uuid, new_uuid;
    /// A session's id: the middle part of its tokens, the `jti` of an account token.
    SessionId: "session", check_session, new_session;
}

impl AccountId {
    /// The account id made from 16 bytes that look random (a keyed digest):
    /// a version-4 UUID like [`AccountId::new`]'s, but the same every time.
    pub fn from_digest(bytes: [u8; 16]) -> Self {
        Self(
            uuid::Builder::from_random_bytes(bytes)
                .into_uuid()
                .to_string()
                .into_boxed_str(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Checks the properties every id type has, over many generated and junk inputs.
    fn holds<T>(new: fn() -> T, parse: fn(&str) -> Result<T, IdError>, max: usize)
    where
        T: fmt::Display + AsRef<str> + PartialEq + fmt::Debug + Serialize,
        T: for<'de> Deserialize<'de>,
    {
        let mut rng = rand::thread_rng();
        for _ in 0..500 {
            // Generated ids parse back to themselves, and serialize as their text.
            let id = new();
            let text = id.to_string();
            assert_eq!(parse(&text).as_ref(), Ok(&id), "{text}");
            assert_eq!(id.as_ref(), text);
            let json = serde_json::to_string(&id).unwrap_or_default();
            assert_eq!(json, format!("\"{text}\""));
            let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, id);

            // Changing any one character to one outside the form refuses it.
            let at = rng.gen_range(0..text.len());
            let junk = ['!', ' ', '/', '.', 'é', '\0', '{', '%', 'Z', 'G'];
            let c = junk[rng.gen_range(0..junk.len())];
            let mut bad = text.clone();
            bad.replace_range(at..at + 1, &c.to_string());
            if let Ok(p) = parse(&bad) {
                // Only a session id takes upper case letters.
                assert!(c == 'Z' || c == 'G', "{bad} parsed as {p:?}");
            }

            // A prefix or an extension of a generated id is refused.
            let cut = rng.gen_range(1..text.len());
            assert!(parse(&text[..cut]).is_err(), "{}", &text[..cut]);
            let longer = format!("{text}{}", &text[..rng.gen_range(1..=text.len())]);
            assert!(matches!(parse(&longer), Err(IdError::TooLong(_, m)) if m == max));

            // Random junk of random length is refused.
            let n = rng.gen_range(0..80);
            let junk: String = (0..n).map(|_| rng.gen_range(' '..='~')).collect();
            if junk.len() != max {
                assert!(parse(&junk).is_err(), "{junk:?}");
            }
        }
        assert!(matches!(parse(""), Err(IdError::Empty(_))));
        assert!(serde_json::from_str::<T>("\"\"").is_err());
        assert!(serde_json::from_str::<T>("\"no-such-profile\"").is_err());
        assert!(serde_json::from_str::<T>("42").is_err());
        assert!(matches!(
            parse(&"a".repeat(10_000)),
            Err(IdError::TooLong(_, m)) if m == max
        ));
    }

    #[test]
    fn uuid_ids_round_trip_and_refuse_everything_else() {
        holds(RealmId::new, RealmId::parse, 36);
        holds(ProfileId::new, ProfileId::parse, 36);
        holds(UserId::new, UserId::parse, 36);
        holds(CredentialId::new, CredentialId::parse, 36);
        holds(AccountId::new, AccountId::parse, 36);
    }

    #[test]
    fn session_ids_round_trip_and_refuse_everything_else() {
        holds(SessionId::new, SessionId::parse, 22);
    }

    #[test]
    fn a_uuid_id_is_the_canonical_lowercase_text_only() {
        let id = "7a4b0a6e-1c2d-4e3f-8a9b-0c1d2e3f4a5b";
        assert_eq!(ProfileId::parse(id).map(|p| p.to_string()), Ok(id.into()));
        for bad in [
            "7A4B0A6E-1C2D-4E3F-8A9B-0C1D2E3F4A5B",
            "7a4b0a6e1c2d4e3f8a9b0c1d2e3f4a5b",
            "{7a4b0a6e-1c2d-4e3f-8a9b-0c1d2e3f4a5b}",
            "7a4b0a6e-1c2d-4e3f-8a9b-0c1d2e3f4a5",
            "7a4b0a6e-1c2d-4e3f-8a9b_0c1d2e3f4a5b",
            " 7a4b0a6e-1c2d-4e3f-8a9b-0c1d2e3f4a5",
            "no-such-profile",
            "nope",
        ] {
            assert!(ProfileId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            UserId::parse("nope"),
            Err(IdError::Malformed("user authentication info"))
        );
    }

    #[test]
    fn a_session_id_is_22_url_safe_characters() {
        assert!(SessionId::parse("AAAAAAAAAAAAAAAAAAAAAA").is_ok());
        assert!(SessionId::parse("abc-_DEF0123456789xyzQ").is_ok());
        for bad in [
            "AAAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAA+A",
            "AAAAAAAAAAAAAAAAAAAA.A",
        ] {
            assert!(SessionId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_error_names_what_the_id_would_have_named() {
        let e = CredentialId::parse("x").err();
        assert_eq!(
            e.map(|e| e.what()),
            Some("user authentication password profile info")
        );
        assert_eq!(
            RealmId::parse("").map_err(|e| e.to_string()),
            Err("empty authentication realm id".to_owned())
        );
    }
}
