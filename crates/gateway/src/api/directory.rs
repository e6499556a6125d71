//! The directory in the commerce platform's wire format: account authentication
//! settings, password profiles, users (user authentication info) and their
//! credentials (user authentication password profile info). Admin client tokens only.

use std::sync::Arc;

use authgate_core::directory::{
    Credential, PasswordProfile, ProfileChanges, SelfManagement, Settings, UserInfo, UsernameFormat,
};
use authgate_core::tokens::{Role, Scheme};
use poem_openapi::auth::Bearer;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::{admin, client, BearerToken, Tag};
use crate::errors::ApiError;
use crate::state::AppState;

/// Who may update their own records with an account management token.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum SelfManagementDto {
    /// Nobody.
    Disabled,
    /// Members may update their own records (e.g. reset their password).
    UpdateOnly,
}

impl From<SelfManagement> for SelfManagementDto {
    fn from(v: SelfManagement) -> Self {
        match v {
            SelfManagement::Disabled => Self::Disabled,
            SelfManagement::UpdateOnly => Self::UpdateOnly,
        }
    }
}

impl From<SelfManagementDto> for SelfManagement {
    fn from(v: SelfManagementDto) -> Self {
        match v {
            SelfManagementDto::Disabled => Self::Disabled,
            SelfManagementDto::UpdateOnly => Self::UpdateOnly,
        }
    }
}

/// How the usernames of a profile look.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum UsernameFormatDto {
    /// Any string.
    Any,
    /// An email address (kept lowercase).
    Email,
}

impl From<UsernameFormat> for UsernameFormatDto {
    fn from(v: UsernameFormat) -> Self {
        match v {
            UsernameFormat::Any => Self::Any,
            UsernameFormat::Email => Self::Email,
        }
    }
}

impl From<UsernameFormatDto> for UsernameFormat {
    fn from(v: UsernameFormatDto) -> Self {
        match v {
            UsernameFormatDto::Any => Self::Any,
            UsernameFormatDto::Email => Self::Email,
        }
    }
}

/// Timestamps of a resource.
#[derive(Debug, Object)]
pub struct Meta {
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was last changed (RFC 3339).
    pub updated_at: String,
}

/// Links of a resource.
#[derive(Debug, Object)]
pub struct Links {
    /// The resource itself.
    #[oai(rename = "self")]
    pub self_: String,
}

/// Paging of a list.
#[derive(Debug, Object)]
pub struct PageMeta {
    /// Items per page.
    pub limit: u32,
    /// Items skipped.
    pub offset: u32,
    /// This page's number, from 1.
    pub current: u32,
    /// How many pages there are.
    pub total: u32,
}

/// Counts of a list.
#[derive(Debug, Object)]
pub struct ResultsMeta {
    /// How many items there are in all.
    pub total: u32,
}

/// Metadata of a list.
#[derive(Debug, Object)]
pub struct ListMeta {
    /// Paging.
    pub page: PageMeta,
    /// Counts.
    pub results: ResultsMeta,
}

fn page<T>(
    items: Vec<T>,
    limit: Option<u32>,
    offset: Option<u32>,
) -> Result<(Vec<T>, ListMeta), ApiError> {
    let limit = limit.unwrap_or(25);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad("page[limit] must be between 1 and 100"));
    }
    let offset = offset.unwrap_or(0);
    let total = items.len() as u32;
    let data: Vec<T> = items
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    let meta = ListMeta {
        page: PageMeta {
            limit,
            offset,
            current: offset / limit + 1,
            total: total.div_ceil(limit).max(1),
        },
        results: ResultsMeta { total },
    };
    Ok((data, meta))
}

fn check_type(got: &str, want: &str) -> Result<(), ApiError> {
    if got == want {
        Ok(())
    } else {
        Err(ApiError::bad(format!("data.type must be {want:?}")))
    }
}

// ---- settings ----

/// A reference to the authentication realm.
#[derive(Debug, Object)]
pub struct RealmRef {
    /// The realm's id.
    pub id: String,
    /// Always `authentication_realm`.
    #[oai(rename = "type")]
    pub type_: String,
}

