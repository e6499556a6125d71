//! Scheme A over REST: key requests and the logins of web phone users, answered
//! with the SDKs' AuthResult and an HTTP status that mirrors its code.

use std::sync::Arc;

use authgate_core::tokens::IssuedTokens;
use authgate_onetimekey::{Failure, LoggedIn};
use poem::http::StatusCode;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::Tag;
use crate::state::AppState;

/// Tokens of a web phone session.
#[derive(Debug, Clone, Object, PartialEq, Eq)]
#[oai(rename_all = "camelCase")]
pub struct LoginTokens {
    /// Access token: log in again with it, or send it as `Authorization: Bearer`.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub access_expire: u64,
    /// Refresh token: trade it once for new tokens.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expire: u64,
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

/// The outcome of a key request or a login, as the web phone SDKs report it.
#[derive(Debug, Clone, Object, PartialEq, Eq)]
#[oai(rename_all = "camelCase")]
pub struct AuthResult {
    /// True when the login succeeded.
    pub result: bool,
    /// 302 key issued, 400 malformed request, 401 wrong hash, password or token,
    /// 403 account disabled, 404 invalid username (only when revealing unknown users
    /// is on), 429 rate-limited, 500 internal, 503 store unavailable, 701 token expired.
    #[oai(skip_serializing_if_is_none)]
    pub code: Option<u16>,
    /// The one-time login key (with code 302).
    #[oai(skip_serializing_if_is_none)]
    pub key: Option<String>,
    /// The user's display name (on success).
    #[oai(skip_serializing_if_is_none)]
    pub display_name: Option<String>,
    /// The session's tokens (on success).
    #[oai(skip_serializing_if_is_none)]
    pub tokens: Option<LoginTokens>,
    /// What went wrong, for a human (on failure).
    #[oai(skip_serializing_if_is_none)]
    pub message: Option<String>,
}

impl AuthResult {
    fn failed(code: u16, message: Option<String>) -> Json<Self> {
        Json(Self {
            result: false,
            code: Some(code),
            key: None,
            display_name: None,
            tokens: None,
            message,
        })
    }
}

/// An AuthResult with the HTTP status its code implies.
#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "bad_auth_request")]
pub enum AuthResponse {
    /// Success, or a key issued (`code: 302`).
    #[oai(status = 200)]
    Ok(Json<AuthResult>),
    /// Malformed request; nothing was consumed or changed (`code: 400`).
    #[oai(status = 400)]
    BadRequest(Json<AuthResult>),
    /// Wrong hash, password or token, no live key (`code: 401`), or an expired token (`code: 701`).
    #[oai(status = 401)]
    Unauthorized(Json<AuthResult>),
    /// The account is disabled (`code: 403`).
    #[oai(status = 403)]
    Forbidden(Json<AuthResult>),
    /// Unknown user, only when revealing unknown users is switched on (`code: 404`).
    #[oai(status = 404)]
    NotFound(Json<AuthResult>),
    /// Rate-limited (`code: 429`); retry after the given seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<AuthResult>, #[oai(header = "Retry-After")] u64),
    /// Internal failure (`code: 500`).
    #[oai(status = 500)]
    Internal(Json<AuthResult>),
    /// The store is unreachable (`code: 503`); retry later.
    #[oai(status = 503)]
    Unavailable(Json<AuthResult>),
}

/// Parse failures of a web phone request, as an AuthResult.
pub fn bad_auth_request(err: poem::Error) -> AuthResponse {
    AuthResponse::BadRequest(AuthResult::failed(400, Some(err.to_string())))
}

impl From<Failure> for AuthResponse {
    fn from(f: Failure) -> Self {
        match f {
            Failure::BadRequest(m) => AuthResponse::BadRequest(AuthResult::failed(400, Some(m))),
            Failure::WrongCredentials => AuthResponse::Unauthorized(AuthResult::failed(401, None)),
            Failure::TokenExpired => {
                AuthResponse::Unauthorized(AuthResult::failed(701, Some("token expired".into())))
            }
            Failure::Disabled => {
                AuthResponse::Forbidden(AuthResult::failed(403, Some("account disabled".into())))
            }
            Failure::UnknownUser => {
                AuthResponse::NotFound(AuthResult::failed(404, Some("invalid username".into())))
            }
            Failure::Throttled(t) => AuthResponse::TooManyRequests(
                AuthResult::failed(429, Some("too many attempts; retry later".into())),
                t.retry_after_secs(),
            ),
            Failure::Unavailable => AuthResponse::Unavailable(AuthResult::failed(
                503,
                Some("store unavailable; retry later".into()),
            )),
            Failure::Internal(reason) => {
                tracing::error!(%reason, "internal failure in a web phone request");
                AuthResponse::Internal(AuthResult::failed(500, None))
            }
        }
    }
}

fn logged_in(l: LoggedIn) -> AuthResponse {
    AuthResponse::Ok(Json(AuthResult {
        result: true,
        code: None,
        key: None,
        display_name: Some(l.display_name),
        tokens: Some(l.tokens.into()),
        message: None,
    }))
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
    BadRequest(Json<AuthResult>),
    /// The store is unreachable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<AuthResult>),
}

/// Parse failures of a logout.
pub fn bad_logout(err: poem::Error) -> LogoutResponse {
    LogoutResponse::BadRequest(AuthResult::failed(400, Some(err.to_string())))
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
    async fn request_key(&self, req: &Request, body: Json<KeyRequest>) -> AuthResponse {
        let ip = self.state.client_ip(req);
        match self.state.key_scheme.request_key(&body.username, &ip).await {
            Ok(key) => AuthResponse::Ok(Json(AuthResult {
                result: false,
                code: Some(302),
                key: Some(key),
                display_name: None,
                tokens: None,
                message: None,
            })),
            Err(f) => f.into(),
        }
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
    async fn login_with_key(&self, req: &Request, body: Json<KeyLogin>) -> AuthResponse {
        let ip = self.state.client_ip(req);
        match self
            .state
            .key_scheme
            .login_with_key(&body.username, &body.hash, &ip)
            .await
        {
            Ok(l) => logged_in(l),
            Err(f) => f.into(),
        }
    }

    /// Log in with a password
    ///
    /// `password` is the plain password or its HA1 (32 hex digits).
    #[oai(
        path = "/v1/login/password",
        method = "post",
        operation_id = "loginWithPassword"
    )]
    async fn login_with_password(&self, req: &Request, body: Json<PasswordLogin>) -> AuthResponse {
        let ip = self.state.client_ip(req);
        match self
            .state
            .key_scheme
            .login_with_password(&body.username, &body.password, &ip)
            .await
        {
            Ok(l) => logged_in(l),
            Err(f) => f.into(),
        }
    }

