//! Errors on the wire, in each dialect's own shape, mapped in one place.
//!
//! The core and the schemes name what went wrong and nothing more; this module
//! alone turns each of their errors into each dialect:
//!
//! - the commerce dialect (`/v2`, `/oauth`, and the gateway's own endpoints):
//!   `{"errors": [{"status": "401", "title": ..., "detail": ...}]}` with the HTTP
//!   status, as [`ApiError`] (from [`DirectoryError`], [`OtpError`], [`StoreError`]);
//! - the web phone dialect, over REST (`/v1/login`, `/v1/logout`: an AuthResult with
//!   `result: false`, the SDKs' `code` and a mirroring HTTP status) and over the
//!   `/platform` socket (the same `code` in a `loginFailed` frame), as
//!   [`WebPhoneFailure`] (from the key scheme's [`Failure`]).
//!
//! [`dialect_errors`] catches whatever a handler never saw (unknown routes,
//! oversized or unparsable bodies, missing credentials) and gives it the same
//! shape, so no error leaves as plain text. The tests at the end hold the whole
//! table: every variant, in every dialect.

use std::sync::Arc;

use authgate_core::directory::DirectoryError;
use authgate_core::store::StoreError;
use authgate_onetimekey::Failure;
use authgate_otp::OtpError;
use poem::http::header::{self, HeaderValue};
use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use crate::api::document::{allow_header, Routes};
use crate::api::webphone::{AuthFailure, AuthResponse, Body, LogoutResponse};

/// One error.
#[derive(Debug, Clone, Object, PartialEq, Eq)]
pub struct ErrorItem {
    /// The HTTP status, as a string.
    pub status: String,
    /// A short, stable summary of the problem.
    pub title: String,
    /// What exactly went wrong, for a human.
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
}

/// The commerce dialect's error body.
#[derive(Debug, Clone, Object, PartialEq, Eq)]
pub struct Errors {
    /// The errors (usually one).
    pub errors: Vec<ErrorItem>,
}

impl Errors {
    /// A body with one error.
    pub fn one(status: StatusCode, title: &str, detail: impl Into<Option<String>>) -> Json<Self> {
        Json(Self {
            errors: vec![ErrorItem {
                status: status.as_u16().to_string(),
                title: title.to_owned(),
                detail: detail.into(),
            }],
        })
    }
}

/// An error answer in the commerce dialect; every variant is in the spec.
#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "bad_request")]
pub enum ApiError {
    /// The request is malformed; nothing was changed.
    #[oai(status = 400)]
    BadRequest(Json<Errors>),
    /// Missing, unknown or expired credentials.
    #[oai(status = 401)]
    Unauthorized(Json<Errors>),
    /// The credentials do not allow this operation.
    #[oai(status = 403)]
    Forbidden(Json<Errors>),
    /// No such resource.
    #[oai(status = 404)]
    NotFound(Json<Errors>),
    /// The resource would clash with an existing one.
    #[oai(status = 409)]
    Conflict(Json<Errors>),
    /// The body is larger than the gateway accepts (`AUTHGATE_MAX_BODY_BYTES`).
    #[oai(status = 413)]
    PayloadTooLarge(Json<Errors>),
    /// The body is not in a media type this operation reads.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<Errors>),
    /// Well-formed but not acceptable (a rule of the resource refuses it).
    #[oai(status = 422)]
    Unprocessable(Json<Errors>),
    /// A rate limit was hit; retry after the given seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<Errors>, #[oai(header = "Retry-After")] u64),
    /// An unexpected failure inside the gateway.
    #[oai(status = 500)]
    Internal(Json<Errors>),
    /// The store (Redis) is unreachable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<Errors>),
}

/// Payload and parameter parse failures, in the dialect's shape.
pub fn bad_request(err: poem::Error) -> ApiError {
    ApiError::BadRequest(Errors::one(
        StatusCode::BAD_REQUEST,
        "Bad Request",
        Some(err.to_string()),
    ))
}

impl ApiError {
    /// 400 with a detail.
    pub fn bad(detail: impl Into<String>) -> Self {
        ApiError::BadRequest(Errors::one(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            Some(detail.into()),
        ))
    }

