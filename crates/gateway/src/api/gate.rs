//! Token checks: forward-auth for reverse proxies and RFC 7662-style introspection.
//! Each is one read of one key in the store, so revocation shows at once everywhere.

use std::sync::Arc;

use authgate_core::tokens::{Principal, Scheme};
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::document::{Fail, PublicUncounted, StoreOnly};
use super::{Tag, UserToken};
use crate::errors::Errors;
use crate::state::AppState;

/// The answer to a forward-auth check.
#[derive(Debug, ApiResponse)]
pub enum VerifyResponse {
    /// The token is live: pass the request on with these headers.
    #[oai(status = 200)]
    Ok(
        /// The session's username: `user@app.account` for a web phone user (whatever
        /// form the login used), the username in the password profile for an account member.
        #[oai(header = "X-Auth-User")]
        String,
        /// The directory user's id (the account member id).
        #[oai(header = "X-Auth-User-Id")]
        String,
        /// The authentication realm.
        #[oai(header = "X-Auth-Realm")]
        String,
        /// `one-time-key` or `account-management`.
        #[oai(header = "X-Auth-Scheme")]
        String,
    ),
    /// No token, or not a live user token.
    #[oai(status = 401)]
    Unauthorized(Json<Errors>, #[oai(header = "WWW-Authenticate")] String),
}

/// Which kind of session a token belongs to.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "kebab-case")]
pub enum TokenScheme {
    /// A web phone user's session (one-time login key, password or token login).
    OneTimeKey,
    /// An account member's account management authentication token.
    AccountManagement,
    /// An API client's token.
    Client,
}

impl From<Scheme> for TokenScheme {
    fn from(s: Scheme) -> Self {
        match s {
            Scheme::OneTimeKey => Self::OneTimeKey,
            Scheme::AccountManagement => Self::AccountManagement,
            Scheme::Client => Self::Client,
        }
    }
}

/// An introspection request.
#[derive(Debug, Object)]
pub struct IntrospectRequest {
    /// The token to check.
    #[oai(validator(max_length = 4096))]
    pub token: String,
}

/// What is known of a token (RFC 7662 style). Only `active` is present for a dead token.
#[derive(Debug, Object, PartialEq, Eq)]
pub struct Introspection {
    /// Whether the token is live.
    pub active: bool,
    /// The directory user's id (or the client id for client tokens).
    #[oai(skip_serializing_if_is_none)]
    pub sub: Option<String>,
    /// The username.
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    /// The authentication realm.
    #[oai(skip_serializing_if_is_none)]
    pub realm_id: Option<String>,
    /// The kind of session.
    #[oai(skip_serializing_if_is_none)]
    pub scheme: Option<TokenScheme>,
    /// Unix time the token expires.
    #[oai(skip_serializing_if_is_none)]
    pub exp: Option<i64>,
}

/// The answer to an introspection.
#[derive(Debug, ApiResponse)]
pub enum IntrospectResponse {
    /// What is known (also for unknown tokens: `{"active": false}`).
    #[oai(status = 200)]
    Ok(Json<Introspection>),
}

/// Token checks.
pub struct GateApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "Tag::Gate")]
impl GateApi {
    /// Forward-auth check
    ///
    /// For nginx `auth_request`, Traefik ForwardAuth or Envoy ext_authz. Reads
    /// `Authorization: Bearer <access token>` or `EP-Account-Management-Authentication-Token`.
    /// 200 with `X-Auth-User`, `X-Auth-User-Id`, `X-Auth-Realm` and `X-Auth-Scheme`
    /// for a live user session, 401 otherwise. API client tokens are not user sessions
    /// and are refused here.
    #[oai(path = "/v1/auth/verify", method = "get", operation_id = "verify")]
    async fn verify(&self, tokens: UserToken) -> Result<VerifyResponse, Fail<StoreOnly>> {
        let token = tokens.0.bearer.or(tokens.0.member);
        let principal = match token.as_deref() {
            Some(t) => self.state.tokens.verify(t).await?,
            None => None,
        };
        Ok(match principal {
            Some(Principal { subject, .. }) if subject.scheme != Scheme::Client => {
                VerifyResponse::Ok(
                    subject.username,
                    subject.id.as_str().to_owned(),
                    subject.realm_id.into(),
                    subject.scheme.as_str().to_owned(),
                )
            }
            _ => VerifyResponse::Unauthorized(
                Errors::one(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    Some("no live user token".to_owned()),
                ),
                "Bearer".to_owned(),
            ),
        })
    }

    /// Introspect a token
    ///
    /// RFC 7662-style: `{"active": true, "sub", "username", "realm_id", "scheme", "exp"}`
    /// for a live token, `{"active": false}` for anything else.
    #[oai(
        path = "/v1/tokens/introspect",
        method = "post",
        operation_id = "introspect"
    )]
    async fn introspect(
        &self,
        body: Json<IntrospectRequest>,
    ) -> Result<IntrospectResponse, Fail<PublicUncounted>> {
        let found = self.state.tokens.verify(body.token.trim()).await?;
        Ok(IntrospectResponse::Ok(Json(match found {
            Some(p) => Introspection {
                active: true,
                sub: Some(p.subject.id.as_str().to_owned()),
                username: Some(p.subject.username),
                realm_id: Some(p.subject.realm_id.into()),
                scheme: Some(p.subject.scheme.into()),
                exp: Some(p.expires_at),
            },
            None => Introspection {
                active: false,
                sub: None,
                username: None,
                realm_id: None,
                scheme: None,
                exp: None,
            },
        })))
    }
}
