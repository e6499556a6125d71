//! Hosted pages under `/ui/`: sign in with a one-time code, confirm an emailed
//! link, reset a password. Server-rendered HTML (minijinja), plain forms, no
//! script, nothing loaded from another host, and kept out of the OpenAPI
//! document (they are pages for people, not operations for clients).
//!
//! The pages drive the same services as the API, the same way: a code request is
//! the API's `one-time-password-token-request` (per-username and per-address
//! limits, the funnel, and one uniform answer whether or not the name exists); an
//! exchange is `POST /v2/account-members/tokens` with `passwordless`; a reset is
//! that exchange followed by the credential update the API's member `PUT` makes
//! (`Directory::update_credential`: Argon2id and HA1 replaced, sessions ended),
//! under the same rule (`account_member_self_management` must be `update_only`).
//!
//! Links that mail scanners cannot spend: a `GET` never touches a code, and
//! says nothing of whether one is live (that would be an unlimited guessing
//! oracle). Only the `POST` of a page, with its anti-CSRF token ([`csrf`]),
//! exchanges it.
//!
//! | path | GET | POST |
//! |---|---|---|
//! | `/ui/sign-in` | the username form | requests a code, then 303 to `/ui/sign-in/code` |
//! | `/ui/sign-in/code` | the code form | exchanges the code: 303 to `return_to` or the signed-in page |
//! | `/ui/sign-in/confirm` | the emailed link: "Continue as ..." | exchanges the link's code |
//! | `/ui/reset-password/request` | the username form | requests a reset code, then 303 to `/ui/reset-password` |
//! | `/ui/reset-password` | new password form (the emailed link, or with a code field) | checks the rules, exchanges, sets the password |
//! | `/ui/style.css`, `/ui/assets/<file>` | the stylesheet, the theme's images | |
//!
//! Every page takes `profile` (a password profile id; optional when exactly one
//! profile allows codes), `return_to` (see [`returns`]) and `locale`.
//!
//! # Layout
//!
//! - this module: the routes, the flows and the pages' headers;
//! - [`returns`]: the `return_to` rule and the public URL;
//! - [`csrf`]: forms' tokens and the pages' cookies;
//! - [`templates`]: built-in and overriding templates, locales.

pub mod csrf;
pub mod returns;
pub mod templates;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use authgate_core::directory::{DirectoryError, PasswordProfile, SelfManagement};
use authgate_core::ids::ProfileId;
use authgate_core::limits::Throttled;
use authgate_core::password::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
use authgate_core::store::{Batch, StoreError, StoreExt};
use authgate_otp::{Member, OneTimeCode, OtpError, Purpose};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use poem::http::header::{self, HeaderName, HeaderValue};
use poem::http::{Method, StatusCode};
use poem::web::Data;
use poem::{handler, Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use poem_openapi::OperationId;
use url::Url;

use crate::config::Config;
use crate::state::AppState;
use returns::ReturnUrls;
use templates::Templates;

/// The pages' paths and methods, for the route table (`Allow`, `OPTIONS`).
pub const ROUTES: &[(&str, &[Method])] = &[
    ("/ui", &[Method::GET]),
    ("/ui/", &[Method::GET]),
    ("/ui/style.css", &[Method::GET]),
    ("/ui/assets/{name}", &[Method::GET]),
    ("/ui/sign-in", &[Method::GET, Method::POST]),
    ("/ui/sign-in/code", &[Method::GET, Method::POST]),
    ("/ui/sign-in/confirm", &[Method::GET, Method::POST]),
    ("/ui/reset-password", &[Method::GET, Method::POST]),
    ("/ui/reset-password/request", &[Method::GET, Method::POST]),
];

/// The public URL when none is configured: this listener's address (`localhost`
/// for an address that listens everywhere).
pub fn default_public_url(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "localhost".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("{scheme}://{host}:{}", addr.port())
}

/// What the pages are built from.
#[derive(Debug, Clone)]
pub struct Options {
    returns: ReturnUrls,
    templates: Arc<Templates>,
    /// The path the pages live under, as the browser sees it (`/ui`, or
    /// `/prefix/ui` when the public URL has a path).
    base: String,
    /// Whether the browser reaches the pages over HTTPS (cookies get `__Host-`
    /// and `Secure`).
    secure: bool,
    /// Lifetime of codes, in minutes, for the pages' wording and the cookie.
    otp_ttl_secs: u64,
}

impl Options {
    /// The pages' options from the gateway's settings.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let returns = ReturnUrls::new(&config.ui_return_urls)
            .map_err(|e| anyhow::anyhow!("invalid AUTHGATE_UI_RETURN_URLS: {e}"))?;
        let templates =
            Templates::load(config.ui_templates.as_deref()).map_err(anyhow::Error::msg)?;
        let public = config
            .public_url
            .as_deref()
            .and_then(|u| Url::parse(u).ok());
        let prefix = public
            .as_ref()
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let secure =
            config.tls_cert.is_some() || public.as_ref().is_some_and(|u| u.scheme() == "https");
        Ok(Self {
            returns,
            templates: Arc::new(templates),
            base: format!("{prefix}/ui"),
            secure,
            otp_ttl_secs: config.otp_ttl.as_secs(),
        })
    }
}

