//! Token checks: forward-auth for reverse proxies and RFC 7662-style introspection.
//! Each is one read of one key in the store, so revocation shows at once everywhere.

use std::sync::Arc;

use authgate_core::crypto::ct_eq;
use authgate_core::store::{Batch, StoreExt};
use authgate_core::tokens::{Check, Principal, Role, Scheme, SubjectId};
use poem::http::{HeaderName, HeaderValue, StatusCode};
use poem::{IntoResponse, Request};
use poem_openapi::payload::{Form, Json};
use poem_openapi::registry::{MetaResponses, Registry};
use poem_openapi::{ApiRequest, ApiResponse, Enum, Object, OpenApi};
use serde::Deserialize;

use super::document::{Fail, Introspect, StoreOnly};
use super::{ClientCaller, Tag, UserToken};
use crate::errors::{ApiError, Errors};
use crate::state::AppState;

/// The answer to a forward-auth check, as the document describes it. The live
/// answer is written by [`Verdict`]; this variant stays as its documented shape
/// (and the test that both agree).
#[derive(Debug, ApiResponse)]
pub enum VerifyResponse {
    /// The token is live: pass the request on with these headers.
    #[oai(status = 200)]
    #[cfg_attr(not(test), allow(dead_code))]
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

/// What `GET /v1/auth/verify` answers. Forward-auth sits on the path of every
/// request an application serves, so a live token's answer is written here by
/// hand, with header names made once, rather than by the derived
/// [`VerifyResponse`], which parses and lowercases each name on every answer.
/// The document is [`VerifyResponse`]'s.
#[derive(Debug)]
pub enum Verdict {
    /// A live user token: the values of `X-Auth-User`, `X-Auth-User-Id`,
    /// `X-Auth-Realm` and `X-Auth-Scheme`.
    Live([String; 4]),
    /// Anything else.
    Refused(VerifyResponse),
}

/// The names of [`Verdict::Live`]'s headers, in its order.
const VERDICT_HEADERS: [HeaderName; 4] = [
    HeaderName::from_static("x-auth-user"),
    HeaderName::from_static("x-auth-user-id"),
    HeaderName::from_static("x-auth-realm"),
    HeaderName::from_static("x-auth-scheme"),
];

impl ApiResponse for Verdict {
    fn meta() -> MetaResponses {
        VerifyResponse::meta()
    }

    fn register(registry: &mut Registry) {
        VerifyResponse::register(registry);
    }
}

impl IntoResponse for Verdict {
    fn into_response(self) -> poem::Response {
        match self {
            Self::Live(values) => {
                let mut resp = poem::Response::default();
                let headers = resp.headers_mut();
                for (name, value) in VERDICT_HEADERS.into_iter().zip(values) {
                    // As the derived response does: a value that cannot be a
                    // header's is left out.
                    if let Ok(value) = HeaderValue::try_from(value) {
                        headers.insert(name, value);
                    }
                }
                resp
            }
            Self::Refused(refused) => refused.into_response(),
        }
    }
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

/// The longest token worth looking up; anything longer is refused as malformed.
const MAX_TOKEN_LEN: usize = 4096;

/// An introspection request (RFC 7662 §2.1).
#[derive(Debug, Object, Deserialize)]
pub struct IntrospectRequest {
    /// The token to check.
    #[oai(validator(max_length = 4096))]
    pub token: String,
    /// A hint of the token's type (`access_token`, say). Optional and ignored:
    /// every kind of token the gateway issues is looked up the same way.
    #[oai(validator(max_length = 64))]
    pub token_type_hint: Option<String>,
}

/// The body of an introspection: RFC 7662's form (`token=...`).
#[derive(Debug, ApiRequest)]
pub enum IntrospectBody {
    /// `token=...&token_type_hint=...`, as RFC 7662 §2.1 sends it.
    Form(Form<IntrospectRequest>),
    /// The same fields as a JSON object.
    Json(Json<IntrospectRequest>),
}

impl IntrospectBody {
    fn into_inner(self) -> IntrospectRequest {
        match self {
            Self::Form(Form(r)) | Self::Json(Json(r)) => r,
        }
    }
}

/// What is known of a token (RFC 7662 style). Only `active` is present for a
/// token that is not active, or that the calling client may not see.
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

impl Introspection {
    /// `{"active": false}`, and nothing else.
    pub fn inactive() -> Self {
        Self {
            active: false,
            sub: None,
            username: None,
            realm_id: None,
            scheme: None,
            exp: None,
        }
    }
}

/// The challenges of a refused introspection: the API client's two ways in.
pub const INTROSPECT_CHALLENGES: &str = r#"Basic realm="authgate", Bearer realm="authgate""#;

/// The answer to an introspection.
#[derive(Debug, ApiResponse)]
pub enum IntrospectResponse {
    /// What is known (`{"active": false}` for anything not active, or not the
    /// calling client's to see).
    #[oai(status = 200)]
    Ok(Json<Introspection>),
    /// The caller is not the API client: no credentials, wrong ones, or a token
    /// that is not a live client credentials token. Nothing is said of the token.
    #[oai(status = 401)]
    Unauthorized(Json<Errors>, #[oai(header = "WWW-Authenticate")] String),
}

impl IntrospectResponse {
    fn refused(detail: &str) -> Self {
        Self::Unauthorized(
            Errors::one(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                Some(detail.to_owned()),
            ),
            INTROSPECT_CHALLENGES.to_owned(),
        )
    }
}

/// The text of an `application/x-www-form-urlencoded` value (`+` a space, `%XX`
/// a byte), when it has anything to decode: RFC 6749 §2.3.1 has clients encode
/// their id and secret so before HTTP Basic, and not every client does.
fn form_decoded(raw: &str) -> Option<String> {
    if !raw.contains(['%', '+']) {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        out.push(match b {
            b'+' => b' ',
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?
            }
            b => b,
        });
    }
    String::from_utf8(out).ok()
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
    async fn verify(&self, tokens: UserToken) -> Result<Verdict, Fail<StoreOnly>> {
        let token = tokens.0.bearer.or(tokens.0.member);
        let principal = match token.as_deref() {
            Some(t) => self.state.tokens.verify(t).await?,
            None => None,
        };
        Ok(match principal {
            Some(Principal { subject, .. }) if subject.scheme != Scheme::Client => Verdict::Live([
                subject.username,
                subject.id.as_str().to_owned(),
                subject.realm_id.into(),
                subject.scheme.as_str().to_owned(),
            ]),
            _ => Verdict::Refused(VerifyResponse::Unauthorized(
                Errors::one(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    Some("no live user token".to_owned()),
                ),
                "Bearer".to_owned(),
            )),
        })
    }

