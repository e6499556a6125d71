//! Password hashing at rest: Argon2id in PHC string form, with the crate's
//! default (OWASP-recommended) parameters.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The shortest password the directory accepts.
pub const MIN_PASSWORD_LEN: usize = 8;
/// The longest password the directory accepts (bounds hashing work).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Hashes `password` with a fresh salt. CPU-heavy: call it off the async workers.
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_else(|e| unreachable!("argon2 with default parameters failed: {e}"))
}

/// Whether `password` matches the PHC string `phc` (false for a malformed string).
/// CPU-heavy: call it off the async workers.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A PHC string for a password nobody knows, so that a login for an unknown user
/// costs the same hashing work as one for a known user.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(&crate::crypto::random_token::<24>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsE", &h));
        assert!(!verify("correct horse", "not a phc string"));
    }
}