/// The pages' shared state.
struct Ui {
    state: Arc<AppState>,
    options: Options,
    csrf: csrf::Csrf,
    csp: HeaderValue,
}

/// The pages under `/ui`, with their headers, and an HTML page for every error
/// (the API's JSON error shapes never reach a person here).
pub fn endpoint(state: Arc<AppState>, options: Options) -> impl Endpoint<Output = Response> {
    let form_action = std::iter::once("'self'".to_owned())
        .chain(options.returns.origins())
        .collect::<Vec<_>>()
        .join(" ");
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    let ui = Arc::new(Ui {
        csrf: csrf::Csrf::new(state.directory.keyring().clone(), options.secure),
        csp: HeaderValue::from_str(&csp)
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
        state,
        options,
    });
    let pages = Route::new()
        .at("/", poem::get(start))
        .at("/style.css", poem::get(style))
        .at("/assets/:name", poem::get(asset))
        .at("/sign-in", poem::get(sign_in_form).post(sign_in_request))
        .at("/sign-in/code", poem::get(code_form).post(code_exchange))
        .at(
            "/sign-in/confirm",
            poem::get(confirm_form).post(confirm_exchange),
        )
        .at(
            "/reset-password/request",
            poem::get(reset_request_form).post(reset_request),
        )
        .at("/reset-password", poem::get(reset_form).post(reset))
        .data(ui.clone());
    pages.around(move |ep, req: Request| {
        let ui = ui.clone();
        async move {
            let operation = operation(req.uri().path());
            let mut resp = match ep.call(req).await {
                Ok(resp) => resp.into_response(),
                Err(err) => {
                    let status = err.status();
                    if status.is_server_error() {
                        tracing::error!(error = %err, "a hosted page failed");
                    }
                    ui.bare_problem(status)
                }
            };
            ui.harden(&mut resp);
            resp.set_data(OperationId(operation));
            Ok(resp)
        }
    })
}

/// The metrics' name of a page.
fn operation(path: &str) -> &'static str {
    match path.trim_end_matches('/') {
        "" => "uiIndex",
        "/style.css" => "uiStyle",
        p if p.starts_with("/assets/") => "uiAsset",
        "/sign-in" => "uiSignIn",
        "/sign-in/code" => "uiSignInCode",
        "/sign-in/confirm" => "uiSignInConfirm",
        "/reset-password/request" => "uiResetPasswordRequest",
        "/reset-password" => "uiResetPassword",
        _ => "uiOther",
    }
}

/// A form's or a query's fields; the first value of a name wins.
#[derive(Debug, Default)]
struct Fields(BTreeMap<String, String>);

impl Fields {
    fn parse(bytes: &[u8]) -> Self {
        let mut map = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(bytes) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Self(map)
    }

    fn query(req: &Request) -> Self {
        Self::parse(req.uri().query().unwrap_or_default().as_bytes())
    }

    async fn form(body: Body) -> Self {
        Self::parse(&body.into_bytes().await.unwrap_or_default())
    }

    /// A field, trimmed; `None` when absent or blank.
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }
}

/// One request to a page: its fields, locale and CSRF nonce.
struct Visit<'a> {
    req: &'a Request,
    fields: Fields,
    locale: String,
    /// The `locale` parameter, when it names a locale the pages have: carried on.
    locale_param: Option<String>,
    nonce: String,
    cookies: Vec<String>,
}

/// What a page is about: the password profile and where to return.
struct Scope {
    profile: Arc<PasswordProfile>,
    return_to: Option<Url>,
}

/// A field's error: the field's id and a message code the templates word.
type FieldErrors = Vec<(&'static str, &'static str)>;

const RETURN_COOKIE: &str = "authgate-return";

