//! The HTTP API, one module per group of endpoints, all in one OpenAPI document.
//!
//! # Layout
//!
//! - [`webphone`], [`clients`], [`directory`], [`accounts`], [`integrations`],
//!   [`gate`], [`health`]: the endpoints.
//! - [`document`](mod@document): each operation's statuses, the finished document, the route table.
//! - [`types`]: field types with the schemas generated clients need.
//! - [`explorer`]: Swagger UI at `/docs/`.

pub mod accounts;
pub mod clients;
pub mod directory;
pub mod document;
pub mod explorer;
pub mod gate;
pub mod health;
pub mod integrations;
pub mod types;
pub mod webphone;

use std::sync::Arc;

use authgate_core::limits::AddressCount;
use authgate_core::store::{Batch, StoreExt};
use authgate_core::tokens::{Check, Principal, Role, Scheme};
use poem::http::header::{HeaderName, AUTHORIZATION};
use poem::{Request, RequestBody};
use poem_openapi::auth::{ApiKey, Basic, BasicAuthorization, Bearer};
use poem_openapi::payload::Json;
use poem_openapi::registry::Registry;
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use poem_openapi::{ApiResponse, LicenseObject, OpenApiService, SecurityScheme, Tags};

use crate::errors::ApiError;
use crate::state::AppState;

/// Groups of endpoints in the document.
#[derive(Tags)]
pub enum Tag {
    /// One-time login key, password and token logins of web phone users (SDK-compatible AuthResult).
    #[oai(rename = "Web phone login")]
    WebPhone,
    /// API client tokens (client credentials and implicit grants).
    #[oai(rename = "Client authentication")]
    Clients,
    /// Account authentication settings.
    Settings,
    /// Password profiles of the authentication realm.
    #[oai(rename = "Password profiles")]
    PasswordProfiles,
    /// Users (user authentication info) and their credentials.
    #[oai(rename = "Users")]
    Users,
    /// Where one-time password tokens are delivered, and the delivery logs.
    Integrations,
    /// Checks of access tokens for reverse proxies and services.
    #[oai(rename = "Token checks")]
    Gate,
    /// Liveness and readiness.
    Health,
}

/// `Authorization: Bearer <token>`: an API client token from `POST /oauth/access_token`,
/// or, for `GET /v1/auth/verify`, a web phone user's access token.
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct BearerToken(pub Bearer);

/// `EP-Account-Management-Authentication-Token: <token>`: an account member's token
/// from `POST /v2/account-members/tokens`.
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "EP-Account-Management-Authentication-Token",
    key_in = "header"
)]
pub struct AccountManagementToken(pub ApiKey);

/// `Authorization: Basic base64(client_id:client_secret)`: the API client's own
/// credentials (RFC 7617; RFC 6749 §2.3.1), for `POST /v1/tokens/introspect`.
#[derive(SecurityScheme)]
#[oai(ty = "basic")]
pub struct ClientSecretBasic(pub Basic);

/// The member token's header, `EP-Account-Management-Authentication-Token`
/// (a name made once: every token check looks it up).
pub const MEMBER_TOKEN_HEADER: HeaderName =
    HeaderName::from_static("ep-account-management-authentication-token");

/// How a caller of `POST /v1/tokens/introspect` says it is the API client, read
/// from `Authorization` without failing: the operation decides what a missing or
/// wrong one means (401 with its challenges).
#[derive(Default)]
pub enum ClientCaller {
    /// No `Authorization` header, or one of another scheme.
    #[default]
    Missing,
    /// HTTP Basic: the client id and secret.
    Basic {
        /// The user-id part.
        client_id: String,
        /// The password part.
        client_secret: String,
    },
    /// `Authorization: Bearer`: a client token, it is hoped.
    Bearer(String),
}

impl std::fmt::Debug for ClientCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret or the token.
        f.write_str(match self {
            Self::Missing => "Missing",
            Self::Basic { .. } => "Basic",
            Self::Bearer(_) => "Bearer",
        })
    }
}

impl ClientCaller {
    fn read(req: &Request) -> Self {
        if let Some(token) = req.header("authorization").and_then(bearer_token) {
            return Self::Bearer(token.to_owned());
        }
        match <Basic as BasicAuthorization>::from_request(req) {
            Ok(b) => Self::Basic {
                client_id: b.username,
                client_secret: b.password,
            },
            Err(_) => Self::Missing,
        }
    }
}

