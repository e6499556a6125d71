//! The one-time code and its purpose.

use std::fmt;

use authgate_core::crypto::random_bytes;

/// How many characters a code has.
pub const CODE_LEN: usize = 6;
const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A code: six characters of `[a-z0-9]` (about 31 bits).
#[derive(Clone, PartialEq, Eq)]
pub struct OneTimeCode(String);

/// A string that is not a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("one_time_password_token must be 6 characters of a-z and 0-9")]
pub struct CodeError;

impl OneTimeCode {
    /// A fresh code from the gateway's cryptographically secure generator
    /// ([`random_bytes`]), each character uniform.
    pub fn generate() -> Self {
        let mut out = String::with_capacity(CODE_LEN);
        while out.len() < CODE_LEN {
            let buf = random_bytes::<16>();
            // 252 = 7 * 36: rejecting larger bytes keeps every character equally likely.
            for b in buf.iter().filter(|b| **b < 252) {
                if out.len() == CODE_LEN {
                    break;
                }
                out.push(ALPHABET[usize::from(*b % 36)] as char);
            }
        }
        Self(out)
    }

    /// Parses what a user typed: surrounding spaces and upper case are forgiven.
    pub fn parse(raw: &str) -> Result<Self, CodeError> {
        let s = raw.trim().to_ascii_lowercase();
        if s.len() == CODE_LEN && s.bytes().all(|b| ALPHABET.contains(&b)) {
            Ok(Self(s))
        } else {
            Err(CodeError)
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeCode(******)")
    }
}

/// What a code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Resetting a forgotten password.
    ResetPassword,
    /// Logging in without a password.
    PasswordlessAuthentication,
}

/// A purpose that is neither.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("purpose must be reset_password or passwordless_authentication")]
pub struct PurposeError;

impl Purpose {
    /// Parses the wire name.
    pub fn parse(s: &str) -> Result<Self, PurposeError> {
        match s {
            "reset_password" => Ok(Self::ResetPassword),
            "passwordless_authentication" => Ok(Self::PasswordlessAuthentication),
            _ => Err(PurposeError),
        }
    }

    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ResetPassword => "reset_password",
            Self::PasswordlessAuthentication => "passwordless_authentication",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn generated_codes_have_the_documented_shape() {
        for _ in 0..1000 {
            let c = OneTimeCode::generate();
            assert_eq!(c.as_str().len(), 6);
            assert!(c
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
            assert_eq!(OneTimeCode::parse(c.as_str()), Ok(c));
        }
    }

    #[test]
    fn generated_characters_are_spread_over_the_whole_alphabet() {
        let mut seen: HashMap<char, usize> = HashMap::new();
        for _ in 0..6000 {
            for ch in OneTimeCode::generate().as_str().chars() {
                *seen.entry(ch).or_default() += 1;
            }
        }
        assert_eq!(seen.len(), 36);
        // 36000 draws over 36 symbols: about 1000 each; a biased generator falls far out.
        assert!(seen.values().all(|n| (800..1200).contains(n)), "{seen:?}");
    }

    #[test]
    fn typed_codes_are_forgiven_case_and_spaces_but_nothing_else() {
        assert_eq!(
            OneTimeCode::parse(" LPRVJ4 ").map(|c| c.as_str().to_owned()),
            Ok("lprvj4".into())
        );
        for bad in ["", "lprvj", "lprvj45", "lprv-4", "lprvjä", "l p r v"] {
            assert_eq!(OneTimeCode::parse(bad), Err(CodeError), "{bad:?}");
        }
    }

    #[test]
    fn a_code_never_prints() {
        let c = OneTimeCode::generate();
        assert!(!format!("{c:?}").contains(c.as_str()));
    }

    #[test]
    fn purposes_parse_their_wire_names_only() {
        assert_eq!(Purpose::parse("reset_password"), Ok(Purpose::ResetPassword));
        assert_eq!(
            Purpose::parse("passwordless_authentication").map(|p| p.as_str()),
            Ok("passwordless_authentication")
        );
        assert_eq!(Purpose::parse("login"), Err(PurposeError));
    }
}