impl Ui {
    fn visit<'a>(&self, req: &'a Request, fields: Fields) -> Visit<'a> {
        let templates = &self.options.templates;
        let param = fields.get("locale").filter(|l| templates.has(l));
        let locale = templates.choose(param, req.header(header::ACCEPT_LANGUAGE));
        let (nonce, set) = self.csrf.nonce(req);
        Visit {
            req,
            locale_param: param.map(|_| locale.clone()),
            locale,
            fields,
            nonce,
            cookies: set.into_iter().collect(),
        }
    }

    /// The security headers every answer under `/ui` carries.
    fn harden(&self, resp: &mut Response) {
        let h = resp.headers_mut();
        h.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        );
        if !h.contains_key(header::CACHE_CONTROL) {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }

    /// `base/path?query` with the fields to carry over (empty ones left out).
    fn url(&self, path: &str, params: &[(&str, Option<&str>)]) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                q.append_pair(k, v);
            }
        }
        let q = q.finish();
        let base = &self.options.base;
        if q.is_empty() {
            format!("{base}{path}")
        } else {
            format!("{base}{path}?{q}")
        }
    }

    /// The parameters every page carries on.
    fn carried<'a>(
        &self,
        v: &'a Visit<'_>,
        profile: Option<&'a str>,
        return_to: Option<&'a str>,
    ) -> Vec<(&'static str, Option<&'a str>)> {
        vec![
            ("profile", profile),
            ("return_to", return_to),
            ("locale", v.locale_param.as_deref()),
        ]
    }

    /// Renders `template` with the shared context and `page`'s own.
    fn render(
        &self,
        v: &Visit<'_>,
        status: StatusCode,
        template: &str,
        scope: Option<&Scope>,
        errors: &FieldErrors,
        page: minijinja::Value,
    ) -> Response {
        let profile = scope.map(|s| s.profile.id.as_str());
        let return_to = scope.and_then(|s| s.return_to.as_ref()).map(Url::as_str);
        let carried = self.carried(v, profile, return_to);
        let keep: Vec<minijinja::Value> = carried
            .iter()
            .filter_map(|(k, v)| {
                v.filter(|v| !v.is_empty())
                    .map(|v| minijinja::context! { name => k, value => v })
            })
            .collect();
        let username = v.fields.get("username");
        let mut with_name = carried.clone();
        with_name.push(("username", username));
        let invalid: BTreeMap<&str, &str> = errors.iter().copied().collect();
        let errors: Vec<minijinja::Value> = errors
            .iter()
            .map(|(field, code)| minijinja::context! { field => field, code => code })
            .collect();
        let common = minijinja::context! {
            base => &self.options.base,
            lang => &v.locale,
            csrf => self.csrf.token(&v.nonce),
            keep => keep,
            username => username.unwrap_or_default(),
            min_password => MIN_PASSWORD_LEN,
            minutes => self.options.otp_ttl_secs.div_ceil(60),
            sign_in_url => self.url("/sign-in", &with_name),
            reset_request_url => self.url("/reset-password/request", &with_name),
            errors => errors,
            invalid => invalid,
        };
        // The page's own values win over the shared ones.
        let ctx = minijinja::context! { ..page, ..common };
        let mut resp = match self.options.templates.render(&v.locale, template, ctx) {
            Ok(html) => Response::builder()
                .status(status)
                .content_type("text/html; charset=utf-8")
                .body(html),
            Err(e) => {
                tracing::error!(template, error = %e, "a hosted page's template failed");
                self.bare_problem(StatusCode::INTERNAL_SERVER_ERROR)
            }
        };
        for c in &v.cookies {
            if let Ok(value) = HeaderValue::from_str(c) {
                resp.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        resp
    }

    /// The problem page `problem` (see `problem.html`), with a link to start again.
    fn problem(
        &self,
        v: &Visit<'_>,
        status: StatusCode,
        problem: &str,
        start_again: Option<String>,
        retry_after: Option<u64>,
    ) -> Response {
        let mut resp = self.render(
            v,
            status,
            "problem.html",
            None,
            &Vec::new(),
            minijinja::context! {
                problem => problem,
                start_again_url => start_again,
                retry_after => retry_after,
            },
        );
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }

    /// The problem page for an error no handler saw (unknown page, wrong method).
    fn bare_problem(&self, status: StatusCode) -> Response {
        let problem = match status {
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method",
            s if s.is_client_error() => "form_expired",
            _ => "error",
        };
        let ctx = minijinja::context! {
            base => &self.options.base,
            lang => templates::DEFAULT_LOCALE,
            problem => problem,
            start_again_url => format!("{}/sign-in", self.options.base),
        };
        let html = self
            .options
            .templates
            .render(templates::DEFAULT_LOCALE, "problem.html", ctx)
            .unwrap_or_else(|_| {
                "<!doctype html><html lang=\"en\"><title>Error</title><main><h1>Something went wrong</h1></main></html>".to_owned()
            });
        let mut resp = Response::builder()
            .status(status)
            .content_type("text/html; charset=utf-8")
            .body(html);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        }
        resp
    }

    fn start_again(&self, v: &Visit<'_>, page: &str) -> String {
        let carried = vec![
            ("profile", v.fields.get("profile")),
            ("return_to", v.fields.get("return_to")),
            ("locale", v.locale_param.as_deref()),
            ("username", v.fields.get("username")),
        ];
        self.url(page, &carried)
    }

    /// What a failed call of the services shows.
    fn failure(&self, v: &Visit<'_>, e: OtpError, page: &str) -> Response {
        match e {
            OtpError::Throttled(t) => self.throttled(v, t, page),
            OtpError::Unavailable => self.problem(
                v,
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                None,
                Some(1),
            ),
            OtpError::ProfileNotFound | OtpError::NotEnabled => {
                self.problem(v, StatusCode::NOT_FOUND, "setup", None, None)
            }
            OtpError::Unauthorized | OtpError::Invalid(_) => {
                let again = self.start_again(v, page);
                self.problem(v, StatusCode::BAD_REQUEST, "link", Some(again), None)
            }
            OtpError::Internal(reason) => {
                tracing::error!(%reason, "internal error on a hosted page");
                self.problem(v, StatusCode::INTERNAL_SERVER_ERROR, "error", None, None)
            }
        }
    }

    fn throttled(&self, v: &Visit<'_>, t: Throttled, page: &str) -> Response {
        let again = self.start_again(v, page);
        self.problem(
            v,
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            Some(again),
            Some(t.retry_after_secs()),
        )
    }

    fn store_failure(&self, v: &Visit<'_>, e: StoreError, page: &str) -> Response {
        self.failure(v, OtpError::from(e), page)
    }

    fn directory_failure(&self, v: &Visit<'_>, e: DirectoryError, page: &str) -> Response {
        match e {
            DirectoryError::Store(s) => self.store_failure(v, s, page),
            DirectoryError::NotFound(_) => self.failure(v, OtpError::ProfileNotFound, page),
            other => self.failure(v, OtpError::Internal(other.to_string()), page),
        }
    }

    /// The password profile of a page: `profile`, or the only one with codes on.
    async fn profile(&self, v: &Visit<'_>) -> Result<Arc<PasswordProfile>, OtpError> {
        let directory = &self.state.directory;
        let profile = match v.fields.get("profile") {
            Some(raw) => {
                let id = ProfileId::parse(raw).map_err(|_| OtpError::ProfileNotFound)?;
                if let Some(p) = directory.recent_profile(&id) {
                    p
                } else {
                    let p = match directory.profile(&id).await {
                        Ok(p) => Arc::new(p),
                        Err(DirectoryError::NotFound(_)) => return Err(OtpError::ProfileNotFound),
                        Err(e) => return Err(e.into()),
                    };
                    directory.remember_profile(p.clone());
                    p
                }
            }
            None => {
                let mut with_codes = directory
                    .profiles()
                    .await?
                    .into_iter()
                    .filter(|p| p.enable_one_time_password_token);
                match (with_codes.next(), with_codes.next()) {
                    (Some(only), None) => Arc::new(only),
                    _ => return Err(OtpError::ProfileNotFound),
                }
            }
        };
        if !profile.enable_one_time_password_token {
            return Err(OtpError::NotEnabled);
        }
        Ok(profile)
    }

    /// The page's `return_to` (or, when `remembered`, the one the code request
    /// remembered in a cookie), checked against the allow-list, and the profile.
    /// A refused `return_to` stops the page before anything is read or spent.
    async fn scope(&self, v: &Visit<'_>, remembered: bool, page: &str) -> Result<Scope, Response> {
        let return_to = match v.fields.get("return_to") {
            Some(raw) => match self.options.returns.check(raw) {
                Ok(url) => Some(url),
                Err(why) => {
                    tracing::info!(target: "authgate::audit", reason = ?why, "a hosted page refused a return_to");
                    return Err(self.problem(v, StatusCode::BAD_REQUEST, "return_to", None, None));
                }
            },
            None if remembered => csrf::cookie(
                v.req,
                &csrf::cookie_name(self.options.secure, RETURN_COOKIE),
            )
            .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|raw| self.options.returns.check(&raw).ok()),
            None => None,
        };
        match self.profile(v).await {
            Ok(profile) => Ok(Scope { profile, return_to }),
            Err(e) => Err(self.failure(v, e, page)),
        }
    }

    /// The `Set-Cookie` that remembers `return_to` until the emailed link is
    /// opened (`SameSite=Lax`: a link opened from a webmail is a cross-site
    /// navigation), or forgets it.
    fn remember_return(&self, return_to: Option<&Url>) -> String {
        match return_to {
            Some(url) => csrf::set_cookie(
                self.options.secure,
                RETURN_COOKIE,
                &URL_SAFE_NO_PAD.encode(url.as_str()),
                "Lax",
                Some(self.options.otp_ttl_secs),
            ),
            None => csrf::set_cookie(self.options.secure, RETURN_COOKIE, "", "Lax", Some(0)),
        }
    }

    /// Counts a login-related request from the client's address, as the API does.
    async fn count_address(&self, req: &Request) -> Result<(), OtpError> {
        let mut batch = Batch::new();
        let counted = self.state.count_address(&mut batch, req, "login");
        self.state.store.run(batch).await?;
        self.state
            .addresses
            .verdict(counted)?
            .map_err(OtpError::Throttled)
    }

    /// A code request, exactly as the API's: counted against the address (over
    /// its limit the answer is the same and nothing is sent) and the username,
    /// stored and queued for delivery whether or not the username exists.
    async fn request_code(
        &self,
        req: &Request,
        profile: &PasswordProfile,
        username: &str,
        purpose: Purpose,
    ) -> Result<(), OtpError> {
        let state = &self.state;
        let mut batch = Batch::new();
        let counted = state.count_address(&mut batch, req, "login");
        state.store.run(batch).await?;
        let address_limited = state.addresses.verdict(counted)?.is_err();
        crate::api::accounts::send_code(state, profile, username, purpose, address_limited).await
    }

    /// Exchanges a code for its member and an account management token, as
    /// `POST /v2/account-members/tokens` does: the token and its lifetime.
    async fn sign_in(
        &self,
        profile: &ProfileId,
        username: &str,
        code: &str,
    ) -> Result<(Member, String, u64), OtpError> {
        let along = crate::api::accounts::along(&self.state);
        let (member, along) = self
            .state
            .otp
            .exchange_code(profile, username, code, along)
            .await?;
        let (token, _, exp) =
            crate::api::accounts::account_token(&self.state, &member, along).await?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Ok((member, token, u64::try_from(exp - now).unwrap_or(0)))
    }

    /// After a successful exchange: back to `return_to` with the token in the
    /// fragment (never in a query, so it reaches no server and no log), or the
    /// signed-in page.
    fn signed_in(
        &self,
        v: &Visit<'_>,
        scope: &Scope,
        member: &Member,
        token: &str,
        expires_in: u64,
    ) -> Response {
        let forget = self.remember_return(None);
        match &scope.return_to {
            Some(url) => {
                let mut target = url.clone();
                let fragment = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("access_token", token)
                    .append_pair("token_type", "Bearer")
                    .append_pair("expires_in", &expires_in.to_string())
                    .finish();
                target.set_fragment(Some(&fragment));
                let mut resp = Response::builder()
                    .status(StatusCode::SEE_OTHER)
                    .header(header::LOCATION, target.as_str())
                    .finish();
                for c in v.cookies.iter().chain([&forget]) {
                    if let Ok(value) = HeaderValue::from_str(c) {
                        resp.headers_mut().append(header::SET_COOKIE, value);
                    }
                }
                resp
            }
            None => {
                let mut resp = self.render(
                    v,
                    StatusCode::OK,
                    "signed_in.html",
                    Some(scope),
                    &Vec::new(),
                    minijinja::context! {
                        username => &member.credential.username,
                        access_token => token,
                        expires_minutes => expires_in / 60,
                    },
                );
                if let Ok(value) = HeaderValue::from_str(&forget) {
                    resp.headers_mut().append(header::SET_COOKIE, value);
                }
                resp
            }
        }
    }

    /// A 303 to another page, with the visit's cookies and `extra`.
    fn see_other(&self, v: &Visit<'_>, location: &str, extra: Option<String>) -> Response {
        let mut resp = Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, location)
            .finish();
        for c in v.cookies.iter().chain(extra.iter()) {
            if let Ok(value) = HeaderValue::from_str(c) {
                resp.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        resp
    }

    /// A POST whose anti-CSRF token does not match its cookie changes nothing.
    fn forged(&self, v: &Visit<'_>, page: &str) -> Option<Response> {
        if self.csrf.check(v.req, v.fields.get("csrf")) {
            return None;
        }
        tracing::info!(target: "authgate::audit", "a hosted page refused a form without a valid anti-CSRF token");
        let again = self.start_again(v, page);
        Some(self.problem(v, StatusCode::FORBIDDEN, "form_expired", Some(again), None))
    }

    /// Whether self-service password changes are allowed (the API's rule).
    async fn resets_allowed(&self) -> Result<bool, DirectoryError> {
        Ok(self
            .state
            .directory
            .settings()
            .await?
            .account_member_self_management
            == SelfManagement::UpdateOnly)
    }
}

