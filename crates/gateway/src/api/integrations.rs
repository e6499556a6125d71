//! Integrations (`/v2/integrations`) and their delivery logs. Admin only.

use std::sync::Arc;

use authgate_core::integrations::{DeliveryLog, Integration, IntegrationInput, IntegrationType};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use super::document::{
    AdminList, AdminOne, AdminPaged, AdminPlain, AdminWrite, AdminWriteNoPath, Fail,
};
use super::types::{envelopes, wire_enum, Envelope, EventName, ListEnvelope, Nullable, Timestamp};
use super::{admin, BearerToken, Created, Deleted, Found, Tag};
use crate::state::AppState;

/// The type of an integration.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum IntegrationKind {
    /// The only value.
    Integration,
}

/// The type of a delivery log entry.
#[derive(Debug, Clone, Copy, Enum, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum IntegrationLogKind {
    /// The only value.
    IntegrationLog,
}

wire_enum! {
    /// How an integration delivers.
    #[oai(rename = "IntegrationType", rename_all = "snake_case")]
    pub enum IntegrationTypeDto mirrors IntegrationType {
        /// POST the event to `configuration.url`.
        Webhook,
        /// Email the code to the user (SMTP, `AUTHGATE_SMTP_URL`).
        Email,
    }
}

/// Where and how events are sent.
#[derive(Debug, Object)]
pub struct Configuration {
    /// The receiver's URL (webhooks).
    #[oai(validator(max_length = 2048))]
    pub url: Option<String>,
    /// Sent as `X-MOLTIN-SECRET-KEY` and used to sign each delivery (`X-Authgate-Signature`).
    #[oai(validator(max_length = 512))]
    pub secret_key: Option<String>,
    /// Email: the sender, e.g. `Shop <no-reply@shop.example>` (default `AUTHGATE_EMAIL_FROM`).
    #[oai(validator(max_length = 320))]
    pub from: Option<String>,
    /// Email: the Reply-To address.
    #[oai(validator(max_length = 320))]
    pub reply_to: Option<String>,
    /// Email: your reset page; the link gets `username` and `token` query parameters.
    #[oai(validator(max_length = 2048))]
    pub reset_password_url: Option<String>,
    /// Email: your one-click sign-in page; the link gets `username` and `token`.
    #[oai(validator(max_length = 2048))]
    pub passwordless_url: Option<String>,
    /// Email: the template set to use (`<AUTHGATE_EMAIL_TEMPLATES>/<locale>/`), when present.
    #[oai(validator(max_length = 16))]
    pub locale: Option<String>,
}

/// An integration to create or the changes to one.
#[derive(Debug, Object)]
#[oai(rename = "IntegrationInput")]
pub struct IntegrationInputDto {
    /// Always `integration`.
    #[oai(rename = "type")]
    pub type_: IntegrationKind,
    /// Name (required on create).
    #[oai(validator(max_length = 255))]
    pub name: Option<String>,
    /// Description.
    #[oai(validator(max_length = 1024))]
    pub description: Option<String>,
    /// Whether events are delivered (default true).
    pub enabled: Option<bool>,
    /// `webhook` (default) or `email`.
    pub integration_type: Option<IntegrationTypeDto>,
    /// Events observed: `one-time-password-token-request.created` (the default).
    pub observes: Option<Vec<EventName>>,
    /// Where and how to deliver.
    pub configuration: Option<Configuration>,
}