    /// Introspect a token
    ///
    /// RFC 7662: `{"active": true, "sub", "username", "realm_id", "scheme", "exp"}`
    /// for a live token, `{"active": false}` (and nothing else) for anything else:
    /// unknown, expired, revoked or malformed tokens, and tokens the calling client
    /// may not see. The caller authenticates as the API client, with HTTP Basic
    /// (`client_id:client_secret`) or a client credentials token as
    /// `Authorization: Bearer`; anything else gets 401 and learns nothing of the
    /// token. The API client may see every token of its realm, its own client
    /// tokens included. The body is RFC 7662's form (`token=...`, an optional
    /// `token_type_hint`) or the same fields as JSON. Every call counts against the
    /// caller's address, with `POST /oauth/access_token` (429 past the limit).
    #[oai(
        path = "/v1/tokens/introspect",
        method = "post",
        operation_id = "introspect"
    )]
    async fn introspect(
        &self,
        req: &Request,
        caller: ClientCaller,
        body: IntrospectBody,
    ) -> Result<IntrospectResponse, Fail<Introspect>> {
        let asked = body.into_inner();
        // The JSON schema's limits, for the form too.
        if asked.token.len() > MAX_TOKEN_LEN {
            return Err(ApiError::bad("token: at most 4096 characters").into());
        }
        if asked.token_type_hint.as_ref().is_some_and(|h| h.len() > 64) {
            return Err(ApiError::bad("token_type_hint: at most 64 characters").into());
        }
        let state = &self.state;
        let tokens = &state.tokens;
        // One round trip: the count, the caller's token, and the token asked
        // about, which is read only when the caller may be the client and is
        // looked at only once it is.
        let mut batch = Batch::new();
        let counted = state.count_address(&mut batch, req, "client-auth");
        let (secret_ok, bearer) = match &caller {
            ClientCaller::Basic {
                client_id,
                client_secret,
            } => (Some(self.client_matches(client_id, client_secret)), None),
            ClientCaller::Bearer(token) => (None, tokens.prepare_check(token)),
            ClientCaller::Missing => (None, None),
        };
        let recent = bearer.as_ref().and_then(|p| tokens.recent_client(p));
        let bearer_check = match (&bearer, &recent) {
            (Some(pending), None) => Some(pending.check_in(&mut batch)),
            _ => None,
        };
        let may_be_client = secret_ok == Some(true) || bearer.is_some();
        let asked_check = if may_be_client {
            tokens
                .prepare_check(asked.token.trim())
                .map(|p| p.check_in(&mut batch))
        } else {
            None
        };
        state.store.run(batch).await?;
        // Past the limit, nothing else is told: not even whether the credentials were right.
        state.address_verdict(counted)?;

        let who = match (&caller, secret_ok, recent, bearer_check) {
            (_, Some(true), _, _) => Ok(None),
            (_, Some(false), _, _) => Err("invalid client_id or client_secret"),
            (_, None, Some(p), _) => Ok(Some(p)),
            (_, None, None, Some(check)) => match check.get()? {
                Check::Valid(p) if p.subject.scheme == Scheme::Client => {
                    if let Some(pending) = &bearer {
                        tokens.remember_client(pending, &p);
                    }
                    Ok(Some(p))
                }
                _ => Err(BEARER_REFUSED),
            },
            (ClientCaller::Bearer(_), _, _, _) => Err(BEARER_REFUSED),
            _ => Err("authenticate as the API client: HTTP Basic with client_id and client_secret, or a client credentials token as Bearer"),
        };
        let who = match who {
            Ok(who) => who,
            Err(detail) => return Ok(IntrospectResponse::refused(detail)),
        };
        // A client token must be a client credentials token of this gateway's
        // client: the implicit grant's are handed to anyone who knows the id.
        if let Some(p) = who {
            if !matches!(&p.subject.id, SubjectId::Client(id) if *id == state.client_id) {
                return Ok(IntrospectResponse::refused(BEARER_REFUSED));
            }
            if p.subject.role != Role::Admin {
                return Ok(IntrospectResponse::refused(
                    "only a client credentials token may introspect, not an implicit one",
                ));
            }
        }
        let found = match asked_check {
            Some(check) => match check.get()? {
                Check::Valid(p) => Some(p),
                Check::Expired | Check::Invalid => None,
            },
            None => None,
        };
        Ok(IntrospectResponse::Ok(Json(match found {
            Some(p) if self.entitled(&p) => Introspection {
                active: true,
                sub: Some(p.subject.id.as_str().to_owned()),
                username: Some(p.subject.username),
                realm_id: Some(p.subject.realm_id.into()),
                scheme: Some(p.subject.scheme.into()),
                exp: Some(p.expires_at),
            },
            _ => Introspection::inactive(),
        })))
    }
}