/// A code as typed or linked: trimmed and lower-cased, when it can be one.
fn code_of(v: &Visit<'_>) -> Option<String> {
    let code = v.fields.get("token")?.to_ascii_lowercase();
    OneTimeCode::parse(&code).ok().map(|_| code)
}

#[handler]
fn start(Data(ui): Data<&Arc<Ui>>, req: &Request) -> Response {
    let target = match req.uri().query() {
        Some(q) => format!("{}/sign-in?{q}", ui.options.base),
        None => format!("{}/sign-in", ui.options.base),
    };
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, target)
        .finish()
}

#[handler]
fn style(Data(ui): Data<&Arc<Ui>>) -> Response {
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=300")
        .body(ui.options.templates.style().to_owned())
}

/// A theme's image or font from `<AUTHGATE_UI_TEMPLATES>/assets/`.
#[handler]
fn asset(Data(ui): Data<&Arc<Ui>>, poem::web::Path(name): poem::web::Path<String>) -> Response {
    let kind = name.rsplit_once('.').and_then(|(stem, ext)| {
        let plain = !stem.is_empty()
            && stem
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        let kind = match ext.to_ascii_lowercase().as_str() {
            "png" => "image/png",
            "svg" => "image/svg+xml",
            "jpg" | "jpeg" => "image/jpeg",
            "gif" => "image/gif",
            "webp" => "image/webp",
            "ico" => "image/x-icon",
            "woff2" => "font/woff2",
            _ => return None,
        };
        plain.then_some(kind)
    });
    let bytes = kind.and_then(|_| {
        let dir = ui.options.templates.dir()?;
        std::fs::read(dir.join("assets").join(&name)).ok()
    });
    match (kind, bytes) {
        (Some(kind), Some(bytes)) => Response::builder()
            .content_type(kind)
            .header(header::CACHE_CONTROL, "public, max-age=300")
            .body(bytes),
        _ => ui.bare_problem(StatusCode::NOT_FOUND),
    }
}