/// Timestamps.
#[derive(Debug, Object)]
pub struct Timestamps {
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// Metadata of an integration.
#[derive(Debug, Object)]
pub struct IntegrationMeta {
    /// Timestamps.
    pub timestamps: Timestamps,
}

/// The configuration as stored.
#[derive(Debug, Object)]
pub struct ConfigurationOut {
    /// The receiver's URL (null for email integrations).
    pub url: Nullable<String>,
    /// The signing secret.
    pub secret_key: String,
    /// Email: the sender.
    #[oai(skip_serializing_if_is_none)]
    pub from: Option<String>,
    /// Email: the Reply-To address.
    #[oai(skip_serializing_if_is_none)]
    pub reply_to: Option<String>,
    /// Email: the reset page.
    #[oai(skip_serializing_if_is_none)]
    pub reset_password_url: Option<String>,
    /// Email: the sign-in page.
    #[oai(skip_serializing_if_is_none)]
    pub passwordless_url: Option<String>,
    /// Email: the template set.
    #[oai(skip_serializing_if_is_none)]
    pub locale: Option<String>,
}

/// An integration.
#[derive(Debug, Object)]
pub struct IntegrationData {
    /// Id.
    pub id: String,
    /// Always `integration`.
    #[oai(rename = "type")]
    pub type_: IntegrationKind,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Whether events are delivered.
    pub enabled: bool,
    /// How it delivers.
    pub integration_type: IntegrationTypeDto,
    /// Events observed.
    pub observes: Vec<EventName>,
    /// Where and how.
    pub configuration: ConfigurationOut,
    /// Metadata.
    pub meta: IntegrationMeta,
}

/// Counts of a list.
#[derive(Debug, Object)]
pub struct Counts {
    /// Items in all.
    pub total: u32,
}

/// Metadata of a list.
#[derive(Debug, Object)]
pub struct CountMeta {
    /// Counts.
    pub results: Counts,
}

impl CountMeta {
    fn of<T>(items: &[T]) -> Self {
        Self {
            results: Counts {
                total: items.len() as u32,
            },
        }
    }
}

/// A reference to an integration.
#[derive(Debug, Object)]
pub struct IntegrationRef {
    /// Its id.
    pub id: String,
    /// Always `integration`.
    #[oai(rename = "type")]
    pub type_: IntegrationKind,
}

/// The relationship to an integration.
#[derive(Debug, Object)]
pub struct IntegrationRelationship {
    /// The integration.
    pub data: IntegrationRef,
}

/// Relationships of a log entry.
#[derive(Debug, Object)]
pub struct LogRelationships {
    /// The integration it belongs to.
    pub integration: IntegrationRelationship,
}

/// When a try happened.
#[derive(Debug, Object)]
pub struct LogTimestamps {
    /// When.
    pub created_at: Timestamp,
}

/// Metadata of a log entry.
#[derive(Debug, Object)]
pub struct LogMeta {
    /// When.
    pub timestamps: LogTimestamps,
}

/// One delivery try.
#[derive(Debug, Object)]
pub struct LogData {
    /// Id.
    pub id: String,
    /// Always `integration_log`.
    #[oai(rename = "type")]
    pub type_: IntegrationLogKind,
    /// Whether the receiver answered 2xx.
    pub succeeded: bool,
    /// Which try, from 1.
    pub attempt: u32,
    /// The receiver's status; null when it did not answer.
    pub status_code: Nullable<u16>,
    /// The start of the receiver's answer.
    pub body: String,
    /// What went wrong, if anything.
    pub error_detail: String,
    /// Seconds the try took.
    pub processing_time: f64,
    /// The event delivered.
    pub event_id: String,
    /// The integration.
    pub relationships: LogRelationships,
    /// When.
    pub meta: LogMeta,
}

envelopes! {
    /// An integration to create or change, wrapped.
    IntegrationBody { data: IntegrationInputDto = "The integration." }
    /// An integration, wrapped.
    IntegrationEnvelope { data: IntegrationData = "The integration." }
    /// Integrations.
    IntegrationList { data: [IntegrationData] = "The integrations.", meta: CountMeta = "Counts." }
    /// Delivery tries, newest first.
    LogList { data: [LogData] = "The tries.", meta: CountMeta = "Counts." }
}

/// The integrations endpoints.
pub struct IntegrationsApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

impl IntegrationsApi {
    fn data(&self, i: Integration) -> IntegrationData {
        let secret_key = self.state.integrations.secret_key(&i);
        IntegrationData {
            id: i.id,
            type_: IntegrationKind::Integration,
            name: i.name,
            description: i.description,
            enabled: i.enabled,
            integration_type: i.integration_type.into(),
            observes: i.observes.into_iter().map(EventName).collect(),
            configuration: ConfigurationOut {
                url: i.url.into(),
                secret_key,
                from: i.from,
                reply_to: i.reply_to,
                reset_password_url: i.reset_password_url,
                passwordless_url: i.passwordless_url,
                locale: i.locale,
            },
            meta: IntegrationMeta {
                timestamps: Timestamps {
                    created_at: Timestamp(i.created_at),
                    updated_at: Timestamp(i.updated_at),
                },
            },
        }
    }

    fn one(&self, i: Integration) -> Json<IntegrationEnvelope> {
        Json(Envelope::wrap(self.data(i)))
    }

    fn input(body: IntegrationBody) -> IntegrationInput {
        let d = body.data;
        let c = d.configuration.unwrap_or(Configuration {
            url: None,
            secret_key: None,
            from: None,
            reply_to: None,
            reset_password_url: None,
            passwordless_url: None,
            locale: None,
        });
        IntegrationInput {
            name: d.name,
            description: d.description,
            enabled: d.enabled,
            integration_type: d.integration_type.map(Into::into),
            observes: d
                .observes
                .map(|events| events.into_iter().map(|e| e.0).collect()),
            url: c.url,
            secret_key: c.secret_key,
            from: c.from,
            reply_to: c.reply_to,
            reset_password_url: c.reset_password_url,
            passwordless_url: c.passwordless_url,
            locale: c.locale,
        }
    }