    /// 401 with a detail.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        ApiError::Unauthorized(Errors::one(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            Some(detail.into()),
        ))
    }

    /// 403 with a detail.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::Forbidden(Errors::one(
            StatusCode::FORBIDDEN,
            "Forbidden",
            Some(detail.into()),
        ))
    }

    /// 404 with a detail.
    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError::NotFound(Errors::one(
            StatusCode::NOT_FOUND,
            "Not Found",
            Some(detail.into()),
        ))
    }

    /// 422 with a detail.
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        ApiError::Unprocessable(Errors::one(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Unprocessable Entity",
            Some(detail.into()),
        ))
    }

    /// 429 with `Retry-After`.
    pub fn too_many(t: authgate_core::limits::Throttled) -> Self {
        ApiError::TooManyRequests(
            Errors::one(
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests",
                Some("too many attempts; retry later".to_owned()),
            ),
            t.retry_after_secs(),
        )
    }

    /// 500, saying nothing of why (the reason goes to the log).
    pub fn internal() -> Self {
        ApiError::Internal(Errors::one(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            None,
        ))
    }

    /// 503: the store is down.
    pub fn unavailable() -> Self {
        ApiError::Unavailable(Errors::one(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            Some("the store is unreachable; retry later".to_owned()),
        ))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(reason) => {
                tracing::error!(%reason, "store unavailable");
                ApiError::unavailable()
            }
            StoreError::Protocol(reason) | StoreError::Config(reason) => {
                tracing::error!(%reason, "store protocol error");
                ApiError::internal()
            }
        }
    }
}

impl From<DirectoryError> for ApiError {
    fn from(e: DirectoryError) -> Self {
        match e {
            DirectoryError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            DirectoryError::Conflict(d) => {
                ApiError::Conflict(Errors::one(StatusCode::CONFLICT, "Conflict", Some(d)))
            }
            DirectoryError::Invalid(d) => ApiError::unprocessable(d),
            DirectoryError::Store(s) => s.into(),
        }
    }
}

impl From<OtpError> for ApiError {
    fn from(e: OtpError) -> Self {
        match e {
            OtpError::ProfileNotFound => ApiError::not_found("password profile not found"),
            OtpError::NotEnabled => ApiError::unprocessable(
                "one-time password tokens are not enabled for this password profile",
            ),
            OtpError::Invalid(m) => ApiError::bad(m),
            OtpError::Unauthorized => ApiError::unauthorized("authentication failed"),
            OtpError::Throttled(t) => ApiError::too_many(t),
            OtpError::Unavailable => ApiError::unavailable(),
            OtpError::Internal(reason) => {
                tracing::error!(%reason, "internal error in an account request");
                ApiError::internal()
            }
        }
    }
}

/// An exchange tells nothing of what was wrong with the credentials: whatever
/// the profile, username, code or password, the answer is one 401.
pub fn exchange_error(e: OtpError) -> ApiError {
    match e {
        OtpError::Invalid(_) | OtpError::ProfileNotFound | OtpError::NotEnabled => {
            ApiError::unauthorized("authentication failed")
        }
        other => other.into(),
    }
}

// ---- the web phone dialect ----

/// A failure as the web phone dialect says it: the HTTP status of a REST answer,
/// the SDKs' result code (the same over REST and the `/platform` socket), a
/// message for a human, and when to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebPhoneFailure {
    /// The HTTP status of the REST answer.
    pub status: StatusCode,
    /// The SDKs' result code (`code` in an AuthResult, the `loginFailed` parameter).
    pub code: u16,
    /// What went wrong, for a human; none where saying it would help an attacker.
    pub message: Option<String>,
    /// Seconds until a rate limit lets the request through again.
    pub retry_after: Option<u64>,
}

impl WebPhoneFailure {
    fn new(status: StatusCode, code: u16, message: Option<String>) -> Self {
        Self {
            status,
            code,
            message,
            retry_after: None,
        }
    }
}

impl From<Failure> for WebPhoneFailure {
    fn from(f: Failure) -> Self {
        let said = |m: &str| Some(m.to_owned());
        match f {
            Failure::BadRequest(m) => Self::new(StatusCode::BAD_REQUEST, 400, Some(m)),
            Failure::WrongCredentials => Self::new(StatusCode::UNAUTHORIZED, 401, None),
            Failure::TokenExpired => {
                Self::new(StatusCode::UNAUTHORIZED, 701, said("token expired"))
            }
            Failure::Disabled => Self::new(StatusCode::FORBIDDEN, 403, said("account disabled")),
            Failure::UnknownUser => Self::new(StatusCode::NOT_FOUND, 404, said("invalid username")),
            Failure::Throttled(t) => Self {
                retry_after: Some(t.retry_after_secs()),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    429,
                    said("too many attempts; retry later"),
                )
            },
            Failure::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                503,
                said("store unavailable; retry later"),
            ),
            Failure::Internal(reason) => {
                tracing::error!(%reason, "internal failure in a web phone request");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, 500, None)
            }
        }
    }
}