impl<'a> ApiExtractor<'a> for ClientCaller {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <ClientSecretBasic as ApiExtractor>::register(registry);
        <BearerToken as ApiExtractor>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        vec!["ClientSecretBasic", "BearerToken"]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        Ok(Self::read(req))
    }
}

/// The token of `Authorization: Bearer <token>`, if that is the header's form.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The tokens a request carries in the two documented places, read without
/// failing: the operations that accept them decide what a missing one means.
#[derive(Debug, Default)]
pub struct PresentedTokens {
    /// From `Authorization: Bearer`.
    pub bearer: Option<String>,
    /// From `EP-Account-Management-Authentication-Token`.
    pub member: Option<String>,
}

impl PresentedTokens {
    fn read(req: &Request) -> Self {
        // By names made once: every token check starts here.
        let header = |name: &HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
        Self {
            bearer: header(&AUTHORIZATION)
                .and_then(bearer_token)
                .map(str::to_owned),
            member: header(&MEMBER_TOKEN_HEADER)
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        }
    }
}

/// Implements the extractor of a [`PresentedTokens`] newtype whose operations
/// accept the listed security requirements (`A&B`: both at once; see
/// [`document::finish`]).
macro_rules! presented_tokens {
    ($(#[$doc:meta])* $name:ident, [$($requirement:literal),*]) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub struct $name(pub PresentedTokens);

        impl<'a> ApiExtractor<'a> for $name {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                <BearerToken as ApiExtractor>::register(registry);
                <AccountManagementToken as ApiExtractor>::register(registry);
            }

            fn security_schemes() -> Vec<&'static str> {
                vec![$($requirement),*]
            }

            async fn from_request(
                req: &'a Request,
                _body: &mut RequestBody,
                _opts: ExtractParamOptions<()>,
            ) -> poem::Result<Self> {
                Ok(Self(PresentedTokens::read(req)))
            }
        }
    };
}

presented_tokens!(
    /// A user's token for `GET /v1/auth/verify`: either scheme's.
    UserToken,
    ["BearerToken", "AccountManagementToken"]
);

presented_tokens!(
    /// A client token, with the member's token when the client is not an admin.
    ClientWithMember,
    ["BearerToken", "BearerToken&AccountManagementToken"]
);

/// The first round trip of a client's request: the bearer token's session
/// (unless this replica verified that token within the last second) joins the
/// handler's own `batch` (its reads and the per-address count, `counted`), which
/// runs once. Fails with 401 or 429 before the handler reads its handles. No
/// round trip at all when there is nothing to send, nor for a token that cannot
/// be ours.
pub async fn client_and(
    state: &AppState,
    auth: &BearerToken,
    mut batch: Batch,
    counted: AddressCount,
) -> Result<Principal, ApiError> {
    let unauthorized = || ApiError::unauthorized("the bearer token is unknown or expired");
    let pending = state
        .tokens
        .prepare_check(&auth.0.token)
        .ok_or_else(unauthorized)?;
    let recent = state.tokens.recent_client(&pending);
    let check = recent.is_none().then(|| pending.check_in(&mut batch));
    state.store.run(batch).await?;
    let principal = match (recent, check) {
        (Some(p), _) => p,
        (None, Some(check)) => match check.get()? {
            Check::Valid(p) if p.subject.scheme == Scheme::Client => {
                state.tokens.remember_client(&pending, &p);
                p
            }
            _ => return Err(unauthorized()),
        },
        (None, None) => return Err(unauthorized()),
    };
    state.address_verdict(counted)?;
    Ok(principal)
}

/// The API client's session behind a bearer token, or 401.
pub async fn client(state: &AppState, auth: &BearerToken) -> Result<Principal, ApiError> {
    client_and(state, auth, Batch::new(), AddressCount::default()).await
}

/// The API client's session, which must come from the client credentials grant.
pub async fn admin(state: &AppState, auth: &BearerToken) -> Result<Principal, ApiError> {
    let p = client(state, auth).await?;
    if p.subject.role == Role::Admin {
        Ok(p)
    } else {
        Err(ApiError::forbidden(
            "this operation needs a client_credentials token, not an implicit one",
        ))
    }
}