/// The realm relationship.
#[derive(Debug, Object)]
pub struct RealmRelationship {
    /// The realm.
    pub data: RealmRef,
}

/// Relationships of the settings.
#[derive(Debug, Object)]
pub struct SettingsRelationships {
    /// The realm account members authenticate in.
    pub authentication_realm: RealmRelationship,
}

/// Account authentication settings.
#[derive(Debug, Object)]
pub struct SettingsData {
    /// Always `account_authentication_settings`.
    #[oai(rename = "type")]
    pub type_: String,
    /// Who may update their own records with an account management token.
    pub account_member_self_management: SelfManagementDto,
    /// Lifetime of account management authentication tokens, in seconds.
    pub account_management_authentication_token_timeout_secs: u64,
    /// The realm.
    pub relationships: SettingsRelationships,
}

/// The settings, wrapped.
#[derive(Debug, Object)]
pub struct SettingsEnvelope {
    /// The settings.
    pub data: SettingsData,
}

/// Changes to the settings.
#[derive(Debug, Object)]
pub struct SettingsInput {
    /// Must be `account_authentication_settings`.
    #[oai(rename = "type")]
    pub type_: String,
    /// New self-management setting.
    pub account_member_self_management: Option<SelfManagementDto>,
    /// New token lifetime in seconds (60 to 31536000).
    pub account_management_authentication_token_timeout_secs: Option<u64>,
}

/// Changes to the settings, wrapped.
#[derive(Debug, Object)]
pub struct SettingsBody {
    /// The changes.
    pub data: SettingsInput,
}

fn settings_envelope(s: Settings) -> Json<SettingsEnvelope> {
    Json(SettingsEnvelope {
        data: SettingsData {
            type_: "account_authentication_settings".into(),
            account_member_self_management: s.account_member_self_management.into(),
            account_management_authentication_token_timeout_secs: s
                .account_management_authentication_token_timeout_secs,
            relationships: SettingsRelationships {
                authentication_realm: RealmRelationship {
                    data: RealmRef {
                        id: s.realm_id,
                        type_: "authentication_realm".into(),
                    },
                },
            },
        },
    })
}

// ---- password profiles ----

/// A password profile.
#[derive(Debug, Object)]
pub struct ProfileData {
    /// Id.
    pub id: String,
    /// Always `password_profile`.
    #[oai(rename = "type")]
    pub type_: String,
    /// Name.
    pub name: String,
    /// How usernames look.
    pub username_format: UsernameFormatDto,
    /// Whether one-time password tokens may be requested for its users.
    pub enable_one_time_password_token: bool,
    /// The web phone application (`app.account`) whose users log in through this
    /// profile with one-time login keys; null when not exposed.
    pub voximplant_application: Option<String>,
    /// Timestamps.
    pub meta: Meta,
    /// Links.
    pub links: Links,
}

/// A password profile to create or the changes to one.
#[derive(Debug, Object)]
pub struct ProfileInput {
    /// Must be `password_profile`.
    #[oai(rename = "type")]
    pub type_: String,
    /// Name (required on create).
    #[oai(validator(max_length = 255))]
    pub name: Option<String>,
    /// How usernames look (default `any`).
    pub username_format: Option<UsernameFormatDto>,
    /// Whether one-time password tokens may be requested (default false).
    pub enable_one_time_password_token: Option<bool>,
    /// Expose the profile's users to web phone login as `app.account`; null to stop.
    pub voximplant_application: MaybeUndefined<String>,
}

/// A password profile, wrapped.
#[derive(Debug, Object)]
pub struct ProfileBody {
    /// The profile.
    pub data: ProfileInput,
}

/// A password profile, wrapped.
#[derive(Debug, Object)]
pub struct ProfileEnvelope {
    /// The profile.
    pub data: ProfileData,
}

/// Password profiles.
#[derive(Debug, Object)]
pub struct ProfileList {
    /// The profiles on this page.
    pub data: Vec<ProfileData>,
    /// Paging.
    pub meta: ListMeta,
}

// ---- users ----

