//! Scheme A over REST: key requests and the logins of web phone users, answered
//! with the SDKs' AuthResult and an HTTP status that mirrors its code.

use std::sync::Arc;

use authgate_core::tokens::IssuedTokens;
use authgate_onetimekey::{Failure, LoggedIn};
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::types::{ParseFromJSON, ToJSON};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::document::{self, Only};
use super::types::Direct;
use super::Tag;
use crate::errors;
use crate::state::AppState;

// The fields of the success bodies are in the order of their JSON names, so
// that `Direct` writes what `Json` would.
/// Tokens of a web phone session.
#[derive(Debug, Clone, Object, PartialEq, Eq, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct LoginTokens {
    /// Seconds until the access token expires.
    pub access_expire: u64,
    /// Access token: log in again with it, or send it as `Authorization: Bearer`.
    pub access_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expire: u64,
    /// Refresh token: trade it once for new tokens.
    pub refresh_token: String,
}

impl From<IssuedTokens> for LoginTokens {
    fn from(t: IssuedTokens) -> Self {
        Self {
            access_token: t.access_token,
            access_expire: t.access_expires_in.as_secs(),
            refresh_token: t.refresh_token.unwrap_or_default(),
            refresh_expire: t.refresh_expires_in.as_secs(),
        }
    }
}

/// A one-time login key, as the SDKs receive it: an AuthResult with `result: false`
/// and `code: 302` ("key issued"), since no one has logged in yet.
#[derive(Debug, Clone, Object, PartialEq, Eq, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct KeyIssued {
    /// Always 302.
    pub code: u16,
    /// The key: answer it with `MD5(key|HA1)` and log in within five minutes.
    pub key: String,
    /// Always false.
    pub result: bool,
}

/// A successful login: an AuthResult with `result: true`.
#[derive(Debug, Clone, Object, PartialEq, Eq, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct LoggedInResult {
    /// The user's display name (the directory user's `name`).
    pub display_name: String,
    /// Always true.
    pub result: bool,
    /// The new session's tokens.
    pub tokens: LoginTokens,
}

/// A successful refresh: an AuthResult with `result: true` and new tokens.
#[derive(Debug, Clone, Object, PartialEq, Eq, serde::Serialize)]
#[oai(rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct RefreshedResult {
    /// Always true.
    pub result: bool,
    /// The session's new tokens; the old refresh token is spent.
    pub tokens: LoginTokens,
}

/// A failed request: an AuthResult with `result: false` and the SDKs' code.
#[derive(Debug, Clone, Object, PartialEq, Eq)]
#[oai(rename_all = "camelCase")]
pub struct AuthFailure {
    /// Always false.
    pub result: bool,
    /// 400 malformed request, 401 wrong hash, password or token, 403 account
    /// disabled, 404 invalid username (only when revealing unknown users is on),
    /// 413 body too large, 415 not JSON, 429 rate-limited, 500 internal,
    /// 503 store unavailable, 701 token expired.
    pub code: u16,
    /// What went wrong, for a human.
    #[oai(skip_serializing_if_is_none)]
    pub message: Option<String>,
}

impl AuthFailure {
    /// The body of a failure with the SDKs' `code`.
    pub fn json(code: u16, message: Option<String>) -> Json<Self> {
        Json(Self {
            result: false,
            code,
            message,
        })
    }
}

/// A success's body: documented by poem-openapi, written by serde ([`Direct`]).
pub trait Body: ParseFromJSON + ToJSON + serde::Serialize + Send {}

impl<T: ParseFromJSON + ToJSON + serde::Serialize + Send> Body for T {}

/// An AuthResult with the HTTP status its code implies; `T` is the success's shape.
#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "bad_auth_request")]
pub enum AuthResponse<T: Body> {
    /// Success, or a key issued (`code: 302`).
    #[oai(status = 200)]
    Ok(Direct<T>),
    /// Malformed request; nothing was consumed or changed (`code: 400`).
    #[oai(status = 400)]
    BadRequest(Json<AuthFailure>),
    /// Wrong hash, password or token, no live key (`code: 401`), or an expired token (`code: 701`).
    #[oai(status = 401)]
    Unauthorized(Json<AuthFailure>),
    /// The account is disabled (`code: 403`).
    #[oai(status = 403)]
    Forbidden(Json<AuthFailure>),
    /// Unknown user, only when revealing unknown users is switched on (`code: 404`).
    #[oai(status = 404)]
    NotFound(Json<AuthFailure>),
    /// The body is larger than the gateway accepts (`code: 413`).
    #[oai(status = 413)]
    PayloadTooLarge(Json<AuthFailure>),
    /// The body is not JSON (`code: 415`).
    #[oai(status = 415)]
    UnsupportedMediaType(Json<AuthFailure>),
    /// Rate-limited (`code: 429`); retry after the given seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<AuthFailure>, #[oai(header = "Retry-After")] u64),
    /// Internal failure (`code: 500`).
    #[oai(status = 500)]
    Internal(Json<AuthFailure>),
    /// The store is unreachable (`code: 503`); retry later.
    #[oai(status = 503)]
    Unavailable(Json<AuthFailure>),
}

