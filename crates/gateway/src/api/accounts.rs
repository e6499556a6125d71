//! One-time password tokens over the commerce platform's API: the code request
//! and the exchange for an account management authentication token.

use std::sync::Arc;

use authgate_core::directory::{DirectoryError, PasswordProfile, SelfManagement, Settings};
use authgate_core::ids::{AccountId, ProfileId, UserId};
use authgate_core::limits::AddressCount;
use authgate_core::store::{Batch, Handle, StoreExt};
use authgate_core::tokens::{PendingAccountToken, Role, Scheme, Subject, SubjectId};
use authgate_otp::{Member, OtpError, OtpScheme, Purpose};
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use time::format_description::well_known::Rfc3339;

use super::directory::known;
use super::document::{CodeRequest, Fail, PublicBody};
use super::types::{Direct, Nullable, OneTimeCode, Timestamp};
use super::{client_and, BearerToken, Tag};
use crate::errors::{exchange_error, ApiError};
use crate::state::AppState;

/// The type of a code request.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum CodeRequestType {
    /// The only value.
    OneTimePasswordTokenRequest,
}

/// What a code is for.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename = "Purpose", rename_all = "snake_case")]
pub enum PurposeDto {
    /// To set a new password (the email links to the reset page).
    ResetPassword,
    /// To log in without a password.
    PasswordlessAuthentication,
}

impl From<PurposeDto> for Purpose {
    fn from(p: PurposeDto) -> Self {
        match p {
            PurposeDto::ResetPassword => Purpose::ResetPassword,
            PurposeDto::PasswordlessAuthentication => Purpose::PasswordlessAuthentication,
        }
    }
}

/// A code request.
#[derive(Debug, Object)]
pub struct CodeRequestInput {
    /// Always `one_time_password_token_request`.
    #[oai(rename = "type")]
    pub type_: CodeRequestType,
    /// The username in the password profile.
    #[oai(validator(max_length = 255))]
    pub username: String,
    /// What the code is for.
    pub purpose: PurposeDto,
}

/// A code request, wrapped.
#[derive(Debug, Object)]
pub struct CodeRequestBody {
    /// The request.
    pub data: CodeRequestInput,
}

/// The answer to a code request.
#[derive(Debug, ApiResponse)]
pub enum CodeRequestResponse {
    /// Accepted. The same answer whether or not the username exists, and under
    /// every rate limit, the username's and the address's (then nothing is sent).
    #[oai(status = 202)]
    Accepted,
}

/// The type of an account management authentication token.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq, serde::Serialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum AccountTokenType {
    /// The only value.
    AccountManagementAuthenticationToken,
}

/// How an account member proves who they are.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum Mechanism {
    /// With the one-time password token they received (`one_time_password_token`).
    Passwordless,
    /// With their password (`password`).
    Password,
}

/// A token exchange.
#[derive(Debug, Object)]
pub struct TokenInput {
    /// Always `account_management_authentication_token`.
    #[oai(rename = "type")]
    pub type_: AccountTokenType,
    /// `passwordless` (with `one_time_password_token`) or `password` (with `password`).
    pub authentication_mechanism: Mechanism,
    /// The password profile.
    #[oai(validator(max_length = 64))]
    pub password_profile_id: String,
    /// The username in that profile.
    #[oai(validator(max_length = 255))]
    pub username: String,
    /// The code the user received.
    pub one_time_password_token: Option<OneTimeCode>,
    /// The user's password.
    #[oai(validator(max_length = 1024))]
    pub password: Option<String>,
}

/// A token exchange, wrapped.
#[derive(Debug, Object)]
pub struct TokenBody {
    /// The exchange.
    pub data: TokenInput,
}

// The fields of this and the other answer types of an exchange are in the
// order of their JSON names, so that `Direct` writes what `Json` would.
/// An account management authentication token for one account.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct AccountToken {
    /// The member's personal account.
    pub account_id: String,
    /// The account's name.
    pub account_name: String,
    /// When it expires.
    pub expires: Timestamp,
    /// The token (an HS256 JWT): send it as `EP-Account-Management-Authentication-Token`.
    pub token: String,
    /// Always `account_management_authentication_token`.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub type_: AccountTokenType,
}

