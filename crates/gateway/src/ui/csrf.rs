//! Forms' anti-CSRF tokens and the pages' cookies.
//!
//! A double-submit design that keeps no server state: a page with a form makes
//! sure the browser holds a random nonce in an `HttpOnly`, `SameSite=Strict`
//! cookie (`__Host-authgate-csrf` over HTTPS, `authgate-csrf` over plain HTTP,
//! where the `__Host-` prefix is not allowed), and puts
//! `HMAC(token secret, nonce)` in the form. A `POST` passes only when its form
//! field equals the HMAC of the nonce its cookie carries (compared in constant
//! time). Another site can make a browser post, but cannot read or set our
//! cookie, nor compute the HMAC without the gateway's token secret; every replica
//! shares that secret, so a form served by one replica posts to another.
//!
//! The same module reads and writes the cookie that remembers a page's
//! `return_to` between the code request and the emailed link.

use authgate_core::crypto::{ct_eq, random_token, Keyring};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use poem::http::header;
use poem::Request;

/// Characters of a nonce (32 random bytes, URL-safe base64).
const NONCE_LEN: usize = 43;

/// Issues and checks the forms' tokens.
#[derive(Clone)]
pub struct Csrf {
    keyring: Keyring,
    secure: bool,
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Csrf")
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

/// A request's value of the cookie `name`, if it sent one.
pub fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// A cookie's name: `__Host-` prefixed when the pages are served over HTTPS.
pub fn cookie_name(secure: bool, name: &str) -> String {
    if secure {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    }
}

/// A `Set-Cookie` value for the whole host, `HttpOnly`, `Secure` over HTTPS.
pub fn set_cookie(
    secure: bool,
    name: &str,
    value: &str,
    same_site: &str,
    max_age: Option<u64>,
) -> String {
    let mut c = format!(
        "{}={value}; Path=/; HttpOnly; SameSite={same_site}",
        cookie_name(secure, name)
    );
    if let Some(secs) = max_age {
        c.push_str(&format!("; Max-Age={secs}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

fn well_formed(nonce: &str) -> bool {
    nonce.len() == NONCE_LEN
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Csrf {
    /// Tokens keyed by `keyring` (the gateway's token secret); `secure` when the
    /// pages are served over HTTPS.
    pub fn new(keyring: Keyring, secure: bool) -> Self {
        Self { keyring, secure }
    }

    /// The request's nonce, and the `Set-Cookie` that gives the browser a fresh
    /// one when it sent none (or a malformed one).
    pub fn nonce(&self, req: &Request) -> (String, Option<String>) {
        match cookie(req, &cookie_name(self.secure, "authgate-csrf")) {
            Some(n) if well_formed(n) => (n.to_owned(), None),
            _ => {
                let n = random_token::<32>();
                let set = set_cookie(self.secure, "authgate-csrf", &n, "Strict", None);
                (n, Some(set))
            }
        }
    }

    /// The form token for `nonce`.
    pub fn token(&self, nonce: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.keyring.mac("ui csrf", &[nonce.as_bytes()]))
    }

    /// Whether `presented` (the form's field) is the token of the nonce the
    /// request's cookie carries.
    pub fn check(&self, req: &Request, presented: Option<&str>) -> bool {
        let Some(nonce) = cookie(req, &cookie_name(self.secure, "authgate-csrf")) else {
            return false;
        };
        let Some(presented) = presented else {
            return false;
        };
        well_formed(nonce) && ct_eq(self.token(nonce).as_bytes(), presented.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use secrecy::SecretString;

    use super::*;

    fn csrf() -> Csrf {
        Csrf::new(
            Keyring::new(SecretString::from(
                "a test secret of at least 32 chars".to_owned(),
            )),
            false,
        )
    }

    #[test]
    fn a_token_passes_only_with_the_cookie_it_was_made_for() {
        let c = csrf();
        let bare = Request::builder().finish();
        let (nonce, set) = c.nonce(&bare);
        let set = set.unwrap();
        assert!(set.starts_with(&format!(
            "authgate-csrf={nonce}; Path=/; HttpOnly; SameSite=Strict"
        )));
        let token = c.token(&nonce);
        let with = |cookie: &str| Request::builder().header(header::COOKIE, cookie).finish();
        let good = with(&format!("other=1; authgate-csrf={nonce}"));
        assert!(c.check(&good, Some(&token)));
        assert_eq!(c.nonce(&good), (nonce.clone(), None), "the cookie is kept");
        assert!(!c.check(&good, None));
        assert!(!c.check(&good, Some("")));
        assert!(!c.check(&good, Some(&c.token(&random_token::<32>()))));
        assert!(!c.check(&bare, Some(&token)), "no cookie, no pass");
        let other = random_token::<32>();
        assert!(!c.check(&with(&format!("authgate-csrf={other}")), Some(&token)));
        // Another secret makes other tokens.
        let elsewhere = Csrf::new(
            Keyring::new(SecretString::from(
                "another secret of at least 32 chars".to_owned(),
            )),
            false,
        );
        assert!(!elsewhere.check(&good, Some(&token)));
    }

    #[test]
    fn over_https_the_cookie_is_host_only_and_secure() {
        let set = set_cookie(true, "authgate-csrf", "n", "Strict", None);
        assert_eq!(
            set,
            "__Host-authgate-csrf=n; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
    }
}