/// A web phone answer documented with the error statuses `S`.
pub type Answer<T, S> = Only<AuthResponse<T>, S>;

/// Parse failures of a web phone request, as an AuthResult (see [`crate::errors`]).
pub fn bad_auth_request<T: Body>(err: poem::Error) -> AuthResponse<T> {
    errors::unreadable_web_phone_request(&err).into()
}

impl<T: Body, S> From<AuthResponse<T>> for Answer<T, S> {
    fn from(r: AuthResponse<T>) -> Self {
        Only::new(r)
    }
}

/// The answer to an outcome of the key scheme.
fn answer<T: Body, U, S>(outcome: Result<U, Failure>, ok: impl FnOnce(U) -> T) -> Answer<T, S> {
    match outcome {
        Ok(v) => AuthResponse::Ok(Direct(ok(v))),
        Err(f) => f.into(),
    }
    .into()
}

fn logged_in(l: LoggedIn) -> LoggedInResult {
    LoggedInResult {
        result: true,
        display_name: l.display_name,
        tokens: l.tokens.into(),
    }
}

/// A key request.
#[derive(Debug, Object)]
pub struct KeyRequest {
    /// `user@app.account.voximplant.com`, `user@app.account.nN.voximplant.com` or `user@app.account`.
    #[oai(validator(max_length = 512))]
    pub username: String,
}

/// A login with a one-time key.
#[derive(Debug, Object)]
pub struct KeyLogin {
    /// The username the key was requested for.
    #[oai(validator(max_length = 512))]
    pub username: String,
    /// `MD5(key|MD5(user:voximplant.com:password))`, lowercase hex, computed by your backend.
    #[oai(validator(max_length = 64))]
    pub hash: String,
}

/// A login with a password.
#[derive(Debug, Object)]
pub struct PasswordLogin {
    /// The username.
    #[oai(validator(max_length = 512))]
    pub username: String,
    /// The password, or its HA1 `MD5(user:voximplant.com:password)` as 32 hex digits.
    #[oai(validator(max_length = 1024))]
    pub password: String,
}

/// A login with an access token.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TokenLogin {
    /// The username the token was issued to.
    #[oai(validator(max_length = 512))]
    pub username: String,
    /// A live access token of that user.
    #[oai(validator(max_length = 256))]
    pub access_token: String,
}

/// A refresh.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TokenRefresh {
    /// The username the token was issued to.
    #[oai(validator(max_length = 512))]
    pub username: String,
    /// The current refresh token; it works once.
    #[oai(validator(max_length = 256))]
    pub refresh_token: String,
}

/// A logout: either token of the session.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Logout {
    /// An access token of the session (or an account management token).
    #[oai(validator(max_length = 4096))]
    pub access_token: Option<String>,
    /// Or its refresh token.
    #[oai(validator(max_length = 4096))]
    pub refresh_token: Option<String>,
}

/// The answer to a logout.
#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "bad_logout")]
pub enum LogoutResponse {
    /// The session is over (also when it already was: logout is idempotent).
    #[oai(status = 204)]
    Done,
    /// Neither token given, or the body is malformed.
    #[oai(status = 400)]
    BadRequest(Json<AuthFailure>),
    /// The body is larger than the gateway accepts.
    #[oai(status = 413)]
    PayloadTooLarge(Json<AuthFailure>),
    /// The body is not JSON.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<AuthFailure>),
    /// The store is unreachable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<AuthFailure>),
}

/// Parse failures of a logout, like [`bad_auth_request`]'s.
pub fn bad_logout(err: poem::Error) -> LogoutResponse {
    errors::unreadable_web_phone_request(&err).into()
}