/// A user (user authentication info).
#[derive(Debug, Object)]
pub struct UserData {
    /// Id; also the account member id.
    pub id: String,
    /// Always `user_authentication_info`.
    #[oai(rename = "type")]
    pub type_: String,
    /// Full name; the web phone display name.
    pub name: String,
    /// Email address.
    pub email: Option<String>,
    /// Whether the user may log in (false: logins answer 403 and sessions end).
    pub enabled: bool,
    /// Timestamps.
    pub meta: Meta,
    /// Links.
    pub links: Links,
}

/// A user to create or the changes to one.
#[derive(Debug, Object)]
pub struct UserInput {
    /// Must be `user_authentication_info`.
    #[oai(rename = "type")]
    pub type_: String,
    /// Full name (required on create).
    #[oai(validator(max_length = 255))]
    pub name: Option<String>,
    /// Email address; null to clear.
    pub email: MaybeUndefined<String>,
    /// Whether the user may log in (default true).
    pub enabled: Option<bool>,
}

/// A user, wrapped.
#[derive(Debug, Object)]
pub struct UserBody {
    /// The user.
    pub data: UserInput,
}

/// A user, wrapped.
#[derive(Debug, Object)]
pub struct UserEnvelope {
    /// The user.
    pub data: UserData,
}

/// Users.
#[derive(Debug, Object)]
pub struct UserList {
    /// The users on this page.
    pub data: Vec<UserData>,
    /// Paging.
    pub meta: ListMeta,
}

// ---- credentials ----

/// A user's username in a password profile (user authentication password profile info).
/// The password is never returned.
#[derive(Debug, Object)]
pub struct CredentialData {
    /// Id.
    pub id: String,
    /// Always `user_authentication_password_profile_info`.
    #[oai(rename = "type")]
    pub type_: String,
    /// The password profile.
    pub password_profile_id: String,
    /// The username, unique within the profile.
    pub username: String,
    /// Timestamps.
    pub meta: Meta,
    /// Links.
    pub links: Links,
}

/// A credential to create or the changes to one.
#[derive(Debug, Object)]
pub struct CredentialInput {
    /// Must be `user_authentication_password_profile_info`.
    #[oai(rename = "type")]
    pub type_: String,
    /// The record's id (optional on update; must match the path).
    pub id: Option<String>,
    /// The password profile (required on create).
    pub password_profile_id: Option<String>,
    /// The username (required on create).
    #[oai(validator(max_length = 255))]
    pub username: Option<String>,
    /// The password: at least 8 characters. Stored as an Argon2id hash (and, for
    /// profiles exposed to web phone login, as a sealed HA1); never returned.
    #[oai(validator(max_length = 1024))]
    pub password: Option<String>,
}

/// A credential, wrapped.
#[derive(Debug, Object)]
pub struct CredentialBody {
    /// The credential.
    pub data: CredentialInput,
}

/// A credential, wrapped.
#[derive(Debug, Object)]
pub struct CredentialEnvelope {
    /// The credential.
    pub data: CredentialData,
}

/// Credentials.
#[derive(Debug, Object)]
pub struct CredentialList {
    /// The credentials on this page.
    pub data: Vec<CredentialData>,
    /// Paging.
    pub meta: ListMeta,
}

// ---- responses ----

/// The settings.
#[derive(Debug, ApiResponse)]
pub enum SettingsResponse {
    /// The settings.
    #[oai(status = 200)]
    Ok(Json<SettingsEnvelope>),
}

/// A profile answer.
#[derive(Debug, ApiResponse)]
pub enum ProfileResponse {
    /// Created.
    #[oai(status = 201)]
    Created(Json<ProfileEnvelope>),
    /// The profile.
    #[oai(status = 200)]
    Ok(Json<ProfileEnvelope>),
}

/// A user answer.
#[derive(Debug, ApiResponse)]
pub enum UserResponse {
    /// Created.
    #[oai(status = 201)]
    Created(Json<UserEnvelope>),
    /// The user.
    #[oai(status = 200)]
    Ok(Json<UserEnvelope>),
}