    fn logs(entries: Vec<DeliveryLog>) -> Json<LogList> {
        let meta = CountMeta::of(&entries);
        let data = entries
            .into_iter()
            .map(|l| LogData {
                id: l.id,
                type_: IntegrationLogKind::IntegrationLog,
                succeeded: l.succeeded,
                attempt: l.attempt,
                status_code: l.status_code.into(),
                body: l.body,
                error_detail: l.error_detail,
                processing_time: l.processing_time,
                event_id: l.event_id,
                relationships: LogRelationships {
                    integration: IntegrationRelationship {
                        data: IntegrationRef {
                            id: l.integration_id,
                            type_: IntegrationKind::Integration,
                        },
                    },
                },
                meta: LogMeta {
                    timestamps: LogTimestamps {
                        created_at: Timestamp(l.created_at),
                    },
                },
            })
            .collect();
        Json(ListEnvelope::wrap(data, meta))
    }
}

/// How many delivery tries a log answer holds: 1 to 200, 100 when `page[limit]` is absent.
fn log_count(limit: Option<u32>) -> usize {
    limit.unwrap_or(100).clamp(1, 200) as usize
}

#[OpenApi(tag = "Tag::Integrations")]
impl IntegrationsApi {
    /// Create an integration
    #[oai(
        path = "/v2/integrations",
        method = "post",
        operation_id = "createIntegration"
    )]
    async fn create(
        &self,
        auth: BearerToken,
        body: Json<IntegrationBody>,
    ) -> Result<Created<IntegrationEnvelope>, Fail<AdminWriteNoPath>> {
        admin(&self.state, &auth).await?;
        let i = self.state.integrations.create(Self::input(body.0)).await?;
        Ok(Created::Created(self.one(i)))
    }

    /// List integrations
    #[oai(
        path = "/v2/integrations",
        method = "get",
        operation_id = "listIntegrations"
    )]
    async fn list(&self, auth: BearerToken) -> Result<Found<IntegrationList>, Fail<AdminPlain>> {
        admin(&self.state, &auth).await?;
        let all = self.state.integrations.list().await?;
        let meta = CountMeta::of(&all);
        let data = all.into_iter().map(|i| self.data(i)).collect();
        Ok(Found::Ok(Json(ListEnvelope::wrap(data, meta))))
    }

    /// Delivery tries of all integrations
    ///
    /// The newest first (up to 200 are kept).
    #[oai(
        path = "/v2/integrations/logs",
        method = "get",
        operation_id = "listAllIntegrationLogs"
    )]
    async fn all_logs(
        &self,
        auth: BearerToken,
        /// How many (1 to 200, default 100).
        #[oai(name = "page[limit]")]
        limit: Query<Option<u32>>,
    ) -> Result<Found<LogList>, Fail<AdminPaged>> {
        admin(&self.state, &auth).await?;
        let n = log_count(limit.0);
        Ok(Found::Ok(Self::logs(
            self.state.integrations.logs(None, n).await?,
        )))
    }

    /// Get an integration
    #[oai(
        path = "/v2/integrations/:id",
        method = "get",
        operation_id = "getIntegration"
    )]
    async fn get(
        &self,
        auth: BearerToken,
        id: Path<String>,
    ) -> Result<Found<IntegrationEnvelope>, Fail<AdminOne>> {
        admin(&self.state, &auth).await?;
        let i = self.state.integrations.get(&id).await?;
        Ok(Found::Ok(self.one(i)))
    }

    /// Update an integration
    #[oai(
        path = "/v2/integrations/:id",
        method = "put",
        operation_id = "updateIntegration"
    )]
    async fn update(
        &self,
        auth: BearerToken,
        id: Path<String>,
        body: Json<IntegrationBody>,
    ) -> Result<Found<IntegrationEnvelope>, Fail<AdminWrite>> {
        admin(&self.state, &auth).await?;
        let i = self
            .state
            .integrations
            .update(&id, Self::input(body.0))
            .await?;
        Ok(Found::Ok(self.one(i)))
    }

    /// Delete an integration
    #[oai(
        path = "/v2/integrations/:id",
        method = "delete",
        operation_id = "deleteIntegration"
    )]
    async fn delete(&self, auth: BearerToken, id: Path<String>) -> Result<Deleted, Fail<AdminOne>> {
        admin(&self.state, &auth).await?;
        self.state.integrations.delete(&id).await?;
        Ok(Deleted::NoContent)
    }

    /// Delivery tries of one integration
    ///
    /// The newest first (up to 200 are kept): `succeeded`, `attempt`, `status_code`,
    /// `body`, `processing_time`, `error_detail`.
    #[oai(
        path = "/v2/integrations/:id/logs",
        method = "get",
        operation_id = "listIntegrationLogs"
    )]
    async fn logs_of(
        &self,
        auth: BearerToken,
        id: Path<String>,
        /// How many (1 to 200, default 100).
        #[oai(name = "page[limit]")]
        limit: Query<Option<u32>>,
    ) -> Result<Found<LogList>, Fail<AdminList>> {
        admin(&self.state, &auth).await?;
        self.state.integrations.get(&id).await?;
        let n = log_count(limit.0);
        Ok(Found::Ok(Self::logs(
            self.state.integrations.logs(Some(&id), n).await?,
        )))
    }
}
