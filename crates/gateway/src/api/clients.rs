//! API client tokens: `POST /oauth/access_token` with the client credentials grant
//! (admin) or the implicit grant (public operations only).

use std::sync::Arc;

use authgate_core::crypto::ct_eq;
use authgate_core::tokens::{Role, Scheme, Subject, SubjectId};
use poem::Request;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use serde::Deserialize;

use super::document::{Fail, PublicBody};
use super::Tag;
use crate::errors::ApiError;
use crate::state::AppState;

/// How a client asks for a token.
#[derive(Debug, Clone, Copy, Enum, Deserialize, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// With `client_id` and `client_secret`: an admin token.
    ClientCredentials,
    /// With `client_id` only: a token for public operations.
    Implicit,
}

/// The kind of token issued.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
pub enum TokenType {
    /// Send it as `Authorization: Bearer <access_token>`.
    Bearer,
}

/// A token request, form-encoded.
#[derive(Debug, Object, Deserialize)]
pub struct TokenRequest {
    /// `client_credentials` (needs the secret; admin token) or `implicit` (public token).
    pub grant_type: GrantType,
    /// The client id.
    pub client_id: String,
    /// The client secret (client credentials grant only).
    pub client_secret: Option<String>,
}

/// A client token.
#[derive(Debug, Object)]
pub struct ClientToken {
    /// The bearer token for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: TokenType,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Unix time it expires.
    pub expires: i64,
    /// The grant it came from.
    pub identifier: GrantType,
}

/// The answer to a token request.
#[derive(Debug, ApiResponse)]
pub enum TokenResponse {
    /// A token.
    #[oai(status = 200)]
    Ok(Json<ClientToken>),
}

/// Client authentication.
pub struct ClientsApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "Tag::Clients")]
impl ClientsApi {
    /// Get a client token
    ///
    /// `grant_type=client_credentials` with `client_id` and `client_secret` gives an
    /// admin token; `grant_type=implicit` with `client_id` gives a token for public
    /// operations. Form-encoded, as OAuth clients send it.
    #[oai(
        path = "/oauth/access_token",
        method = "post",
        operation_id = "createClientToken"
    )]
    async fn token(
        &self,
        req: &Request,
        body: Form<TokenRequest>,
    ) -> Result<TokenResponse, Fail<PublicBody>> {
        self.state.count_ip(req, "client-auth").await?;
        let id_ok = ct_eq(body.client_id.as_bytes(), self.state.client_id.as_bytes());
        let role = match body.grant_type {
            GrantType::ClientCredentials => {
                let secret_ok = body
                    .client_secret
                    .as_deref()
                    .is_some_and(|s| self.state.client_secret_matches(s));
                if !(id_ok && secret_ok) {
                    return Err(ApiError::unauthorized("invalid client_id or client_secret").into());
                }
                Role::Admin
            }
            GrantType::Implicit => {
                if !id_ok {
                    return Err(ApiError::unauthorized("invalid client_id").into());
                }
                Role::Public
            }
        };
        let subject = Subject {
            id: SubjectId::Client(self.state.client_id.clone()),
            username: self.state.client_id.clone(),
            realm_id: self.state.directory.realm_id().clone(),
            scheme: Scheme::Client,
            role,
        };
        let ttl = self.state.client_token_ttl;
        let tokens = self.state.tokens.issue(&subject, Some(ttl)).await?;
        Ok(TokenResponse::Ok(Json(ClientToken {
            access_token: tokens.access_token,
            token_type: TokenType::Bearer,
            expires_in: ttl.as_secs(),
            expires: time::OffsetDateTime::now_utc().unix_timestamp() + ttl.as_secs() as i64,
            identifier: body.grant_type,
        })))
    }
}