/// A web phone request the framework could not read: 415 for a body that is not
/// JSON, 400 for anything else.
pub fn unreadable_web_phone_request(err: &poem::Error) -> WebPhoneFailure {
    let status = if err.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    } else {
        StatusCode::BAD_REQUEST
    };
    WebPhoneFailure::new(status, status.as_u16(), Some(err.to_string()))
}

/// A logout either finds the session gone (done) or cannot reach the store: any
/// failure but a malformed request is answered as the store being unavailable.
pub fn logout_failure(f: Failure) -> WebPhoneFailure {
    match f {
        Failure::BadRequest(_) => f.into(),
        other => {
            if let Failure::Internal(reason) = &other {
                tracing::error!(%reason, "internal failure in a logout");
            }
            Failure::Unavailable.into()
        }
    }
}

impl<T: Body> From<WebPhoneFailure> for AuthResponse<T> {
    fn from(w: WebPhoneFailure) -> Self {
        let status = w.status;
        let body = AuthFailure::json(w.code, w.message);
        match status {
            StatusCode::BAD_REQUEST => AuthResponse::BadRequest(body),
            StatusCode::UNAUTHORIZED => AuthResponse::Unauthorized(body),
            StatusCode::FORBIDDEN => AuthResponse::Forbidden(body),
            StatusCode::NOT_FOUND => AuthResponse::NotFound(body),
            StatusCode::PAYLOAD_TOO_LARGE => AuthResponse::PayloadTooLarge(body),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => AuthResponse::UnsupportedMediaType(body),
            StatusCode::TOO_MANY_REQUESTS => {
                AuthResponse::TooManyRequests(body, w.retry_after.unwrap_or(1))
            }
            StatusCode::SERVICE_UNAVAILABLE => AuthResponse::Unavailable(body),
            _ => AuthResponse::Internal(body),
        }
    }
}

impl<T: Body> From<Failure> for AuthResponse<T> {
    fn from(f: Failure) -> Self {
        WebPhoneFailure::from(f).into()
    }
}

impl From<WebPhoneFailure> for LogoutResponse {
    fn from(w: WebPhoneFailure) -> Self {
        let status = w.status;
        let body = AuthFailure::json(w.code, w.message);
        match status {
            StatusCode::BAD_REQUEST => LogoutResponse::BadRequest(body),
            StatusCode::PAYLOAD_TOO_LARGE => LogoutResponse::PayloadTooLarge(body),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => LogoutResponse::UnsupportedMediaType(body),
            _ => LogoutResponse::Unavailable(body),
        }
    }
}

/// Whether a path speaks the web phone dialect.
fn is_web_phone_path(path: &str) -> bool {
    path.starts_with("/v1/login") || path.starts_with("/v1/logout")
}