/// A page that only shows its form (the GET of a code request page).
async fn form_page(ui: &Ui, req: &Request, page: &str, template: &str) -> Response {
    let v = ui.visit(req, Fields::query(req));
    match ui.scope(&v, false, page).await {
        Ok(scope) => ui.render(
            &v,
            StatusCode::OK,
            template,
            Some(&scope),
            &Vec::new(),
            minijinja::context! {},
        ),
        Err(resp) => resp,
    }
}

#[handler]
async fn sign_in_form(Data(ui): Data<&Arc<Ui>>, req: &Request) -> Response {
    form_page(ui, req, "/sign-in", "sign_in.html").await
}

/// Both code requests: the form, checked; the request; a 303 to `next`.
async fn request_page(
    ui: &Ui,
    req: &Request,
    body: Body,
    purpose: Purpose,
    form: (&str, &str),
    next: &str,
) -> Response {
    let (page, template) = form;
    let v = ui.visit(req, Fields::form(body).await);
    if let Some(refused) = ui.forged(&v, page) {
        return refused;
    }
    let scope = match ui.scope(&v, false, page).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let Some(username) = v.fields.get("username") else {
        let errors = vec![("username", "username_required")];
        return ui.render(
            &v,
            StatusCode::BAD_REQUEST,
            template,
            Some(&scope),
            &errors,
            minijinja::context! {},
        );
    };
    match ui
        .request_code(req, &scope.profile, username, purpose)
        .await
    {
        Ok(()) => {}
        Err(OtpError::Invalid(_)) => {
            let errors = vec![("username", "username_required")];
            return ui.render(
                &v,
                StatusCode::BAD_REQUEST,
                template,
                Some(&scope),
                &errors,
                minijinja::context! {},
            );
        }
        Err(e) => return ui.failure(&v, e, page),
    }
    let return_to = scope.return_to.as_ref().map(Url::as_str);
    let mut params = ui.carried(&v, Some(scope.profile.id.as_str()), return_to);
    params.push(("username", Some(username)));
    let location = ui.url(next, &params);
    ui.see_other(
        &v,
        &location,
        Some(ui.remember_return(scope.return_to.as_ref())),
    )
}