/// Why a bearer token does not let its holder introspect.
const BEARER_REFUSED: &str = "the bearer token is not a live client credentials token";

impl GateApi {
    /// Whether HTTP Basic's user-id and password are the API client's, as sent
    /// or form-decoded (constant time for each).
    fn client_matches(&self, client_id: &str, client_secret: &str) -> bool {
        let matches = |id: &str, secret: &str| {
            // Both are compared, whatever the first says.
            let id_ok = ct_eq(id.as_bytes(), self.state.client_id.as_bytes());
            let secret_ok = self.state.client_secret_matches(secret);
            id_ok & secret_ok
        };
        let (id, secret) = (form_decoded(client_id), form_decoded(client_secret));
        matches(client_id, client_secret)
            || ((id.is_some() || secret.is_some())
                && matches(
                    id.as_deref().unwrap_or(client_id),
                    secret.as_deref().unwrap_or(client_secret),
                ))
    }

    /// Whether the API client may see `p`'s token. There is one API client per
    /// gateway, and it may see every session of its realm: its users' (both
    /// schemes) and its own client tokens. A client token of another client id
    /// (one from before `AUTHGATE_CLIENT_ID` changed) is not its to see, nor is
    /// anything of another realm.
    fn entitled(&self, p: &Principal) -> bool {
        let realm_ok = p.subject.realm_id == *self.state.directory.realm_id();
        let client_ok = match &p.subject.id {
            SubjectId::Client(id) => *id == self.state.client_id,
            SubjectId::User(_) => true,
        };
        realm_ok && client_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written live answer is the documented one, header for header.
    #[test]
    fn the_live_verdict_answers_as_the_documented_response_does() {
        let values = [
            "myuser@myapp.myaccount.voximplant.com",
            "3f1c2a9e-0000-4000-8000-000000000001",
            "7d1f0c52-0000-4000-8000-000000000002",
            "one-time-key",
        ]
        .map(str::to_owned);
        let [user, id, realm, scheme] = values.clone();
        let documented = VerifyResponse::Ok(user, id, realm, scheme).into_response();
        let written = Verdict::Live(values).into_response();
        assert_eq!(written.status(), documented.status());
        assert_eq!(written.headers(), documented.headers());
        assert_eq!(written.headers().len(), 4);
        // A value no header can carry is left out by both.
        let bad = "line\nbreak".to_owned();
        let documented =
            VerifyResponse::Ok(bad.clone(), "i".into(), "r".into(), "s".into()).into_response();
        let written = Verdict::Live([bad, "i".into(), "r".into(), "s".into()]).into_response();
        assert_eq!(written.headers(), documented.headers());
        assert!(!written.headers().contains_key("x-auth-user"));
    }
}
