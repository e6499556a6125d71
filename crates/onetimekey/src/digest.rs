//! The MD5 formula of the one-time login key scheme.
//!
//! `HA1 = MD5("<user>:voximplant.com:<password>")` and the login hash is
//! `MD5("<key>|<HA1>")`, each the lowercase hex of the UTF-8 bytes. `<user>` is the
//! bare user, without `@app.account...`; the realm string is always `voximplant.com`.

use md5::{Digest, Md5};

/// The fixed realm string inside HA1.
pub const REALM: &str = "voximplant.com";

/// The MD5 of `parts` one after the other, lowercase hex (no string is built
/// for the whole: a login computes one of these).
fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// `MD5("<user>:voximplant.com:<password>")`, lowercase hex.
pub fn ha1(user: &str, password: &str) -> String {
    md5_hex(&[user, ":", REALM, ":", password])
}

/// `MD5("<key>|<ha1>")`, lowercase hex: what the customer's backend computes.
pub fn key_response(key: &str, ha1: &str) -> String {
    md5_hex(&[key, "|", ha1])
}

/// Whether `s` is 32 hex digits (an MD5 in hex, either case).
pub fn is_md5_hex(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answers computed independently (coreutils `md5sum` over the same bytes),
    // so a change to the formula, the separator or the encoding fails here.
    #[test]
    fn ha1_matches_known_answers() {
        assert_eq!(ha1("myuser", "mypass"), "2b46f850be1e592abfbd5504b038ac33");
        assert_eq!(
            ha1("myuser", "mypass123"),
            "ed0b761222371ac9eab34bbfb26e474b"
        );
        // Non-ASCII user and password: UTF-8 bytes, no normalisation.
        assert_eq!(
            ha1("jürgen", "pässwörd"),
            "0ca1f9d85a2e5dc0ed8df770d63c862b"
        );
        assert_eq!(
            ha1("用户", "密码密码密码密码"),
            "78f394a499a83bc5d53aeb2a61b459cb"
        );
    }

    #[test]
    fn key_response_matches_known_answers() {
        let h = ha1("myuser", "mypass");
        assert_eq!(
            key_response("f3a5c3f6b0e1c6a1c2d3e4f5a6b7c8d9", &h),
            "1e359e51620d71540f35419668fd0ddd"
        );
    }

    #[test]
    fn md5_hex_shapes_are_recognised() {
        assert!(is_md5_hex("cb6fea7ef0e2c0ff845a6b86a7d6a23f"));
        assert!(is_md5_hex("CB6FEA7EF0E2C0FF845A6B86A7D6A23F"));
        assert!(!is_md5_hex("cb6fea7ef0e2c0ff845a6b86a7d6a23"));
        assert!(!is_md5_hex("zb6fea7ef0e2c0ff845a6b86a7d6a23f"));
    }
}