/// A resource just created.
#[derive(Debug, ApiResponse)]
pub enum Created<T: ToJSON> {
    /// Created; the resource as stored.
    #[oai(status = 201)]
    Created(Json<T>),
}

/// The resource (or list) as it is now.
#[derive(Debug, ApiResponse)]
pub enum Found<T: ToJSON> {
    /// The resource as it is now.
    #[oai(status = 200)]
    Ok(Json<T>),
}

/// A deletion.
#[derive(Debug, ApiResponse)]
pub enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    NoContent,
}

/// The document clients get: poem-openapi's, finished (see [`document::finish`]).
pub fn document(api: &OpenApiService<Api, ()>) -> Result<String, String> {
    document::finish(&api.spec())
}

/// The whole API of one gateway instance.
pub type Api = (
    webphone::WebPhoneApi,
    clients::ClientsApi,
    directory::settings::SettingsApi,
    directory::profiles::ProfilesApi,
    directory::users::UsersApi,
    directory::credentials::CredentialsApi,
    accounts::AccountsApi,
    integrations::IntegrationsApi,
    gate::GateApi,
    health::HealthApi,
);

/// The API and its document.
pub fn service(state: Arc<AppState>) -> OpenApiService<Api, ()> {
    OpenApiService::new(
        (
            webphone::WebPhoneApi {
                state: state.clone(),
            },
            clients::ClientsApi {
                state: state.clone(),
            },
            directory::settings::SettingsApi {
                state: state.clone(),
            },
            directory::profiles::ProfilesApi {
                state: state.clone(),
            },
            directory::users::UsersApi {
                state: state.clone(),
            },
            directory::credentials::CredentialsApi {
                state: state.clone(),
            },
            accounts::AccountsApi {
                state: state.clone(),
            },
            integrations::IntegrationsApi {
                state: state.clone(),
            },
            gate::GateApi {
                state: state.clone(),
            },
            health::HealthApi { state },
        ),
        "authgate",
        env!("CARGO_PKG_VERSION"),
    )
    .description(DESCRIPTION)
    .license(
        LicenseObject::new(env!("CARGO_PKG_LICENSE"))
            .url("https://www.apache.org/licenses/LICENSE-2.0"),
    )
    // Relative: clients and Swagger UI call the host that served the document.
    .server("/")
}

const DESCRIPTION: &str = "\
An auth gateway with two login schemes behind one directory and one token service.

**Web phone login (one-time login key).** A browser asks for a key for \
`user@app.account.voximplant.com`, your backend answers `MD5(key|MD5(user:voximplant.com:password))`, \
and the browser logs in with that hash. Keys live five minutes, work once, and a new key voids the old. \
Results are AuthResult objects with the web phone SDKs' codes. \
The web SDK itself (`init({serverIp})`) talks to the same rules over the WebSocket endpoint \
`/platform` (`wss://` when the gateway serves TLS): JSON text frames `{\"name\", \"params\"}` \
such as `loginGenerateOneTimeKey`, `loginUsingOneTimeKey`, `login` and `refreshOauthToken`; \
it is not an OpenAPI operation and so is not listed below.

**Directory.** Password profiles, users and their credentials, in the commerce platform's \
JSON:API-style wire format (`{\"data\": ...}`, errors as `{\"errors\": [...]}`), behind client tokens \
from `POST /oauth/access_token`. A password profile with `voximplant_application` set exposes its users \
to web phone login.

**One-time password tokens.** A six-character code, requested for a username of a password profile \
with `enable_one_time_password_token`, reaches the user through a webhook integration (delivered from a \
durable outbox, retried, logged) and is exchanged once, within ten minutes, at `POST /v2/account-members/tokens` \
for an account management authentication token, for passwordless login or a password reset.

**Token checks.** `GET /v1/auth/verify` is a forward-auth endpoint for reverse proxies; \
`POST /v1/tokens/introspect` answers the API client (HTTP Basic or a client credentials token) per RFC 7662. \
Revocation takes effect at once on every replica.

State lives in Redis (or, for trying it out, an embedded store), so any number of replicas can share it.";