#[handler]
async fn sign_in_request(Data(ui): Data<&Arc<Ui>>, req: &Request, body: Body) -> Response {
    request_page(
        ui,
        req,
        body,
        Purpose::PasswordlessAuthentication,
        ("/sign-in", "sign_in.html"),
        "/sign-in/code",
    )
    .await
}

#[handler]
async fn code_form(Data(ui): Data<&Arc<Ui>>, req: &Request) -> Response {
    let v = ui.visit(req, Fields::query(req));
    let scope = match ui.scope(&v, false, "/sign-in").await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if v.fields.get("username").is_none() {
        return ui.see_other(&v, &ui.start_again(&v, "/sign-in"), None);
    }
    ui.render(
        &v,
        StatusCode::OK,
        "code.html",
        Some(&scope),
        &Vec::new(),
        minijinja::context! {},
    )
}

/// Both sign-in exchanges: the typed code (`typed`: a wrong one re-shows the
/// form) and the emailed link's (a wrong one is a dead link).
async fn exchange_page(ui: &Ui, req: &Request, body: Body, typed: bool) -> Response {
    let v = ui.visit(req, Fields::form(body).await);
    if let Some(refused) = ui.forged(&v, "/sign-in") {
        return refused;
    }
    let scope = match ui.scope(&v, false, "/sign-in").await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let username = v.fields.get("username").unwrap_or_default();
    let wrong = |status| {
        if typed {
            let errors = vec![(
                "token",
                if status == StatusCode::BAD_REQUEST {
                    "code_required"
                } else {
                    "code_wrong"
                },
            )];
            ui.render(
                &v,
                status,
                "code.html",
                Some(&scope),
                &errors,
                minijinja::context! {},
            )
        } else {
            let again = ui.start_again(&v, "/sign-in");
            ui.problem(&v, status, "link", Some(again), None)
        }
    };
    if username.is_empty() {
        return wrong(StatusCode::BAD_REQUEST);
    }
    let Some(code) = v.fields.get("token").map(str::to_ascii_lowercase) else {
        return wrong(StatusCode::BAD_REQUEST);
    };
    if let Err(e) = ui.count_address(req).await {
        return ui.failure(&v, e, "/sign-in");
    }
    match ui.sign_in(&scope.profile.id, username, &code).await {
        Ok((member, token, expires_in)) => ui.signed_in(&v, &scope, &member, &token, expires_in),
        Err(OtpError::Unauthorized | OtpError::Invalid(_)) => wrong(StatusCode::UNAUTHORIZED),
        Err(e) => ui.failure(&v, e, "/sign-in"),
    }
}