/// A credential answer.
#[derive(Debug, ApiResponse)]
pub enum CredentialResponse {
    /// Created.
    #[oai(status = 201)]
    Created(Json<CredentialEnvelope>),
    /// The credential.
    #[oai(status = 200)]
    Ok(Json<CredentialEnvelope>),
}

/// A deletion.
#[derive(Debug, ApiResponse)]
pub enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    NoContent,
}

/// The directory endpoints.
pub struct DirectoryApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

impl DirectoryApi {
    /// An admin client, or the member owning `user` with self-management on.
    async fn credential_writer(
        &self,
        authorization: Option<&str>,
        account_token: Option<&str>,
        user: &str,
    ) -> Result<(), ApiError> {
        let bearer = authorization
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| ApiError::unauthorized("a bearer token is required"))?;
        // Every call needs a live client token; an admin one is enough on its own.
        let client = client(
            &self.state,
            &BearerToken(Bearer {
                token: bearer.to_owned(),
            }),
        )
        .await?;
        if client.subject.role == Role::Admin {
            return Ok(());
        }
        let Some(member_token) = account_token else {
            return Err(ApiError::forbidden(
                "this operation needs a client_credentials token, or the account member's EP-Account-Management-Authentication-Token",
            ));
        };
        let principal = self
            .state
            .tokens
            .verify(member_token.trim())
            .await?
            .filter(|p| p.subject.scheme == Scheme::AccountManagement)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "the account management authentication token is unknown or expired",
                )
            })?;
        let settings = self.state.directory.settings().await?;
        if settings.account_member_self_management != SelfManagement::UpdateOnly {
            return Err(ApiError::forbidden(
                "account members may not update their records (account_member_self_management is disabled)",
            ));
        }
        if principal.subject.user_id != user {
            return Err(ApiError::forbidden(
                "an account member may update only their own records",
            ));
        }
        Ok(())
    }

    fn realm(&self, realm: &str) -> Result<(), ApiError> {
        self.state
            .directory
            .check_realm(realm)
            .map_err(ApiError::from)
    }

    fn profile_data(&self, p: PasswordProfile) -> ProfileData {
        ProfileData {
            links: Links {
                self_: format!(
                    "/v2/authentication-realms/{}/password-profiles/{}",
                    self.state.directory.realm_id(),
                    p.id
                ),
            },
            id: p.id,
            type_: "password_profile".into(),
            name: p.name,
            username_format: p.username_format.into(),
            enable_one_time_password_token: p.enable_one_time_password_token,
            voximplant_application: p.voximplant_application,
            meta: Meta {
                created_at: p.created_at,
                updated_at: p.updated_at,
            },
        }
    }

    fn user_data(&self, u: UserInfo) -> UserData {
        UserData {
            links: Links {
                self_: format!(
                    "/v2/authentication-realms/{}/user-authentication-info/{}",
                    self.state.directory.realm_id(),
                    u.id
                ),
            },
            id: u.id,
            type_: "user_authentication_info".into(),
            name: u.name,
            email: u.email,
            enabled: u.enabled,
            meta: Meta {
                created_at: u.created_at,
                updated_at: u.updated_at,
            },
        }
    }

    fn credential_data(&self, c: Credential) -> CredentialData {
        CredentialData {
            links: Links {
                self_: format!(
                    "/v2/authentication-realms/{}/user-authentication-info/{}/user-authentication-password-profile-info/{}",
                    self.state.directory.realm_id(),
                    c.user_id,
                    c.id
                ),
            },
            id: c.id,
            type_: "user_authentication_password_profile_info".into(),
            password_profile_id: c.password_profile_id,
            username: c.username,
            meta: Meta {
                created_at: c.created_at,
                updated_at: c.updated_at,
            },
        }
    }
}

