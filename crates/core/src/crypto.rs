//! Small cryptographic helpers: random secrets, digests at rest, constant-time
//! comparison, sealing of secrets that must be recovered, and key derivation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// `N` random bytes from a cryptographically secure generator: the thread's
/// ChaCha12 generator (`rand`'s `ThreadRng`), seeded and periodically reseeded
/// from the operating system's. Asking the kernel for every nonce, session id and
/// token cost a system call each, four per login.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::thread_rng().fill_bytes(&mut out);
    out
}

/// A random URL-safe string carrying `N` bytes of entropy.
pub fn random_token<const N: usize>() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<N>())
}

/// The digest kept at rest for a high-entropy secret (a token): SHA-256, URL-safe base64.
pub fn digest(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// Constant-time equality of two byte strings (the length is not hidden).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A stable, opaque tag for (scope, who), used as a Redis hash tag so that keys
/// name no user. Not a secret: it only has to be stable and collision-free.
pub fn tag(scope: &str, who: &str) -> String {
    let mut h = Sha256::new();
    h.update(scope.as_bytes());
    h.update([0u8]);
    h.update(who.as_bytes());
    URL_SAFE_NO_PAD.encode(&h.finalize()[..18])
}

/// The gateway's root secret and what is derived from it.
///
/// One secret (`AUTHGATE_TOKEN_SECRET`) keys the account-token signatures, the
/// derivation of login keys from the nonces kept in the store, and the sealing of
/// recoverable secrets (HA1). Each use gets its own subkey.
#[derive(Clone)]
pub struct Keyring {
    root: SecretString,
    seal: [u8; 32],
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(..)")
    }
}

/// HMAC-SHA256 under one label's subkey ([`Keyring::mac_key`]). Each MAC starts
/// from a copy of the keyed state, so the subkey's derivation and the HMAC's key
/// schedule are paid once, not per call.
#[derive(Clone)]
pub struct MacKey(HmacSha256);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl MacKey {
    /// HMAC-SHA256 of `parts`, joined by NUL.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                mac.update(&[0]);
            }
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

/// A sealed value could not be opened: wrong key, or tampered with.
#[derive(Debug, thiserror::Error)]
#[error("sealed value could not be opened")]
pub struct SealError;

impl Keyring {
    /// A keyring on `root`.
    pub fn new(root: SecretString) -> Self {
        let seal = Self::derive_with(&root, "authgate seal v1");
        Self { root, seal }
    }

    fn derive_with(root: &SecretString, label: &str) -> [u8; 32] {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(root.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A 32-byte subkey for `label`.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        Self::derive_with(&self.root, label)
    }

    /// HMAC-SHA256 of `parts` (joined by NUL) under the subkey for `label`.
    pub fn mac(&self, label: &str, parts: &[&[u8]]) -> [u8; 32] {
        self.mac_key(label).mac(parts)
    }

    /// The subkey for `label`, keyed once: for a caller computing many MACs under
    /// one label ([`Keyring::mac`] derives the subkey again on every call).
    pub fn mac_key(&self, label: &str) -> MacKey {
        let key = self.derive(label);
        MacKey(
            <HmacSha256 as Mac>::new_from_slice(&key)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
        )
    }

    /// Encrypts `plain`, bound to `context` (e.g. the record's id), as URL-safe base64.
    pub fn seal(&self, plain: &[u8], context: &str) -> String {
        let cipher = XChaCha20Poly1305::new((&self.seal).into());
        let nonce = random_bytes::<24>();
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            .unwrap_or_else(|_| unreachable!("encryption of a bounded buffer does not fail"));
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens what [`Keyring::seal`] produced for the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SealError> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| SealError)?;
        if raw.len() < 24 {
            return Err(SealError);
        }
        let (nonce, body) = raw.split_at(24);
        XChaCha20Poly1305::new((&self.seal).into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_sealed_value_opens_only_in_its_own_context() {
        let ring = Keyring::new(SecretString::from("root secret".to_owned()));
        let sealed = ring.seal(b"hello", "cred-1");
        assert_eq!(
            ring.open(&sealed, "cred-1").ok().as_deref(),
            Some(&b"hello"[..])
        );
        assert!(ring.open(&sealed, "cred-2").is_err());
        let other = Keyring::new(SecretString::from("another".to_owned()));
        assert!(other.open(&sealed, "cred-1").is_err());
    }

    #[test]
    fn a_kept_mac_key_gives_the_hmac_of_the_joined_parts_under_the_subkey() {
        let ring = Keyring::new(SecretString::from("root secret".to_owned()));
        // Computed the long way: the subkey, then one HMAC over the NUL-joined parts.
        let reference = |label: &str, joined: &[u8]| -> [u8; 32] {
            let mut m = <HmacSha256 as Mac>::new_from_slice(&ring.derive(label)).unwrap();
            m.update(joined);
            m.finalize().into_bytes().into()
        };
        let key = ring.mac_key("label a");
        let cases: [(&[&[u8]], &[u8]); 3] =
            [(&[], b""), (&[b"x"], b"x"), (&[b"x", b"yz"], b"x\0yz")];
        for (parts, joined) in cases {
            assert_eq!(key.mac(parts), reference("label a", joined));
            // Used again, the kept key starts afresh.
            assert_eq!(key.mac(parts), reference("label a", joined));
            assert_eq!(ring.mac("label a", parts), reference("label a", joined));
            assert_ne!(key.mac(parts), reference("label b", joined));
        }
    }

    #[test]
    fn constant_time_equality_agrees_with_plain_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}