/// Scheme A's REST endpoints.
pub struct WebPhoneApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "Tag::WebPhone")]
impl WebPhoneApi {
    /// Request a one-time login key
    ///
    /// Answers `{"result": false, "code": 302, "key": ...}`. The key lives five minutes
    /// (`AUTHGATE_LOGIN_KEY_TTL_SECS`), works for one login attempt, and a new request
    /// voids the previous key. Unknown users get a key too (one that can never
    /// succeed), so the answer tells nothing about who exists.
    #[oai(
        path = "/v1/login/one-time-key/request",
        method = "post",
        operation_id = "requestOneTimeLoginKey"
    )]
    async fn request_key(
        &self,
        req: &Request,
        body: Json<KeyRequest>,
    ) -> Answer<KeyIssued, document::KeyRequest> {
        let ip = self.state.client_ip(req);
        let outcome = self.state.key_scheme.request_key(&body.username, &ip).await;
        answer(outcome, |key| KeyIssued {
            result: false,
            code: 302,
            key,
        })
    }

    /// Log in with a one-time login key
    ///
    /// `hash` is `MD5(key|MD5(user:voximplant.com:password))` in lowercase hex, where
    /// `user` is the bare user (without `@app.account...`). Any attempt consumes the
    /// key, right or wrong.
    #[oai(
        path = "/v1/login/one-time-key",
        method = "post",
        operation_id = "loginWithOneTimeKey"
    )]
    async fn login_with_key(
        &self,
        req: &Request,
        body: Json<KeyLogin>,
    ) -> Answer<LoggedInResult, document::Login> {
        let ip = self.state.client_ip(req);
        let outcome = self
            .state
            .key_scheme
            .login_with_key(&body.username, &body.hash, &ip)
            .await;
        answer(outcome, logged_in)
    }

    /// Log in with a password
    ///
    /// `password` is the plain password or its HA1 (32 hex digits).
    #[oai(
        path = "/v1/login/password",
        method = "post",
        operation_id = "loginWithPassword"
    )]
    async fn login_with_password(
        &self,
        req: &Request,
        body: Json<PasswordLogin>,
    ) -> Answer<LoggedInResult, document::Login> {
        let ip = self.state.client_ip(req);
        let outcome = self
            .state
            .key_scheme
            .login_with_password(&body.username, &body.password, &ip)
            .await;
        answer(outcome, logged_in)
    }

    /// Log in with an access token
    ///
    /// Starts a new session for the user a live access token belongs to.
    #[oai(
        path = "/v1/login/token",
        method = "post",
        operation_id = "loginWithToken"
    )]
    async fn login_with_token(
        &self,
        req: &Request,
        body: Json<TokenLogin>,
    ) -> Answer<LoggedInResult, document::Login> {
        let ip = self.state.client_ip(req);
        let outcome = self
            .state
            .key_scheme
            .login_with_token(&body.username, &body.access_token, &ip)
            .await;
        answer(outcome, logged_in)
    }

    /// Refresh a session's tokens
    ///
    /// A refresh token works once: both tokens are replaced. Presenting a replaced
    /// refresh token again ends the whole session (reuse detection).
    #[oai(
        path = "/v1/login/token/refresh",
        method = "post",
        operation_id = "refreshTokens"
    )]
    async fn refresh(
        &self,
        req: &Request,
        body: Json<TokenRefresh>,
    ) -> Answer<RefreshedResult, document::Refresh> {
        let ip = self.state.client_ip(req);
        let outcome = self
            .state
            .key_scheme
            .refresh(&body.username, &body.refresh_token, &ip)
            .await;
        answer(outcome, |t| RefreshedResult {
            result: true,
            tokens: t.into(),
        })
    }

    /// Log out
    ///
    /// Ends the session of the given access or refresh token; its tokens stop working
    /// at once on every replica.
    #[oai(path = "/v1/logout", method = "post", operation_id = "logout")]
    async fn logout(&self, body: Json<Logout>) -> Only<LogoutResponse, document::Logout> {
        let Some(token) = body.0.access_token.or(body.0.refresh_token) else {
            let missing = Failure::BadRequest("give accessToken or refreshToken".into());
            return Only::new(errors::logout_failure(missing).into());
        };
        Only::new(match self.state.key_scheme.logout(&token).await {
            Ok(_) => LogoutResponse::Done,
            Err(f) => errors::logout_failure(f).into(),
        })
    }
}
