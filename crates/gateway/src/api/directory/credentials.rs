//! A user's usernames and passwords, one per password profile
//! (`/v2/authentication-realms/:realm/user-authentication-info/:user/user-authentication-password-profile-info`),
//! and who may change them: an admin client, or the member themself when
//! self-management allows (a password reset).

use std::sync::Arc;

use authgate_core::directory::{Credential, DirectoryError, SelfManagement};
use authgate_core::ids::{CredentialId, IdError, ProfileId, RealmId, UserId};
use authgate_core::tokens::{Role, Scheme};
use poem_openapi::auth::Bearer;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::{admin_in, known, required, resource_types, Links, ListMeta, Meta, Record, Wire};
use crate::api::document::{AdminList, AdminOne, AdminUniqueWrite, Fail};
use crate::api::types::{envelopes, PageLimit, Password};
use crate::api::{client, BearerToken, ClientWithMember, Created, Deleted, Found, Tag};
use crate::errors::ApiError;
use crate::state::AppState;

resource_types! {
    /// The type of a user's username and password in a profile.
    CredentialType::UserAuthenticationPasswordProfileInfo;
}

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

envelopes! {
    /// A credential, wrapped.
    CredentialBody { data: CredentialInput = "The credential." }
    /// A credential, wrapped.
    CredentialEnvelope { data: CredentialData = "The credential." }
    /// Credentials.
    CredentialList {
        data: [CredentialData] = "The credentials on this page.",
        meta: ListMeta = "Paging.",
    }
}

impl Record for Credential {
    type Data = CredentialData;

    fn data(self, realm: &RealmId) -> CredentialData {
        CredentialData {
            links: Links {
                self_: format!(
                    "/v2/authentication-realms/{realm}/user-authentication-info/{}/user-authentication-password-profile-info/{}",
                    self.user_id, self.id
                ),
            },
            id: self.id.into(),
            type_: CredentialType::UserAuthenticationPasswordProfileInfo,
            password_profile_id: self.password_profile_id.into(),
            username: self.username,
            meta: Meta::of(self.created_at, self.updated_at),
        }
    }
}

/// The credential endpoints.
pub struct CredentialsApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// The credential a path names, from its user's and its own id as parsed. A
/// credential is looked up by its id and must be the user's: whichever id does
/// not parse, it is that credential that is not found.
fn credential_path(
    user: Result<UserId, IdError>,
    id: Result<CredentialId, IdError>,
) -> Result<(UserId, CredentialId), DirectoryError> {
    match (user, id) {
        (Ok(user), Ok(id)) => Ok((user, id)),
        _ => Err(DirectoryError::NotFound(CredentialId::WHAT)),
    }
}

impl CredentialsApi {
    /// An admin client, or the member owning `user` with self-management on
    /// (`None`: the path's user id does not parse, so it is no member's own).
    async fn writer(
        &self,
        tokens: ClientWithMember,
        user: Option<&UserId>,
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
        if user.is_none() || principal.subject.id.user() != user {
            return Err(ApiError::forbidden(
                "an account member may update only their own records",
            ));
        }
        Ok(())
    }
}

#[OpenApi(tag = "Tag::Users")]
impl CredentialsApi {
    /// Give a user a username and password in a profile
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info/:user/user-authentication-password-profile-info",
        method = "post",
        operation_id = "createUserAuthenticationPasswordProfileInfo"
    )]
    async fn create(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        user: Path<String>,
        body: Json<CredentialBody>,
    ) -> Result<Created<CredentialEnvelope>, Fail<AdminUniqueWrite>> {
        let dir = admin_in(&self.state, &auth, &realm).await?;
        let d = body.0.data;
        let profile = required(d.password_profile_id, "password_profile_id")?;
        let username = required(d.username, "username")?;
        let password = d.password.as_ref().map(|p| p.0.as_str());
        let user: UserId = known(&user)?;
        let profile = match ProfileId::parse(&profile) {
            Ok(profile) => profile,
            // It names no profile: refused as an unknown one is, after the user's lookup.
            Err(e) => {
                dir.user(&user).await?;
                return Err(ApiError::from(DirectoryError::from(e)).into());
            }
        };
        let c = dir
            .create_credential(&user, &profile, &username, password)
            .await?;
        Ok(Created::Created(dir.one(c)))
    }

    /// List a user's usernames and profiles
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info/:user/user-authentication-password-profile-info",
        method = "get",
        operation_id = "listUserAuthenticationPasswordProfileInfo"
    )]
    async fn list(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        user: Path<String>,
        /// Items per page (1 to 100, default 25).
        #[oai(name = "page[limit]")]
        limit: PageLimit,
        /// Items to skip.
        #[oai(name = "page[offset]")]
        offset: Query<Option<u32>>,
    ) -> Result<Found<CredentialList>, Fail<AdminList>> {
        let dir = admin_in(&self.state, &auth, &realm).await?;
        Ok(Found::Ok(dir.page(
            dir.credentials(&known(&user)?).await?,
            limit,
            offset.0,
        )))
    }

    /// Get a user's username in a profile
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info/:user/user-authentication-password-profile-info/:id",
        method = "get",
        operation_id = "getUserAuthenticationPasswordProfileInfo"
    )]
    async fn get(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        user: Path<String>,
        id: Path<String>,
    ) -> Result<Found<CredentialEnvelope>, Fail<AdminOne>> {
        let dir = admin_in(&self.state, &auth, &realm).await?;
        let (user, id) = credential_path(user.parse(), id.parse())?;
        Ok(Found::Ok(dir.one(dir.credential(&user, &id).await?)))
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
        operation_id = "updateUserAuthenticationPasswordProfileInfo"
    )]
    async fn put(
        &self,
        tokens: ClientWithMember,
        realm: Path<String>,
        user: Path<String>,
        id: Path<String>,
        body: Json<CredentialBody>,
    ) -> Result<Found<CredentialEnvelope>, Fail<AdminUniqueWrite>> {
        let user = UserId::parse(&user);
        self.writer(tokens, user.as_ref().ok()).await?;
        let dir = &self.state.directory;
        dir.check_realm(&known(&realm)?)?;
        let d = body.0.data;
        // `data.id` only has to repeat the path's id, as the path writes it.
        if d.id.as_deref().is_some_and(|given| given != id.as_str()) {
            return Err(ApiError::bad("data.id does not match the path").into());
        }
        let (user, id) = credential_path(user, id.parse())?;
        let password = d.password.as_ref().map(|p| p.0.as_str());
        let c = dir
            .update_credential(&user, &id, d.username.as_deref(), password)
            .await?;
        Ok(Found::Ok(dir.one(c)))
    }

    /// Delete a user's username in a profile
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info/:user/user-authentication-password-profile-info/:id",
        method = "delete",
        operation_id = "deleteUserAuthenticationPasswordProfileInfo"
    )]
    async fn delete(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        user: Path<String>,
        id: Path<String>,
    ) -> Result<Deleted, Fail<AdminOne>> {
        let dir = admin_in(&self.state, &auth, &realm).await?;
        let (user, id) = credential_path(user.parse(), id.parse())?;
        dir.delete_credential(&user, &id).await?;
        Ok(Deleted::NoContent)
    }
}