#[handler]
async fn code_exchange(Data(ui): Data<&Arc<Ui>>, req: &Request, body: Body) -> Response {
    exchange_page(ui, req, body, true).await
}

/// The emailed link: shows whose sign-in it is and spends nothing.
#[handler]
async fn confirm_form(Data(ui): Data<&Arc<Ui>>, req: &Request) -> Response {
    let v = ui.visit(req, Fields::query(req));
    let scope = match ui.scope(&v, true, "/sign-in").await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let (Some(_), Some(code)) = (v.fields.get("username"), code_of(&v)) else {
        let again = ui.start_again(&v, "/sign-in");
        return ui.problem(&v, StatusCode::BAD_REQUEST, "link", Some(again), None);
    };
    ui.render(
        &v,
        StatusCode::OK,
        "confirm.html",
        Some(&scope),
        &Vec::new(),
        minijinja::context! { token => code },
    )
}

#[handler]
async fn confirm_exchange(Data(ui): Data<&Arc<Ui>>, req: &Request, body: Body) -> Response {
    exchange_page(ui, req, body, false).await
}

#[handler]
async fn reset_request_form(Data(ui): Data<&Arc<Ui>>, req: &Request) -> Response {
    form_page(ui, req, "/reset-password/request", "reset_request.html").await
}

#[handler]
async fn reset_request(Data(ui): Data<&Arc<Ui>>, req: &Request, body: Body) -> Response {
    request_page(
        ui,
        req,
        body,
        Purpose::ResetPassword,
        ("/reset-password/request", "reset_request.html"),
        "/reset-password",
    )
    .await
}

/// The new password form: from the emailed link (its code hidden in the form),
/// or after a reset request (with a field for the code). Spends nothing.
#[handler]
async fn reset_form(Data(ui): Data<&Arc<Ui>>, req: &Request) -> Response {
    let v = ui.visit(req, Fields::query(req));
    let page = "/reset-password/request";
    let scope = match ui.scope(&v, true, page).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    match ui.resets_allowed().await {
        Ok(true) => {}
        Ok(false) => return ui.problem(&v, StatusCode::FORBIDDEN, "reset_off", None, None),
        Err(e) => return ui.directory_failure(&v, e, page),
    }
    if v.fields.get("username").is_none() {
        if v.fields.get("token").is_some() {
            let again = ui.start_again(&v, page);
            return ui.problem(&v, StatusCode::BAD_REQUEST, "link", Some(again), None);
        }
        return ui.see_other(&v, &ui.start_again(&v, page), None);
    }
    let from_link = v.fields.get("token").is_some();
    let code = code_of(&v);
    if from_link && code.is_none() {
        let again = ui.start_again(&v, page);
        return ui.problem(&v, StatusCode::BAD_REQUEST, "link", Some(again), None);
    }
    ui.render(
        &v,
        StatusCode::OK,
        "reset.html",
        Some(&scope),
        &Vec::new(),
        minijinja::context! { from_link => from_link, token => code.unwrap_or_default() },
    )
}

/// The rules the directory enforces on a new password, checked first so that a
/// refused password does not spend the code.
fn password_errors(password: Option<&str>, again: Option<&str>) -> FieldErrors {
    let mut errors = Vec::new();
    let password = password.unwrap_or_default();
    if password.chars().count() < MIN_PASSWORD_LEN {
        errors.push(("new_password", "password_short"));
    } else if password.len() > MAX_PASSWORD_LEN {
        errors.push(("new_password", "password_long"));
    } else if again != Some(password) {
        errors.push(("confirm_password", "password_mismatch"));
    }
    errors
}