/// Paging of the token list.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct TokenPage {
    /// This page.
    pub current: u32,
    /// Items per page.
    pub limit: u32,
    /// Items skipped.
    pub offset: u32,
    /// Pages in all.
    pub total: u32,
}

/// Counts of the token list.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct TokenResults {
    /// Tokens in all.
    pub total: u32,
}

/// Metadata of the token list.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct TokenMeta {
    /// The authenticated account member (the user authentication info id).
    pub account_member_id: String,
    /// Paging.
    pub page: TokenPage,
    /// Counts.
    pub results: TokenResults,
}

/// Links of the token list.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct TokenLinks {
    /// This page.
    pub current: String,
    /// The first page.
    pub first: String,
    /// The last page.
    pub last: String,
    /// The next page, if any.
    pub next: Nullable<String>,
    /// The previous page, if any.
    pub prev: Nullable<String>,
}

/// The tokens of an exchange: one per account of the member.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct TokenList {
    /// The tokens.
    pub data: Vec<AccountToken>,
    /// Links.
    pub links: TokenLinks,
    /// Metadata.
    pub meta: TokenMeta,
}

/// The answer to an exchange.
#[derive(Debug, ApiResponse)]
pub enum TokenResponse {
    /// Authenticated.
    #[oai(status = 201)]
    Created(Direct<TokenList>),
}

/// What an exchange presents, by its mechanism.
enum Proof {
    /// A one-time password token.
    Code(String),
    /// A password.
    Password(String),
}

/// Account member authentication.
pub struct AccountsApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

