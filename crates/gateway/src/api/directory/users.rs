//! Users (`/v2/authentication-realms/:realm/user-authentication-info`): a name, an
//! email address, and whether they may log in.

use std::sync::Arc;

use authgate_core::directory::UserInfo;
use authgate_core::ids::RealmId;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Object, OpenApi};

use super::{admin_in, known, required, resource_types, Links, ListMeta, Meta, Record, Wire};
use crate::api::document::{AdminList, AdminOne, AdminWrite, Fail};
use crate::api::types::{envelopes, Nullable, PageLimit};
use crate::api::{BearerToken, Created, Deleted, Found, Tag};
use crate::state::AppState;

resource_types! {
    /// The type of a user.
    UserType::UserAuthenticationInfo;
}

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

envelopes! {
    /// A user, wrapped.
    UserBody { data: UserInput = "The user." }
    /// A user, wrapped.
    UserEnvelope { data: UserData = "The user." }
    /// Users.
    UserList { data: [UserData] = "The users on this page.", meta: ListMeta = "Paging." }
}

impl Record for UserInfo {
    type Data = UserData;

    fn data(self, realm: &RealmId) -> UserData {
        UserData {
            links: Links {
                self_: format!(
                    "/v2/authentication-realms/{realm}/user-authentication-info/{}",
                    self.id
                ),
            },
            id: self.id.into(),
            type_: UserType::UserAuthenticationInfo,
            name: self.name,
            email: self.email.into(),
            enabled: self.enabled,
            meta: Meta::of(self.created_at, self.updated_at),
        }
    }
}

/// The user endpoints.
pub struct UsersApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "Tag::Users")]
impl UsersApi {
    /// Create a user
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info",
        method = "post",
        operation_id = "createUserAuthenticationInfo"
    )]
    async fn create(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        body: Json<UserBody>,
    ) -> Result<Created<UserEnvelope>, Fail<AdminWrite>> {
        let dir = admin_in(&self.state, &auth, &realm).await?;
        let d = body.0.data;
        let name = required(d.name, "name")?;
        let mut u = dir
            .create_user(&name, d.email.as_opt_deref().flatten())
            .await?;
        if d.enabled == Some(false) {
            u = dir.update_user(&u.id, None, None, Some(false)).await?;
        }
        Ok(Created::Created(dir.one(u)))
    }

    /// List users
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info",
        method = "get",
        operation_id = "listUserAuthenticationInfo"
    )]
    async fn list(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        /// Items per page (1 to 100, default 25).
        #[oai(name = "page[limit]")]
        limit: PageLimit,
        /// Items to skip.
        #[oai(name = "page[offset]")]
        offset: Query<Option<u32>>,
    ) -> Result<Found<UserList>, Fail<AdminList>> {
        let dir = admin_in(&self.state, &auth, &realm).await?;
        Ok(Found::Ok(dir.page(dir.users().await?, limit, offset.0)))
    }

    /// Get a user
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info/:id",
        method = "get",
        operation_id = "getUserAuthenticationInfo"
    )]
    async fn get(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        id: Path<String>,
    ) -> Result<Found<UserEnvelope>, Fail<AdminOne>> {
        let dir = admin_in(&self.state, &auth, &realm).await?;
        Ok(Found::Ok(dir.one(dir.user(&known(&id)?).await?)))
    }

    /// Update a user
    ///
    /// Disabling a user ends their sessions at once.
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info/:id",
        method = "put",
        operation_id = "updateUserAuthenticationInfo"
    )]
    async fn put(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        id: Path<String>,
        body: Json<UserBody>,
    ) -> Result<Found<UserEnvelope>, Fail<AdminWrite>> {
        let dir = admin_in(&self.state, &auth, &realm).await?;
        let d = body.0.data;
        let u = dir
            .update_user(
                &known(&id)?,
                d.name.as_deref(),
                d.email.as_opt_deref(),
                d.enabled,
            )
            .await?;
        Ok(Found::Ok(dir.one(u)))
    }

    /// Delete a user
    ///
    /// Deletes their credentials and ends their sessions.
    #[oai(
        path = "/v2/authentication-realms/:realm/user-authentication-info/:id",
        method = "delete",
        operation_id = "deleteUserAuthenticationInfo"
    )]
    async fn delete(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        id: Path<String>,
    ) -> Result<Deleted, Fail<AdminOne>> {
        let dir = admin_in(&self.state, &auth, &realm).await?;
        dir.delete_user(&known(&id)?).await?;
        Ok(Deleted::NoContent)
    }
}
