//! The directory in the commerce platform's wire format: account authentication
//! settings, password profiles, users (user authentication info) and their
//! credentials (user authentication password profile info). Admin client tokens only.

use std::sync::Arc;

use authgate_core::directory::{
    Credential, PasswordProfile, ProfileChanges, SelfManagement, Settings, UserInfo, UsernameFormat,
};
use authgate_core::tokens::{Role, Scheme};
use poem_openapi::auth::Bearer;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Enum, Object, OpenApi};

use super::document::{
    AdminList, AdminOne, AdminPlain, AdminUniqueWrite, AdminWrite, AdminWriteNoPath, Fail,
};
use super::types::{Nullable, Password, Timestamp};
use super::{admin, client, BearerToken, ClientWithMember, Created, Deleted, Found, Tag};
use crate::errors::ApiError;
use crate::state::AppState;

/// Declares the single-value enums that name each resource's `type`.
macro_rules! resource_types {
    ($($(#[$doc:meta])* $name:ident :: $variant:ident;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
            #[oai(rename_all = "snake_case")]
            pub enum $name {
                /// The only value.
                $variant,
            }
        )*
    };
}

resource_types! {
    /// The type of the account authentication settings.
    SettingsType::AccountAuthenticationSettings;
    /// The type of an authentication realm reference.
    RealmType::AuthenticationRealm;
    /// The type of a password profile.
    ProfileType::PasswordProfile;
    /// The type of a user.
    UserType::UserAuthenticationInfo;
    /// The type of a user's username and password in a profile.
    CredentialType::UserAuthenticationPasswordProfileInfo;
}

/// Who may update their own records with an account management token.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename = "SelfManagement", rename_all = "snake_case")]
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
#[oai(rename = "UsernameFormat", rename_all = "snake_case")]
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
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
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
    // The query parameter's validator has kept the limit within 1 to 100.
    let limit = limit.unwrap_or(25).clamp(1, 100);
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

// ---- settings ----

/// A reference to the authentication realm.
#[derive(Debug, Object)]
pub struct RealmRef {
    /// The realm's id.
    pub id: String,
    /// Always `authentication_realm`.
    #[oai(rename = "type")]
    pub type_: RealmType,
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
    pub type_: SettingsType,
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
    /// Always `account_authentication_settings`.
    #[oai(rename = "type")]
    pub type_: SettingsType,
    /// New self-management setting.
    pub account_member_self_management: Option<SelfManagementDto>,
    /// New token lifetime in seconds (60 to 31536000).
    #[oai(validator(minimum(value = "60"), maximum(value = "31536000")))]
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
            type_: SettingsType::AccountAuthenticationSettings,
            account_member_self_management: s.account_member_self_management.into(),
            account_management_authentication_token_timeout_secs: s
                .account_management_authentication_token_timeout_secs,
            relationships: SettingsRelationships {
                authentication_realm: RealmRelationship {
                    data: RealmRef {
                        id: s.realm_id,
                        type_: RealmType::AuthenticationRealm,
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
    pub type_: ProfileType,
    /// Name.
    pub name: String,
    /// How usernames look.
    pub username_format: UsernameFormatDto,
    /// Whether one-time password tokens may be requested for its users.
    pub enable_one_time_password_token: bool,
    /// The web phone application (`app.account`) whose users log in through this
    /// profile with one-time login keys; null when not exposed.
    pub voximplant_application: Nullable<String>,
    /// Timestamps.
    pub meta: Meta,
    /// Links.
    pub links: Links,
}

/// A password profile to create or the changes to one.
#[derive(Debug, Object)]
pub struct ProfileInput {
    /// Always `password_profile`.
    #[oai(rename = "type")]
    pub type_: ProfileType,
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
    pub type_: UserType,
    /// Full name; the web phone display name.
    pub name: String,
    /// Email address; null when none is known.
    pub email: Nullable<String>,
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
    /// Always `user_authentication_info`.
    #[oai(rename = "type")]
    pub type_: UserType,
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
    pub type_: CredentialType,
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
    /// Always `user_authentication_password_profile_info`.
    #[oai(rename = "type")]
    pub type_: CredentialType,
    /// The record's id (optional on update; must match the path).
    pub id: Option<String>,
    /// The password profile (required on create).
    pub password_profile_id: Option<String>,
    /// The username (required on create).
    #[oai(validator(max_length = 255))]
    pub username: Option<String>,
    /// The password: at least 8 characters. Stored as an Argon2id hash (and, for
    /// profiles exposed to web phone login, as a sealed HA1); never returned.
    pub password: Option<Password>,
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

/// The directory endpoints.
pub struct DirectoryApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

impl DirectoryApi {
    /// An admin client, or the member owning `user` with self-management on.
    async fn credential_writer(
        &self,
        tokens: ClientWithMember,
        user: &str,
    ) -> Result<(), ApiError> {
        let token = tokens
            .0
            .bearer
            .ok_or_else(|| ApiError::unauthorized("a bearer token is required"))?;
        // Every call needs a live client token; an admin one is enough on its own.
        let client = client(&self.state, &BearerToken(Bearer { token })).await?;
        if client.subject.role == Role::Admin {
            return Ok(());
        }
        let Some(member_token) = tokens.0.member else {
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
            type_: ProfileType::PasswordProfile,
            name: p.name,
            username_format: p.username_format.into(),
            enable_one_time_password_token: p.enable_one_time_password_token,
            voximplant_application: p.voximplant_application.into(),
            meta: Meta {
                created_at: Timestamp(p.created_at),
                updated_at: Timestamp(p.updated_at),
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
            type_: UserType::UserAuthenticationInfo,
            name: u.name,
            email: u.email.into(),
            enabled: u.enabled,
            meta: Meta {
                created_at: Timestamp(u.created_at),
                updated_at: Timestamp(u.updated_at),
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
            type_: CredentialType::UserAuthenticationPasswordProfileInfo,
            password_profile_id: c.password_profile_id,
            username: c.username,
            meta: Meta {
                created_at: Timestamp(c.created_at),
                updated_at: Timestamp(c.updated_at),
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
    async fn get_settings(
        &self,
        auth: BearerToken,
    ) -> Result<Found<SettingsEnvelope>, Fail<AdminPlain>> {
        admin(&self.state, &auth).await?;
        Ok(Found::Ok(settings_envelope(
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
    ) -> Result<Found<SettingsEnvelope>, Fail<AdminWriteNoPath>> {
        admin(&self.state, &auth).await?;
        let s = self
            .state
            .directory
            .update_settings(
                body.data.account_member_self_management.map(Into::into),
                body.data
                    .account_management_authentication_token_timeout_secs,
            )
            .await?;
        Ok(Found::Ok(settings_envelope(s)))
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
    ) -> Result<Created<ProfileEnvelope>, Fail<AdminUniqueWrite>> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let d = body.0.data;
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
        Ok(Created::Created(Json(ProfileEnvelope {
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
        #[oai(
            name = "page[limit]",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<Option<u32>>,
        /// Items to skip.
        #[oai(name = "page[offset]")]
        offset: Query<Option<u32>>,
    ) -> Result<Found<ProfileList>, Fail<AdminList>> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let all = self.state.directory.profiles().await?;
        let (items, meta) = page(all, limit.0, offset.0)?;
        Ok(Found::Ok(Json(ProfileList {
            data: items.into_iter().map(|p| self.profile_data(p)).collect(),
            meta,
        })))
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
    ) -> Result<Found<ProfileEnvelope>, Fail<AdminOne>> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let p = self.state.directory.profile(&id).await?;
        Ok(Found::Ok(Json(ProfileEnvelope {
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
    ) -> Result<Found<ProfileEnvelope>, Fail<AdminUniqueWrite>> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let d = body.0.data;
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
        Ok(Found::Ok(Json(ProfileEnvelope {
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
    ) -> Result<Deleted, Fail<AdminOne>> {
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
    ) -> Result<Created<UserEnvelope>, Fail<AdminWrite>> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let d = body.0.data;
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
        Ok(Created::Created(Json(UserEnvelope {
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
        #[oai(
            name = "page[limit]",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<Option<u32>>,
        /// Items to skip.
        #[oai(name = "page[offset]")]
        offset: Query<Option<u32>>,
    ) -> Result<Found<UserList>, Fail<AdminList>> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let all = self.state.directory.users().await?;
        let (items, meta) = page(all, limit.0, offset.0)?;
        Ok(Found::Ok(Json(UserList {
            data: items.into_iter().map(|u| self.user_data(u)).collect(),
            meta,
        })))
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
    ) -> Result<Found<UserEnvelope>, Fail<AdminOne>> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let u = self.state.directory.user(&id).await?;
        Ok(Found::Ok(Json(UserEnvelope {
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
    ) -> Result<Found<UserEnvelope>, Fail<AdminWrite>> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let d = body.0.data;
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
        Ok(Found::Ok(Json(UserEnvelope {
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
    ) -> Result<Deleted, Fail<AdminOne>> {
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
    ) -> Result<Created<CredentialEnvelope>, Fail<AdminUniqueWrite>> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let d = body.0.data;
        let profile = d
            .password_profile_id
            .ok_or_else(|| ApiError::bad("data.password_profile_id is required"))?;
        let username = d
            .username
            .ok_or_else(|| ApiError::bad("data.username is required"))?;
        let c = self
            .state
            .directory
            .create_credential(
                &user,
                &profile,
                &username,
                d.password.as_ref().map(|p| p.0.as_str()),
            )
            .await?;
        Ok(Created::Created(Json(CredentialEnvelope {
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
        #[oai(
            name = "page[limit]",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<Option<u32>>,
        /// Items to skip.
        #[oai(name = "page[offset]")]
        offset: Query<Option<u32>>,
    ) -> Result<Found<CredentialList>, Fail<AdminList>> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let all = self.state.directory.credentials(&user).await?;
        let (items, meta) = page(all, limit.0, offset.0)?;
        Ok(Found::Ok(Json(CredentialList {
            data: items.into_iter().map(|c| self.credential_data(c)).collect(),
            meta,
        })))
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
    ) -> Result<Found<CredentialEnvelope>, Fail<AdminOne>> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        let c = self.state.directory.credential(&user, &id).await?;
        Ok(Found::Ok(Json(CredentialEnvelope {
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
        tokens: ClientWithMember,
        realm: Path<String>,
        user: Path<String>,
        id: Path<String>,
        body: Json<CredentialBody>,
    ) -> Result<Found<CredentialEnvelope>, Fail<AdminUniqueWrite>> {
        self.credential_writer(tokens, &user).await?;
        self.realm(&realm)?;
        let d = body.0.data;
        if d.id.as_deref().is_some_and(|given| given != id.as_str()) {
            return Err(ApiError::bad("data.id does not match the path").into());
        }
        let c = self
            .state
            .directory
            .update_credential(
                &user,
                &id,
                d.username.as_deref(),
                d.password.as_ref().map(|p| p.0.as_str()),
            )
            .await?;
        Ok(Found::Ok(Json(CredentialEnvelope {
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
    ) -> Result<Deleted, Fail<AdminOne>> {
        admin(&self.state, &auth).await?;
        self.realm(&realm)?;
        self.state.directory.delete_credential(&user, &id).await?;
        Ok(Deleted::NoContent)
    }
}