#[OpenApi]
impl AccountsApi {
    /// Request a one-time password token
    ///
    /// A six-character code, valid for ten minutes and one use, is sent through the
    /// enabled integrations observing `one-time-password-token-request.created`.
    /// The answer is 202 with an empty body whether or not the username exists,
    /// and also past a rate limit (the username's or the address's: then nothing
    /// is sent); nothing is delivered inline. Needs any client token (implicit is
    /// enough).
    #[oai(
        path = "/v2/authentication-realms/:realm/password-profiles/:profile/one-time-password-token-request",
        method = "post",
        tag = "Tag::PasswordProfiles",
        operation_id = "createOneTimePasswordTokenRequest"
    )]
    async fn request_code(
        &self,
        req: &Request,
        auth: BearerToken,
        realm: Path<String>,
        profile: Path<String>,
        body: Json<CodeRequestBody>,
    ) -> Result<CodeRequestResponse, Fail<CodeRequest>> {
        // At most one round trip for the checks and reads (none when this replica
        // has just seen the token and the profile), and one for the writes.
        let directory = &self.state.directory;
        // A profile id that does not parse names no profile: nothing to read, and
        // the same 404 as an unknown one, after the same checks.
        let profile = ProfileId::parse(&profile).ok();
        let recent = profile.as_ref().and_then(|p| directory.recent_profile(p));
        let mut batch = Batch::new();
        let read = match (&profile, &recent) {
            (Some(p), None) => Some(directory.profile_in(&mut batch, p)),
            _ => None,
        };
        // Counted like every login-related request, but never answered with 429:
        // over the per-address limit the request keeps its answer and sends
        // nothing (like a username over its own limit), so that a 429 tells no one
        // anything and the limit cannot be used to learn which requests went out.
        let counted = self.state.count_address(&mut batch, req, "login");
        client_and(&self.state, &auth, batch, AddressCount::default()).await?;
        let address_limited = self.state.addresses.verdict(counted)?.is_err();
        directory.check_realm(&known(&realm)?)?;
        let d = &body.data;
        let purpose = Purpose::from(d.purpose);
        // A remembered profile may come from an exchange, which does not care
        // whether codes are on: `prepare_request` checks the flag on every profile.
        let profile = match (recent, read) {
            (Some(p), _) => p,
            (None, Some(read)) => {
                let read = Arc::new(OtpScheme::requestable_profile(read)?);
                directory.remember_profile(read.clone());
                read
            }
            // The id did not parse: there was no profile to read.
            (None, None) => return Err(OtpError::ProfileNotFound.into()),
        };
        send_code(&self.state, &profile, &d.username, purpose, address_limited).await?;
        Ok(CodeRequestResponse::Accepted)
    }

    /// Get an account management authentication token
    ///
    /// With `authentication_mechanism: passwordless`, exchanges a one-time password
    /// token (once); with `password`, checks the password. Any failure is a plain 401.
    /// The token is an HS256 JWT (`sub` the account member, `scope` the account,
    /// `realm_id`, `iat`, `exp`, `account_member_self_management`); it works in
    /// `GET /v1/auth/verify` and ends when the member's password changes.
    #[oai(
        path = "/v2/account-members/tokens",
        method = "post",
        tag = "Tag::Users",
        operation_id = "createAccountManagementAuthenticationToken"
    )]
    async fn token(
        &self,
        req: &Request,
        auth: BearerToken,
        body: Json<TokenBody>,
    ) -> Result<TokenResponse, Fail<PublicBody>> {
        // The client token and the per-address counter share one round trip.
        let mut batch = Batch::new();
        let counted = self.state.count_address(&mut batch, req, "login");
        client_and(&self.state, &auth, batch, counted).await?;
        let d = body.0.data;
        let otp = &self.state.otp;
        let along = along(&self.state);
        let proof = match d.authentication_mechanism {
            Mechanism::Passwordless => Proof::Code(
                d.one_time_password_token
                    .ok_or_else(|| ApiError::bad("data.one_time_password_token is required"))?
                    .0,
            ),
            Mechanism::Password => Proof::Password(
                d.password
                    .ok_or_else(|| ApiError::bad("data.password is required"))?,
            ),
        };
        // A profile id that does not parse names no profile: the exchange fails
        // as with an unknown one, in the same one 401.
        let (member, along) = match (ProfileId::parse(&d.password_profile_id), proof) {
            (Err(_), _) => Err(otp.unknown_profile()),
            (Ok(profile), Proof::Code(code)) => {
                otp.exchange_code(&profile, &d.username, &code, along).await
            }
            (Ok(profile), Proof::Password(password)) => {
                otp.exchange_password(&profile, &d.username, &password, along)
                    .await
            }
        }
        .map_err(exchange_error)?;
        let (token, account_id, exp) = account_token(&self.state, &member, along).await?;
        let expires = time::OffsetDateTime::from_unix_timestamp(exp)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default();
        let here = "/v2/account-members/tokens?page[offset]=0&page[limit]=25".to_owned();
        Ok(TokenResponse::Created(Direct(TokenList {
            data: vec![AccountToken {
                type_: AccountTokenType::AccountManagementAuthenticationToken,
                account_id: account_id.into(),
                account_name: member.user.name.clone(),
                token,
                expires: Timestamp(expires),
            }],
            meta: TokenMeta {
                account_member_id: member.user.id.into(),
                page: TokenPage {
                    limit: 25,
                    offset: 0,
                    current: 1,
                    total: 1,
                },
                results: TokenResults { total: 1 },
            },
            links: TokenLinks {
                current: here.clone(),
                first: here.clone(),
                last: here,
                next: Nullable(None),
                prev: Nullable(None),
            },
        })))
    }
}

/// What an exchange queues with the member's user record, in the same round
/// trip: the realm's settings, the member's account (made on their first
/// exchange) and, when this replica remembers the settings, the account token
/// itself, whose session is written there too. That token is handed out only
/// if the exchange succeeds and the account is the one it names.
pub(crate) struct Along {
    settings: Handle<Settings>,
    account: Handle<Option<AccountId>>,
    /// The id a member's first exchange gives their account.
    derived: AccountId,
    early: Option<EarlyToken>,
}

/// An account token queued with the member's records (for the derived
/// account), and the username it was made for.
struct EarlyToken {
    username: String,
    token: PendingAccountToken,
}

