//! Cross-origin requests from browser frontends, and `OPTIONS`.
//!
//! Only exact origins from `AUTHGATE_CORS_ALLOWED_ORIGINS` get
//! `Access-Control-Allow-Origin`; any other origin is served as before, without
//! CORS headers, so its page cannot read the answer (the browser's rule), while
//! servers and SDKs that send an `Origin` of their own keep working. With no
//! origins configured the gateway sends no CORS header at all. `OPTIONS` on a
//! known path answers 204 with `Allow`, and a preflight from an allowed origin
//! gets the methods of that path and the request headers the API reads.

use std::collections::HashSet;
use std::sync::Arc;

use poem::http::header::{self, HeaderMap, HeaderValue};
use poem::http::{Method, StatusCode};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};

use crate::api::document::Routes;

/// Request headers the API reads, allowed in preflights.
const ALLOW_HEADERS: &str =
    "authorization, content-type, ep-account-management-authentication-token";
/// Answer headers a page may read.
const EXPOSE_HEADERS: &str =
    "retry-after, www-authenticate, x-auth-user, x-auth-user-id, x-auth-realm, x-auth-scheme";
/// How long a browser may keep a preflight's answer (Chromium caps it at two hours).
const MAX_AGE_SECS: &str = "600";

/// Which origins may read the gateway's answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsPolicy {
    origins: HashSet<String>,
    credentials: bool,
}

impl CorsPolicy {
    /// A policy for these origins (already normalised by [`normalise_origin`]).
    pub fn new(origins: impl IntoIterator<Item = String>, credentials: bool) -> Self {
        Self {
            origins: origins.into_iter().collect(),
            credentials,
        }
    }

    fn allows(&self, origin: &str) -> bool {
        self.origins.contains(origin)
    }
}

/// An origin as browsers send it (`https://app.example.com`, `http://127.0.0.1:3000`),
/// or why the text is not one: lowercase, no path, no default port.
pub fn normalise_origin(text: &str) -> Result<String, String> {
    let t = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = t
        .split_once("://")
        .ok_or_else(|| format!("{text:?} is not an origin like https://app.example.com"))?;
    let default_port = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return Err(format!("{text:?}: only http and https origins")),
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', '*', ' ']) {
        return Err(format!(
            "{text:?} is not an exact origin (scheme://host[:port], no path or wildcard)"
        ));
    }
    let host = rest.strip_suffix(default_port).unwrap_or(rest);
    Ok(format!("{scheme}://{host}"))
}

/// Answers `OPTIONS` and preflights, and marks answers to allowed origins.
pub fn cors<E: Endpoint + 'static>(
    ep: E,
    policy: Option<CorsPolicy>,
    routes: Arc<Routes>,
) -> impl Endpoint<Output = Response> {
    let policy = Arc::new(policy.filter(|p| !p.origins.is_empty()));
    ep.around(move |ep, req: Request| {
        let policy = policy.clone();
        let routes = routes.clone();
        async move {
            let origin = match (policy.as_ref(), req.header(header::ORIGIN)) {
                (Some(p), Some(o)) if p.allows(o) => Some(o.to_owned()),
                _ => None,
            };
            if req.method() == Method::OPTIONS {
                if let Some(methods) = routes.allowed(req.uri().path()) {
                    return Ok(options(&req, &methods, policy.as_ref().as_ref(), origin));
                }
            }
            let mut resp = match ep.call(req).await {
                Ok(r) => r.into_response(),
                Err(e) => e.into_response(),
            };
            if let Some(p) = policy.as_ref() {
                mark(&mut resp, p, origin.as_deref());
            }
            Ok(resp)
        }
    })
}

fn options(
    req: &Request,
    methods: &[String],
    policy: Option<&CorsPolicy>,
    origin: Option<String>,
) -> Response {
    let methods = methods.join(", ");
    let mut resp = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::ALLOW, methods.as_str())
        .finish();
    let Some(policy) = policy else {
        return resp;
    };
    let wanted = req.header(header::ACCESS_CONTROL_REQUEST_METHOD);
    let preflight_ok = wanted.is_some_and(|m| methods.split(", ").any(|x| x == m));
    let h = resp.headers_mut();
    h.insert(
        header::VARY,
        HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        ),
    );
    if preflight_ok && allow(h, policy, origin.as_deref()) {
        if let Ok(v) = HeaderValue::from_str(&methods) {
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE_SECS),
        );
    }
    resp
}

fn mark(resp: &mut Response, policy: &CorsPolicy, origin: Option<&str>) {
    let h = resp.headers_mut();
    // The answer depends on the Origin whenever CORS is on: caches must know.
    h.append(header::VARY, HeaderValue::from_static("origin"));
    if allow(h, policy, origin) {
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
    }
}

/// Lets `origin` (an allowed one, or none) read the answer; whether it did.
fn allow(h: &mut HeaderMap, policy: &CorsPolicy, origin: Option<&str>) -> bool {
    let Some(origin) = origin.and_then(|o| HeaderValue::from_str(o).ok()) else {
        return false;
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if policy.credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_as_browsers_send_them() {
        assert_eq!(
            normalise_origin(" https://App.Example.com/ ").as_deref(),
            Ok("https://app.example.com")
        );
        assert_eq!(
            normalise_origin("https://app.example.com:443").as_deref(),
            Ok("https://app.example.com")
        );
        assert_eq!(
            normalise_origin("http://127.0.0.1:3000").as_deref(),
            Ok("http://127.0.0.1:3000")
        );
        for bad in [
            "*",
            "app.example.com",
            "https://app.example.com/login",
            "https://*.example.com",
            "ftp://x.test",
            "https://",
        ] {
            assert!(normalise_origin(bad).is_err(), "{bad}");
        }
    }
}
