//! Where the hosted pages may send a signed-in person: the `return_to` rule, and
//! the public URL the emailed links start with.
//!
//! Every URL here is parsed as a browser parses it (the WHATWG URL standard, the
//! `url` crate), and what is compared and what is redirected to is that parsed
//! form, never the raw text: host names are lower-cased and IDNA-mapped, default
//! ports dropped, `.` and `..` segments (also written `%2e`) resolved before the
//! path is looked at.
//!
//! The rule. An allowed entry (`AUTHGATE_UI_RETURN_URLS`) is an http(s) URL
//! without user info, query or fragment. A `return_to` matches it when:
//!
//! - it is absolute, http or https, without user info and without a fragment
//!   (the fragment is where the token goes); a query is allowed;
//! - its scheme, host and port equal the entry's (no sub-domains, no suffix
//!   tricks: `https://app.example.com.evil.test` is another host);
//! - its path equals the entry's path, or continues it after a `/`: the entry
//!   `https://app.example.com/cb` allows `/cb`, `/cb/` and `/cb/done` but not
//!   `/cbx` or `/x`; an entry ending in `/` allows what starts with it;
//! - its raw text has no whitespace, control character or backslash, and its
//!   path no percent-encoded `.`, `/` or `\` (which some servers decode after
//!   routing, turning `/cb/%2e%2e%2fadmin` into `/admin`).

use url::Url;

/// Longest `return_to` considered.
const MAX_LEN: usize = 2048;

fn parse_http(text: &str) -> Result<Url, String> {
    let text = text.trim();
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?}: only http and https URLs"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{text:?} must not carry a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must have no query or fragment"));
    }
    Ok(url)
}

/// `AUTHGATE_PUBLIC_URL` as the gateway uses it: an http(s) URL, without a
/// trailing slash (a path prefix, for a proxy that strips one, is kept).
pub fn normalise_public_url(text: &str) -> Result<String, String> {
    let url = parse_http(text)?;
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// An entry of `AUTHGATE_UI_RETURN_URLS`, normalised (see the module's rule).
pub fn normalise_allowed(text: &str) -> Result<String, String> {
    Ok(parse_http(text)?.to_string())
}

/// Why a `return_to` was refused (for the log and the page; never echoed raw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not an absolute http(s) URL, or one with parts the rule forbids.
    Malformed,
    /// Well-formed, but under no allowed entry.
    NotAllowed,
}

/// The allow-list of `return_to`.
#[derive(Debug, Clone, Default)]
pub struct ReturnUrls {
    allowed: Vec<Url>,
}

impl ReturnUrls {
    /// The list from the normalised entries of the setting.
    pub fn new(entries: &[String]) -> Result<Self, String> {
        let allowed = entries
            .iter()
            .map(|e| parse_http(e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { allowed })
    }

    /// The origins of the entries, for the pages' `form-action` (a form whose
    /// answer redirects there must be allowed to).
    pub fn origins(&self) -> Vec<String> {
        let mut origins: Vec<String> = self
            .allowed
            .iter()
            .map(|u| u.origin().ascii_serialization())
            .collect();
        origins.sort();
        origins.dedup();
        origins
    }

    /// The parsed `return_to` when the rule allows it.
    pub fn check(&self, text: &str) -> Result<Url, Refused> {
        if text.len() > MAX_LEN
            || text
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        {
            return Err(Refused::Malformed);
        }
        let url = Url::parse(text).map_err(|_| Refused::Malformed)?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host_str().is_none()
            || !url.username().is_empty()
            || url.password().is_some()
            || url.fragment().is_some()
        {
            return Err(Refused::Malformed);
        }
        let path = url.path().to_ascii_lowercase();
        if ["%2e", "%2f", "%5c"].iter().any(|bad| path.contains(bad)) {
            return Err(Refused::Malformed);
        }
        let allowed = self.allowed.iter().any(|a| {
            a.scheme() == url.scheme()
                && a.host_str() == url.host_str()
                && a.port_or_known_default() == url.port_or_known_default()
                && path_under(a.path(), url.path())
        });
        if allowed {
            Ok(url)
        } else {
            Err(Refused::NotAllowed)
        }
    }
}

/// Whether `path` is `prefix` or continues it after a `/`.
fn path_under(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn list(entries: &[&str]) -> ReturnUrls {
        let normalised: Vec<String> = entries
            .iter()
            .map(|e| normalise_allowed(e).unwrap())
            .collect();
        ReturnUrls::new(&normalised).unwrap()
    }

    #[test]
    fn return_to_must_be_under_an_allowed_origin_and_path() {
        let urls = list(&["https://App.Example.com/cb", "http://127.0.0.1:3000/"]);
        for ok in [
            "https://app.example.com/cb",
            "https://app.example.com:443/cb",
            "https://APP.example.com/cb/done?state=1",
            "https://app.example.com/cb/",
            "https://app.example.com/x/../cb/y",
            "http://127.0.0.1:3000/anything?x=1",
        ] {
            assert!(urls.check(ok).is_ok(), "{ok} should be allowed");
        }
        for (bad, why) in [
            ("https://app.example.com.evil.test/cb", Refused::NotAllowed),
            (
                "https://evil.test/https://app.example.com/cb",
                Refused::NotAllowed,
            ),
            ("https://app.example.com/cbx", Refused::NotAllowed),
            ("https://app.example.com/cb/../x", Refused::NotAllowed),
            ("https://app.example.com/cb/%2e%2e/x", Refused::NotAllowed),
            ("https://app.example.com/cb/%2e%2e%2fx", Refused::Malformed),
            ("https://app.example.com/cb%2F..%2Fx", Refused::Malformed),
            ("http://app.example.com/cb", Refused::NotAllowed),
            ("https://app.example.com:8443/cb", Refused::NotAllowed),
            ("https://user@app.example.com/cb", Refused::Malformed),
            ("https://app.example.com/cb#frag", Refused::Malformed),
            ("https:\\\\app.example.com/cb", Refused::Malformed),
            ("/cb", Refused::Malformed),
            ("//evil.test/cb", Refused::Malformed),
            (
                "javascript:alert(1)//app.example.com/cb",
                Refused::Malformed,
            ),
            (" https://app.example.com/cb", Refused::Malformed),
            ("http://127.0.0.2:3000/", Refused::NotAllowed),
            ("http://127.0.0.1:3001/", Refused::NotAllowed),
        ] {
            assert_eq!(urls.check(bad).err(), Some(why), "{bad}");
        }
        assert!(list(&[]).check("https://app.example.com/cb").is_err());
    }

    #[test]
    fn what_is_redirected_to_is_the_parsed_url() {
        let urls = list(&["https://app.example.com/cb"]);
        assert_eq!(
            urls.check("https://APP.example.com:443/x/../cb?s=1")
                .unwrap()
                .as_str(),
            "https://app.example.com/cb?s=1"
        );
        assert_eq!(urls.origins(), ["https://app.example.com"]);
    }

    #[test]
    fn settings_refuse_what_the_rule_cannot_use() {
        for bad in [
            "app.example.com/cb",
            "ftp://app.example.com/",
            "https://app.example.com/cb?x=1",
            "https://app.example.com/cb#x",
            "https://u:p@app.example.com/",
        ] {
            assert!(normalise_allowed(bad).is_err(), "{bad}");
        }
        assert_eq!(
            normalise_public_url("https://Auth.Example.com/").unwrap(),
            "https://auth.example.com"
        );
        assert_eq!(
            normalise_public_url("http://localhost:8080/auth/").unwrap(),
            "http://localhost:8080/auth"
        );
    }
}