/// The body of an error that no handler shaped, in the dialect of `path`.
pub fn dialect_body(path: &str, status: StatusCode, detail: &str) -> Response {
    let body = if is_web_phone_path(path) {
        serde_json::json!({"result": false, "code": status.as_u16(), "message": detail})
    } else {
        let title = status.canonical_reason().unwrap_or("Error");
        serde_json::json!({"errors": [{"status": status.as_u16().to_string(), "title": title, "detail": detail}]})
    };
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

/// Gives every error that escaped the handlers its dialect's shape, and a 405
/// the `Allow` header of its path.
pub fn dialect_errors<E: Endpoint + 'static>(
    ep: E,
    routes: Arc<Routes>,
) -> impl Endpoint<Output = Response> {
    ep.around(move |ep, req: Request| {
        let routes = routes.clone();
        async move {
            let path = req.uri().path().to_owned();
            match ep.call(req).await {
                Ok(resp) => Ok(resp.into_response()),
                // Errors a handler shaped (ApiError and the like) keep their body and headers.
                Err(err) if err.is_from_response() => Ok(err.into_response()),
                Err(err) => {
                    let status = err.status();
                    let detail = if status.is_server_error() {
                        tracing::error!(error = %err, %path, "unhandled error");
                        "internal error".to_owned()
                    } else {
                        err.to_string()
                    };
                    let mut resp = dialect_body(&path, status, &detail);
                    if let Some(allow) = allow_header(status, &routes, &path)
                        .and_then(|a| HeaderValue::from_str(&a).ok())
                    {
                        resp.headers_mut().insert(header::ALLOW, allow);
                    }
                    Ok(resp)
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use authgate_core::limits::Throttled;

    use super::*;

    fn throttled() -> Throttled {
        Throttled {
            retry_after: Duration::from_millis(2500),
        }
    }

    /// The status and `errors[0].status` of a commerce answer, and whether it has
    /// `Retry-After`.
    async fn commerce(e: ApiError) -> (u16, String, Option<String>) {
        let resp = e.into_response();
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: serde_json::Value =
            serde_json::from_slice(&resp.into_body().into_bytes().await.unwrap()).unwrap();
        (
            status,
            body["errors"][0]["status"].as_str().unwrap().to_owned(),
            retry,
        )
    }

    #[tokio::test]
    async fn every_core_and_scheme_b_error_has_its_commerce_answer() {
        let unavailable = || StoreError::Unavailable("down".into());
        let protocol = || StoreError::Protocol("odd".into());
        let table: Vec<(&str, ApiError, u16, Option<&str>)> = vec![
            ("store unavailable", unavailable().into(), 503, None),
            ("store protocol", protocol().into(), 500, None),
            (
                "directory not found",
                DirectoryError::NotFound("user").into(),
                404,
                None,
            ),
            (
                "directory conflict",
                DirectoryError::Conflict("taken".into()).into(),
                409,
                None,
            ),
            (
                "directory invalid",
                DirectoryError::Invalid("bad".into()).into(),
                422,
                None,
            ),
            (
                "directory store",
                DirectoryError::Store(unavailable()).into(),
                503,
                None,
            ),
            ("otp profile", OtpError::ProfileNotFound.into(), 404, None),
            ("otp not enabled", OtpError::NotEnabled.into(), 422, None),
            (
                "otp invalid",
                OtpError::Invalid("bad".into()).into(),
                400,
                None,
            ),
            ("otp unauthorized", OtpError::Unauthorized.into(), 401, None),
            (
                "otp throttled",
                OtpError::Throttled(throttled()).into(),
                429,
                Some("3"),
            ),
            ("otp unavailable", OtpError::Unavailable.into(), 503, None),
            (
                "otp internal",
                OtpError::Internal("x".into()).into(),
                500,
                None,
            ),
            // An exchange says nothing of what was wrong with the credentials.
            (
                "exchange invalid",
                exchange_error(OtpError::Invalid("x".into())),
                401,
                None,
            ),
            (
                "exchange profile",
                exchange_error(OtpError::ProfileNotFound),
                401,
                None,
            ),
            (
                "exchange not enabled",
                exchange_error(OtpError::NotEnabled),
                401,
                None,
            ),
            (
                "exchange wrong",
                exchange_error(OtpError::Unauthorized),
                401,
                None,
            ),
            (
                "exchange throttled",
                exchange_error(OtpError::Throttled(throttled())),
                429,
                Some("3"),
            ),
            (
                "exchange unavailable",
                exchange_error(OtpError::Unavailable),
                503,
                None,
            ),
        ];
        for (what, error, status, retry) in table {
            let (got, in_body, got_retry) = commerce(error).await;
            assert_eq!(got, status, "{what}");
            assert_eq!(in_body, status.to_string(), "{what}: the body's status");
            assert_eq!(got_retry.as_deref(), retry, "{what}: Retry-After");
        }
    }

    #[test]
    fn every_key_scheme_failure_has_its_web_phone_status_and_code() {
        // (failure, HTTP status, the SDKs' code, a message, Retry-After)
        let table = [
            (Failure::BadRequest("bad".into()), 400, 400, true, None),
            (Failure::WrongCredentials, 401, 401, false, None),
            (Failure::Disabled, 403, 403, true, None),
            (Failure::UnknownUser, 404, 404, true, None),
            (Failure::Throttled(throttled()), 429, 429, true, Some(3)),
            (Failure::TokenExpired, 401, 701, true, None),
            (Failure::Unavailable, 503, 503, true, None),
            (
                Failure::Internal("secret reason".into()),
                500,
                500,
                false,
                None,
            ),
        ];
        for (failure, status, code, message, retry) in table {
            let what = format!("{failure:?}");
            let w = WebPhoneFailure::from(failure.clone());
            assert_eq!(w.status.as_u16(), status, "{what}");
            assert_eq!(
                w.code, code,
                "{what}: the same code over REST and the socket"
            );
            assert_eq!(w.message.is_some(), message, "{what}");
            assert!(
                !w.message.unwrap_or_default().contains("secret reason"),
                "{what}: internal reasons stay in the log"
            );
            assert_eq!(w.retry_after, retry, "{what}");
            let rest: AuthResponse<serde_json::Value> = failure.clone().into();
            assert_eq!(rest.into_response().status().as_u16(), status, "{what}");
            // A logout answers a malformed request as such and anything else as
            // the store being unavailable.
            let logout = logout_failure(failure);
            let expected = if status == 400 { 400 } else { 503 };
            assert_eq!(logout.status.as_u16(), expected, "{what}: logout");
            assert_eq!(
                LogoutResponse::from(logout)
                    .into_response()
                    .status()
                    .as_u16(),
                expected,
                "{what}: logout"
            );
        }
    }
}