    /// Log in with an access token
    ///
    /// Starts a new session for the user a live access token belongs to.
    #[oai(
        path = "/v1/login/token",
        method = "post",
        operation_id = "loginWithToken"
    )]
    async fn login_with_token(&self, req: &Request, body: Json<TokenLogin>) -> AuthResponse {
        let ip = self.state.client_ip(req);
        match self
            .state
            .key_scheme
            .login_with_token(&body.username, &body.access_token, &ip)
            .await
        {
            Ok(l) => logged_in(l),
            Err(f) => f.into(),
        }
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
    async fn refresh(&self, req: &Request, body: Json<TokenRefresh>) -> AuthResponse {
        let ip = self.state.client_ip(req);
        match self
            .state
            .key_scheme
            .refresh(&body.username, &body.refresh_token, &ip)
            .await
        {
            Ok(t) => AuthResponse::Ok(Json(AuthResult {
                result: true,
                code: None,
                key: None,
                display_name: None,
                tokens: Some(t.into()),
                message: None,
            })),
            Err(f) => f.into(),
        }
    }

    /// Log out
    ///
    /// Ends the session of the given access or refresh token; its tokens stop working
    /// at once on every replica.
    #[oai(path = "/v1/logout", method = "post", operation_id = "logout")]
    async fn logout(&self, body: Json<Logout>) -> LogoutResponse {
        let Some(token) = body.0.access_token.or(body.0.refresh_token) else {
            return LogoutResponse::BadRequest(AuthResult::failed(
                400,
                Some("give accessToken or refreshToken".into()),
            ));
        };
        match self.state.key_scheme.logout(&token).await {
            Ok(_) => LogoutResponse::Done,
            Err(_) => LogoutResponse::Unavailable(AuthResult::failed(
                StatusCode::SERVICE_UNAVAILABLE.as_u16(),
                Some("store unavailable; retry later".into()),
            )),
        }
    }
}
