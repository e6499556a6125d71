//! Errors on the wire, in each dialect's own shape, mapped in one place.
//!
//! The commerce dialect (`/v2`, `/oauth`, and the gateway's own endpoints) answers
//! `{"errors": [{"status": "401", "title": ..., "detail": ...}]}`; the web phone
//! dialect (`/v1/login`, `/v1/logout`) answers an AuthResult with `result: false`
//! and a `code`. [`ApiError`] is what handlers return; [`dialect_errors`] catches
//! whatever a handler never saw (unknown routes, oversized or unparsable bodies,
//! missing credentials) and gives it the same shape, so no error leaves as plain text.

use std::sync::Arc;

use authgate_core::directory::DirectoryError;
use authgate_core::store::StoreError;
use authgate_otp::OtpError;
use poem::http::header::{self, HeaderValue};
use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use crate::api::document::{allow_header, Routes};

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
            StoreError::Protocol(reason) => {
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