#[OpenApi]
impl DirectoryApi {
    /// Get the account authentication settings
    ///
    /// Holds the authentication realm's id, used in every directory path.
    #[oai(
        path = "/v2/settings/account-authentication",
        method = "get",
        tag = "Tag::Settings",
        operation_id = "getAccountAuthenticationSettings"
    )]
    async fn get_settings(&self, auth: BearerToken) -> Result<SettingsResponse, ApiError> {
        admin(&self.state, &auth).await?;
        Ok(SettingsResponse::Ok(settings_envelope(
            self.state.directory.settings().await?,
        )))
    }

    /// Update the account authentication settings
    #[oai(
        path = "/v2/settings/account-authentication",
        method = "put",
        tag = "Tag::Settings",
        operation_id = "updateAccountAuthenticationSettings"
    )]
    async fn put_settings(
        &self,
        auth: BearerToken,
        body: Json<SettingsBody>,
    ) -> Result<SettingsResponse, ApiError> {
        admin(&self.state, &auth).await?;
        check_type(&body.data.type_, "account_authentication_settings")?;
        let s = self
            .state
            .directory
            .update_settings(
                body.data.account_member_self_management.map(Into::into),
                body.data
                    .account_management_authentication_token_timeout_secs,
            )
            .await?;
        Ok(SettingsResponse::Ok(settings_envelope(s)))
    }

    /// Create a password profile
    #[oai(
        path = "/v2/authentication-realms/:realm/password-profiles",
        method = "post",
        tag = "Tag::PasswordProfiles",
        operation_id = "createPasswordProfile"
    )]
    async fn create_profile(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        body: Json<ProfileBody>,
    ) -> Result<ProfileResponse, ApiError> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let d = body.0.data;
        check_type(&d.type_, "password_profile")?;
        let name = d
            .name
            .ok_or_else(|| ApiError::bad("data.name is required"))?;
        let p = self
            .state
            .directory
            .create_profile(
                &name,
                d.username_format.map(Into::into).unwrap_or_default(),
                d.enable_one_time_password_token.unwrap_or(false),
                d.voximplant_application.as_opt_deref().flatten(),
            )
            .await?;
        Ok(ProfileResponse::Created(Json(ProfileEnvelope {
            data: self.profile_data(p),
        })))
    }

    /// List password profiles
    #[oai(
        path = "/v2/authentication-realms/:realm/password-profiles",
        method = "get",
        tag = "Tag::PasswordProfiles",
        operation_id = "listPasswordProfiles"
    )]
    async fn list_profiles(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        /// Items per page (1 to 100, default 25).
        #[oai(name = "page[limit]")]
        limit: Query<Option<u32>>,
        /// Items to skip.
        #[oai(name = "page[offset]")]
        offset: Query<Option<u32>>,
    ) -> Result<Json<ProfileList>, ApiError> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let all = self.state.directory.profiles().await?;
        let (items, meta) = page(all, limit.0, offset.0)?;
        Ok(Json(ProfileList {
            data: items.into_iter().map(|p| self.profile_data(p)).collect(),
            meta,
        }))
    }

    /// Get a password profile
    #[oai(
        path = "/v2/authentication-realms/:realm/password-profiles/:id",
        method = "get",
        tag = "Tag::PasswordProfiles",
        operation_id = "getPasswordProfile"
    )]
    async fn get_profile(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        id: Path<String>,
    ) -> Result<ProfileResponse, ApiError> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let p = self.state.directory.profile(&id).await?;
        Ok(ProfileResponse::Ok(Json(ProfileEnvelope {
            data: self.profile_data(p),
        })))
    }

    /// Update a password profile
    ///
    /// Setting `voximplant_application` exposes the profile's users to web phone
    /// login; users whose password was set before get an HA1 when it is next set.
    #[oai(
        path = "/v2/authentication-realms/:realm/password-profiles/:id",
        method = "put",
        tag = "Tag::PasswordProfiles",
        operation_id = "updatePasswordProfile"
    )]
    async fn put_profile(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        id: Path<String>,
        body: Json<ProfileBody>,
    ) -> Result<ProfileResponse, ApiError> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let d = body.0.data;
        check_type(&d.type_, "password_profile")?;
        let changes = ProfileChanges {
            name: d.name,
            username_format: d.username_format.map(Into::into),
            enable_one_time_password_token: d.enable_one_time_password_token,
            voximplant_application: match d.voximplant_application {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(v) => Some(Some(v)),
            },
        };
        let p = self.state.directory.update_profile(&id, changes).await?;
        Ok(ProfileResponse::Ok(Json(ProfileEnvelope {
            data: self.profile_data(p),
        })))
    }

    /// Delete a password profile
    ///
    /// Deletes the usernames and passwords in it too.
    #[oai(
        path = "/v2/authentication-realms/:realm/password-profiles/:id",
        method = "delete",
        tag = "Tag::PasswordProfiles",
        operation_id = "deletePasswordProfile"
    )]
    async fn delete_profile(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        id: Path<String>,
    ) -> Result<Deleted, ApiError> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        self.state.directory.delete_profile(&id).await?;
        Ok(Deleted::NoContent)
    }

    /// Create a user
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info",
        method = "post",
        tag = "Tag::Users",
        operation_id = "createUserAuthenticationInfo"
    )]
    async fn create_user(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        body: Json<UserBody>,
    ) -> Result<UserResponse, ApiError> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let d = body.0.data;
        check_type(&d.type_, "user_authentication_info")?;
        let name = d
            .name
            .ok_or_else(|| ApiError::bad("data.name is required"))?;
        let mut u = self
            .state
            .directory
            .create_user(&name, d.email.as_opt_deref().flatten())
            .await?;
        if d.enabled == Some(false) {
            u = self
                .state
                .directory
                .update_user(&u.id, None, None, Some(false))
                .await?;
        }
        Ok(UserResponse::Created(Json(UserEnvelope {
            data: self.user_data(u),
        })))
    }

    /// List users
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info",
        method = "get",
        tag = "Tag::Users",
        operation_id = "listUserAuthenticationInfo"
    )]
    async fn list_users(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        /// Items per page (1 to 100, default 25).
        #[oai(name = "page[limit]")]
        limit: Query<Option<u32>>,
        /// Items to skip.
        #[oai(name = "page[offset]")]
        offset: Query<Option<u32>>,
    ) -> Result<Json<UserList>, ApiError> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let all = self.state.directory.users().await?;
        let (items, meta) = page(all, limit.0, offset.0)?;
        Ok(Json(UserList {
            data: items.into_iter().map(|u| self.user_data(u)).collect(),
            meta,
        }))
    }

    /// Get a user
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info/:id",
        method = "get",
        tag = "Tag::Users",
        operation_id = "getUserAuthenticationInfo"
    )]
    async fn get_user(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        id: Path<String>,
    ) -> Result<UserResponse, ApiError> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let u = self.state.directory.user(&id).await?;
        Ok(UserResponse::Ok(Json(UserEnvelope {
            data: self.user_data(u),
        })))
    }

    /// Update a user
    ///
    /// Disabling a user ends their sessions at once.
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info/:id",
        method = "put",
        tag = "Tag::Users",
        operation_id = "updateUserAuthenticationInfo"
    )]
    async fn put_user(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        id: Path<String>,
        body: Json<UserBody>,
    ) -> Result<UserResponse, ApiError> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let d = body.0.data;
        check_type(&d.type_, "user_authentication_info")?;
        let email = match &d.email {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(v) => Some(Some(v.as_str())),
        };
        let u = self
            .state
            .directory
            .update_user(&id, d.name.as_deref(), email, d.enabled)
            .await?;
        Ok(UserResponse::Ok(Json(UserEnvelope {
            data: self.user_data(u),
        })))
    }

    /// Delete a user
    ///
    /// Deletes their credentials and ends their sessions.
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info/:id",
        method = "delete",
        tag = "Tag::Users",
        operation_id = "deleteUserAuthenticationInfo"
    )]
    async fn delete_user(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        id: Path<String>,
    ) -> Result<Deleted, ApiError> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        self.state.directory.delete_user(&id).await?;
        Ok(Deleted::NoContent)
    }

    /// Give a user a username and password in a profile
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info/:user/user-authentication-password-profile-info",
        method = "post",
        tag = "Tag::Users",
        operation_id = "createUserAuthenticationPasswordProfileInfo"
    )]
    async fn create_credential(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        user: Path<String>,
        body: Json<CredentialBody>,
    ) -> Result<CredentialResponse, ApiError> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let d = body.0.data;
        check_type(&d.type_, "user_authentication_password_profile_info")?;
        let profile = d
            .password_profile_id
            .ok_or_else(|| ApiError::bad("data.password_profile_id is required"))?;
        let username = d
            .username
            .ok_or_else(|| ApiError::bad("data.username is required"))?;
        let c = self
            .state
            .directory
            .create_credential(&user, &profile, &username, d.password.as_deref())
            .await?;
        Ok(CredentialResponse::Created(Json(CredentialEnvelope {
            data: self.credential_data(c),
        })))
    }

    /// List a user's usernames and profiles
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info/:user/user-authentication-password-profile-info",
        method = "get",
        tag = "Tag::Users",
        operation_id = "listUserAuthenticationPasswordProfileInfo"
    )]
    async fn list_credentials(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        user: Path<String>,
        /// Items per page (1 to 100, default 25).
        #[oai(name = "page[limit]")]
        limit: Query<Option<u32>>,
        /// Items to skip.
        #[oai(name = "page[offset]")]
        offset: Query<Option<u32>>,
    ) -> Result<Json<CredentialList>, ApiError> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let all = self.state.directory.credentials(&user).await?;
        let (items, meta) = page(all, limit.0, offset.0)?;
        Ok(Json(CredentialList {
            data: items.into_iter().map(|c| self.credential_data(c)).collect(),
            meta,
        }))
    }

    /// Get a user's username in a profile
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info/:user/user-authentication-password-profile-info/:id",
        method = "get",
        tag = "Tag::Users",
        operation_id = "getUserAuthenticationPasswordProfileInfo"
    )]
    async fn get_credential(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        user: Path<String>,
        id: Path<String>,
    ) -> Result<CredentialResponse, ApiError> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let c = self.state.directory.credential(&user, &id).await?;
        Ok(CredentialResponse::Ok(Json(CredentialEnvelope {
            data: self.credential_data(c),
        })))
    }

    /// Change a username or password
    ///
    /// A new password replaces the Argon2id hash and the HA1 and ends the user's
    /// sessions. Allowed to an admin client token, or to the account member who owns
    /// the record with `EP-Account-Management-Authentication-Token` when
    /// `account_member_self_management` is `update_only` (a password reset).
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info/:user/user-authentication-password-profile-info/:id",
        method = "put",
        tag = "Tag::Users",
        operation_id = "updateUserAuthenticationPasswordProfileInfo"
    )]
    async fn put_credential(
        &self,
        /// `Bearer <client token>`: an admin token, or any client token with the member's token below.
        #[oai(name = "Authorization")]
        authorization: Header<Option<String>>,
        /// The account member's token from `POST /v2/account-members/tokens`.
        #[oai(name = "EP-Account-Management-Authentication-Token")]
        account_token: Header<Option<String>>,
        realm: Path<String>,
        user: Path<String>,
        id: Path<String>,
        body: Json<CredentialBody>,
    ) -> Result<CredentialResponse, ApiError> {
        self.credential_writer(
            authorization.0.as_deref(),
            account_token.0.as_deref(),
            &user,
        )
        .await?;
        self.realm(&realm)?;
        let d = body.0.data;
        check_type(&d.type_, "user_authentication_password_profile_info")?;
        if d.id.as_deref().is_some_and(|given| given != id.as_str()) {
            return Err(ApiError::bad("data.id does not match the path"));
        }
        let c = self
            .state
            .directory
            .update_credential(&user, &id, d.username.as_deref(), d.password.as_deref())
            .await?;
        Ok(CredentialResponse::Ok(Json(CredentialEnvelope {
            data: self.credential_data(c),
        })))
    }

    /// Delete a user's username in a profile
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info/:user/user-authentication-password-profile-info/:id",
        method = "delete",
        tag = "Tag::Users",
        operation_id = "deleteUserAuthenticationPasswordProfileInfo"
    )]
    async fn delete_credential(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        user: Path<String>,
        id: Path<String>,
    ) -> Result<Deleted, ApiError> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        self.state.directory.delete_credential(&user, &id).await?;
        Ok(Deleted::NoContent)
    }
}
