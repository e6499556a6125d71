//! Account authentication settings (`/v2/settings/account-authentication`): the
//! realm's id, members' self-management and the account token lifetime.

use std::sync::Arc;

use authgate_core::directory::{SelfManagement, Settings};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::resource_types;
use crate::api::document::{AdminPlain, AdminWriteNoPath, Fail};
use crate::api::types::{envelopes, wire_enum, Envelope};
use crate::api::{admin, BearerToken, Found, Tag};
use crate::state::AppState;

resource_types! {
    /// The type of the account authentication settings.
    SettingsType::AccountAuthenticationSettings;
    /// The type of an authentication realm reference.
    RealmType::AuthenticationRealm;
}

wire_enum! {
    /// Who may update their own records with an account management token.
    #[oai(rename = "SelfManagement", rename_all = "snake_case")]
    pub enum SelfManagementDto mirrors SelfManagement {
        /// Nobody.
        Disabled,
        /// Members may update their own records (e.g. reset their password).
        UpdateOnly,
    }
}

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

envelopes! {
    /// The settings, wrapped.
    SettingsEnvelope { data: SettingsData = "The settings." }
    /// Changes to the settings, wrapped.
    SettingsBody { data: SettingsInput = "The changes." }
}

impl From<Settings> for SettingsData {
    fn from(s: Settings) -> Self {
        Self {
            type_: SettingsType::AccountAuthenticationSettings,
            account_member_self_management: s.account_member_self_management.into(),
            account_management_authentication_token_timeout_secs: s
                .account_management_authentication_token_timeout_secs,
            relationships: SettingsRelationships {
                authentication_realm: RealmRelationship {
                    data: RealmRef {
                        id: s.realm_id.into(),
                        type_: RealmType::AuthenticationRealm,
                    },
                },
            },
        }
    }
}

/// The settings endpoints.
pub struct SettingsApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "Tag::Settings")]
impl SettingsApi {
    /// Get the account authentication settings
    ///
    /// Holds the authentication realm's id, used in every directory path.
    #[oai(
        path = "/v2/settings/account-authentication",
        method = "get",
        operation_id = "getAccountAuthenticationSettings"
    )]
    async fn get(&self, auth: BearerToken) -> Result<Found<SettingsEnvelope>, Fail<AdminPlain>> {
        admin(&self.state, &auth).await?;
        let s = self.state.directory.settings().await?;
        Ok(Found::Ok(Json(Envelope::wrap(s.into()))))
    }

    /// Update the account authentication settings
    #[oai(
        path = "/v2/settings/account-authentication",
        method = "put",
        operation_id = "updateAccountAuthenticationSettings"
    )]
    async fn put(
        &self,
        auth: BearerToken,
        body: Json<SettingsBody>,
    ) -> Result<Found<SettingsEnvelope>, Fail<AdminWriteNoPath>> {
        admin(&self.state, &auth).await?;
        let d = body.0.data;
        let s = self
            .state
            .directory
            .update_settings(
                d.account_member_self_management.map(Into::into),
                d.account_management_authentication_token_timeout_secs,
            )
            .await?;
        Ok(Found::Ok(Json(Envelope::wrap(s.into()))))
    }
}