/// The work every exchange queues with the member's user record (see [`Along`]).
pub(crate) fn along(state: &AppState) -> impl FnOnce(&mut Batch, &UserId, &str) -> Along + '_ {
    move |batch, user_id, username| {
        let directory = &state.directory;
        // The account a member's first exchange makes has this id; one made
        // before ids were derived is read back and the token issued again.
        let derived = directory.personal_account(user_id);
        let remembered = directory.recent_settings();
        let early = remembered.as_ref().map(|settings| {
            let (ttl, self_management) = token_terms(settings);
            let token = state.tokens.account_token_in(
                batch,
                &member_subject(state, user_id, username),
                ttl,
                &derived,
                self_management,
            );
            EarlyToken {
                username: username.to_owned(),
                token,
            }
        });
        Along {
            settings: match remembered {
                Some(settings) => Handle::ready(settings),
                None => directory.settings_in(batch),
            },
            account: directory.account_made_in(batch, user_id, &derived),
            derived,
            early,
        }
    }
}

/// Who an account management token is for.
fn member_subject(state: &AppState, user_id: &UserId, username: &str) -> Subject {
    Subject {
        id: SubjectId::User(user_id.clone()),
        username: username.to_owned(),
        realm_id: state.directory.realm_id().clone(),
        scheme: Scheme::AccountManagement,
        role: Role::User,
    }
}

/// An account token's lifetime and `account_member_self_management` claim.
fn token_terms(settings: &Settings) -> (std::time::Duration, &'static str) {
    let self_management = match settings.account_member_self_management {
        SelfManagement::Disabled => "disabled",
        SelfManagement::UpdateOnly => "update_only",
    };
    let ttl = std::time::Duration::from_secs(
        settings.account_management_authentication_token_timeout_secs,
    );
    (ttl, self_management)
}

/// The account management token of a member an exchange authenticated, from
/// what [`along`] queued: the token, the member's account and the token's
/// expiry (Unix seconds). Usually the token queued there; otherwise (this
/// replica did not remember the settings, or the member's account predates
/// derived ids) it is issued now, one more round trip.
pub(crate) async fn account_token(
    state: &AppState,
    member: &Member,
    along: Along,
) -> Result<(String, AccountId, i64), DirectoryError> {
    let Along {
        settings,
        account,
        derived,
        early,
    } = along;
    let settings = settings.get()?;
    let account_id = match account.get()? {
        Some(id) => id,
        None => state.directory.account(&member.user.id).await?,
    };
    if let Some(early) = early {
        if derived == account_id && early.username == member.credential.username {
            let (token, exp) = early.token.keep()?;
            return Ok((token, account_id, exp));
        }
        // Dropped: its session is deleted.
    }
    let (ttl, self_management) = token_terms(&settings);
    let subject = member_subject(state, &member.user.id, &member.credential.username);
    let (token, exp) = state
        .tokens
        .issue_account_token(&subject, ttl, &account_id, self_management)
        .await?;
    Ok((token, account_id, exp))
}

/// A code request once its checks are done (the API's and the hosted pages'):
/// known or not, within the username's limit or not, the same two writes, the
/// same store work, the same wake of this replica's delivery worker; the worker
/// finds out who, if anyone, gets the code. Over the address's limit
/// (`address_limited`) the same checks run and nothing is written: no code
/// replaces the username's live one, nothing is queued.
pub(crate) async fn send_code(
    state: &AppState,
    profile: &PasswordProfile,
    username: &str,
    purpose: Purpose,
    address_limited: bool,
) -> Result<(), OtpError> {
    let otp = &state.otp;
    let mut batch = Batch::new();
    let (request, stored) = otp.prepare_request(&mut batch, profile, username, purpose)?;
    if address_limited {
        otp.request_throttled();
        return Ok(());
    }
    let index = state
        .directory
        .name_index(&request.profile_id, &request.username);
    let _queued = state.outbox.request_in(&mut batch, &request, index);
    state.store.run(batch).await?;
    // This replica's worker may be idle and looking seldom: it looks now. For
    // every username alike, as the decoy was written for an unknown one.
    state.outbox.wake();
    otp.request_stored(stored)?;
    Ok(())
}