#[handler]
async fn reset(Data(ui): Data<&Arc<Ui>>, req: &Request, body: Body) -> Response {
    let page = "/reset-password/request";
    let v = ui.visit(req, Fields::form(body).await);
    if let Some(refused) = ui.forged(&v, page) {
        return refused;
    }
    let scope = match ui.scope(&v, false, page).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let from_link = v.fields.get("from_link") == Some("1");
    let Some(username) = v.fields.get("username") else {
        let again = ui.start_again(&v, page);
        return ui.problem(&v, StatusCode::BAD_REQUEST, "link", Some(again), None);
    };
    // Passwords are taken as typed: spaces at either end are part of them.
    let password = v.fields.0.get("new_password").map(String::as_str);
    let again = v.fields.0.get("confirm_password").map(String::as_str);
    let code = v.fields.get("token").map(str::to_ascii_lowercase);
    let mut errors = password_errors(password, again);
    if code.is_none() {
        errors.insert(0, ("token", "code_required"));
    }
    let form = |status, errors: &FieldErrors| {
        ui.render(
            &v,
            status,
            "reset.html",
            Some(&scope),
            errors,
            minijinja::context! {
                from_link => from_link,
                token => v.fields.get("token").unwrap_or_default(),
            },
        )
    };
    if !errors.is_empty() {
        return form(StatusCode::UNPROCESSABLE_ENTITY, &errors);
    }
    match ui.resets_allowed().await {
        Ok(true) => {}
        Ok(false) => return ui.problem(&v, StatusCode::FORBIDDEN, "reset_off", None, None),
        Err(e) => return ui.directory_failure(&v, e, page),
    }
    if let Err(e) = ui.count_address(req).await {
        return ui.failure(&v, e, page);
    }
    let (Some(code), Some(password)) = (code, password) else {
        return form(StatusCode::UNPROCESSABLE_ENTITY, &errors);
    };
    let otp = &ui.state.otp;
    let member = match otp
        .exchange_code(&scope.profile.id, username, &code, |_, _, _| ())
        .await
    {
        Ok((member, ())) => member,
        Err(OtpError::Unauthorized | OtpError::Invalid(_)) if !from_link => {
            return form(StatusCode::UNAUTHORIZED, &vec![("token", "code_wrong")]);
        }
        Err(OtpError::Unauthorized | OtpError::Invalid(_)) => {
            let again = ui.start_again(&v, page);
            return ui.problem(&v, StatusCode::UNAUTHORIZED, "link", Some(again), None);
        }
        Err(e) => return ui.failure(&v, e, page),
    };
    // The API's member PUT: the same directory call, so the same effect.
    let c = &member.credential;
    if let Err(e) = ui
        .state
        .directory
        .update_credential(&c.user_id, &c.id, None, Some(password))
        .await
    {
        return ui.directory_failure(&v, e, page);
    }
    tracing::info!(target: "authgate::audit", user_id = c.user_id.as_str(), "password reset on the hosted page");
    let mut resp = ui.render(
        &v,
        StatusCode::OK,
        "reset_done.html",
        Some(&scope),
        &Vec::new(),
        minijinja::context! {
            username => &c.username,
            return_to => scope.return_to.as_ref().map(Url::as_str),
        },
    );
    if let Ok(value) = HeaderValue::from_str(&ui.remember_return(None)) {
        resp.headers_mut().append(header::SET_COOKIE, value);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_public_url_is_the_listener() {
        let url =
            |a: &str, tls| default_public_url(a.parse().unwrap_or_else(|_| unreachable!()), tls);
        assert_eq!(url("127.0.0.1:8080", false), "http://127.0.0.1:8080");
        assert_eq!(url("0.0.0.0:8080", false), "http://localhost:8080");
        assert_eq!(url("[::]:8443", true), "https://localhost:8443");
        assert_eq!(url("[::1]:8080", false), "http://[::1]:8080");
    }

    #[test]
    fn a_password_is_checked_before_anything_is_spent() {
        assert_eq!(
            password_errors(Some("short"), Some("short")),
            vec![("new_password", "password_short")]
        );
        assert_eq!(
            password_errors(Some("long enough"), Some("long enougH")),
            vec![("confirm_password", "password_mismatch")]
        );
        assert!(password_errors(Some("long enough"), Some("long enough")).is_empty());
        let huge = "x".repeat(MAX_PASSWORD_LEN + 1);
        assert_eq!(
            password_errors(Some(&huge), Some(&huge)),
            vec![("new_password", "password_long")]
        );
        // Eight characters, not eight bytes, as the directory counts.
        assert!(password_errors(Some("ééééééé"), Some("ééééééé")).len() == 1);
        assert!(password_errors(Some("éééééééé"), Some("éééééééé")).is_empty());
    }
}
