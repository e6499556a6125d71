//! Password profiles (`/v2/authentication-realms/:realm/password-profiles`): how
//! usernames look, whether codes may be requested, and the web phone application
//! a profile's users log in to.

use std::sync::Arc;

use authgate_core::directory::{PasswordProfile, ProfileChanges, UsernameFormat};
use authgate_core::ids::RealmId;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Object, OpenApi};

use super::{
    admin_in, change, known, required, resource_types, Links, ListMeta, Meta, Record, Wire,
};
use crate::api::document::{AdminList, AdminOne, AdminUniqueWrite, Fail};
use crate::api::types::{envelopes, wire_enum, Nullable, PageLimit};
use crate::api::{BearerToken, Created, Deleted, Found, Tag};
use crate::state::AppState;

resource_types! {
    /// The type of a password profile.
    ProfileType::PasswordProfile;
}

wire_enum! {
    /// How the usernames of a profile look.
    #[oai(rename = "UsernameFormat", rename_all = "snake_case")]
    pub enum UsernameFormatDto mirrors UsernameFormat {
        /// Any string.
        Any,
        /// An email address (kept lowercase).
        Email,
    }
}

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

envelopes! {
    /// A password profile, wrapped.
    ProfileBody { data: ProfileInput = "The profile." }
    /// A password profile, wrapped.
    ProfileEnvelope { data: ProfileData = "The profile." }
    /// Password profiles.
    ProfileList { data: [ProfileData] = "The profiles on this page.", meta: ListMeta = "Paging." }
}

impl Record for PasswordProfile {
    type Data = ProfileData;

    fn data(self, realm: &RealmId) -> ProfileData {
        ProfileData {
            links: Links {
                self_: format!(
                    "/v2/authentication-realms/{realm}/password-profiles/{}",
                    self.id
                ),
            },
            id: self.id.into(),
            type_: ProfileType::PasswordProfile,
            name: self.name,
            username_format: self.username_format.into(),
            enable_one_time_password_token: self.enable_one_time_password_token,
            voximplant_application: self.voximplant_application.into(),
            meta: Meta::of(self.created_at, self.updated_at),
        }
    }
}

/// The password profile endpoints.
pub struct ProfilesApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "Tag::PasswordProfiles")]
impl ProfilesApi {
    /// Create a password profile
    #[oai(
        path = "/v2/authentication-realms/:realm/password-profiles",
        method = "post",
        operation_id = "createPasswordProfile"
    )]
    async fn create(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        body: Json<ProfileBody>,
    ) -> Result<Created<ProfileEnvelope>, Fail<AdminUniqueWrite>> {
        let dir = admin_in(&self.state, &auth, &realm).await?;
        let d = body.0.data;
        let p = dir
            .create_profile(
                &required(d.name, "name")?,
                d.username_format.map(Into::into).unwrap_or_default(),
                d.enable_one_time_password_token.unwrap_or(false),
                d.voximplant_application.as_opt_deref().flatten(),
            )
            .await?;
        Ok(Created::Created(dir.one(p)))
    }

    /// List password profiles
    #[oai(
        path = "/v2/authentication-realms/:realm/password-profiles",
        method = "get",
        operation_id = "listPasswordProfiles"
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
    ) -> Result<Found<ProfileList>, Fail<AdminList>> {
        let dir = admin_in(&self.state, &auth, &realm).await?;
        Ok(Found::Ok(dir.page(dir.profiles().await?, limit, offset.0)))
    }

    /// Get a password profile
    #[oai(
        path = "/v2/authentication-realms/:realm/password-profiles/:id",
        method = "get",
        operation_id = "getPasswordProfile"
    )]
    async fn get(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        id: Path<String>,
    ) -> Result<Found<ProfileEnvelope>, Fail<AdminOne>> {
        let dir = admin_in(&self.state, &auth, &realm).await?;
        Ok(Found::Ok(dir.one(dir.profile(&known(&id)?).await?)))
    }

    /// Update a password profile
    ///
    /// Setting `voximplant_application` exposes the profile's users to web phone
    /// login; users whose password was set before get an HA1 when it is next set.
    #[oai(
        path = "/v2/authentication-realms/:realm/password-profiles/:id",
        method = "put",
        operation_id = "updatePasswordProfile"
    )]
    async fn put(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        id: Path<String>,
        body: Json<ProfileBody>,
    ) -> Result<Found<ProfileEnvelope>, Fail<AdminUniqueWrite>> {
        let dir = admin_in(&self.state, &auth, &realm).await?;
        let d = body.0.data;
        let changes = ProfileChanges {
            name: d.name,
            username_format: d.username_format.map(Into::into),
            enable_one_time_password_token: d.enable_one_time_password_token,
            voximplant_application: change(d.voximplant_application),
        };
        let p = dir.update_profile(&known(&id)?, changes).await?;
        Ok(Found::Ok(dir.one(p)))
    }

    /// Delete a password profile
    ///
    /// Deletes the usernames and passwords in it too.
    #[oai(
        path = "/v2/authentication-realms/:realm/password-profiles/:id",
        method = "delete",
        operation_id = "deletePasswordProfile"
    )]
    async fn delete(
        &self,
        auth: BearerToken,
        realm: Path<String>,
        id: Path<String>,
    ) -> Result<Deleted, Fail<AdminOne>> {
        let dir = admin_in(&self.state, &auth, &realm).await?;
        dir.delete_profile(&known(&id)?).await?;
        Ok(Deleted::NoContent)
    }
}
