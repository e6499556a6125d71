//! Integrations: where events go (a webhook URL, an email sender), which events
//! they observe, and the log of every delivery try.
//!
//! A webhook's `secret_key` signs its deliveries, so it must be recoverable: it is
//! sealed with the keyring at rest, like HA1s.
//!
//! Integrations are spread over the store's shards by id, like the directory's
//! documents (see [`crate::directory::layout`]); each integration's log, and the
//! log of all, is a list under a tag of its own ([`Keys::delivery_log`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::crypto::Keyring;
use crate::directory::{layout, DirectoryError};
use crate::store::{Keys, Op, Reply, Store, StoreError};

/// The one event integrations can observe today.
pub const OTP_REQUEST_CREATED: &str = "one-time-password-token-request.created";

/// How an integration delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationType {
    /// An HTTP POST of the event to a URL.
    Webhook,
    /// An email to the user.
    Email,
}

impl IntegrationType {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Email => "email",
        }
    }
}

/// An integration as stored (the secret sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integration {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Whether events are delivered.
    pub enabled: bool,
    /// How it delivers.
    pub integration_type: IntegrationType,
    /// The events it observes.
    pub observes: Vec<String>,
    /// Where a webhook posts.
    pub url: Option<String>,
    /// The webhook's signing secret, sealed.
    pub secret_key_sealed: Option<String>,
    /// Email: the sender (default `AUTHGATE_EMAIL_FROM`).
    #[serde(default)]
    pub from: Option<String>,
    /// Email: the Reply-To address.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Email: where reset links point.
    #[serde(default)]
    pub reset_password_url: Option<String>,
    /// Email: where one-click sign-in links point.
    #[serde(default)]
    pub passwordless_url: Option<String>,
    /// Email: the template set.
    #[serde(default)]
    pub locale: Option<String>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last update (RFC 3339).
    pub updated_at: String,
}

/// What a caller gives to create or change an integration.
#[derive(Debug, Clone, Default)]
pub struct IntegrationInput {
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Whether events are delivered.
    pub enabled: Option<bool>,
    /// How it delivers.
    pub integration_type: Option<IntegrationType>,
    /// The events it observes.
    pub observes: Option<Vec<String>>,
    /// Where a webhook posts.
    pub url: Option<String>,
    /// The webhook's signing secret.
    pub secret_key: Option<String>,
    /// Email: the sender.
    pub from: Option<String>,
    /// Email: the Reply-To address.
    pub reply_to: Option<String>,
    /// Email: where reset links point.
    pub reset_password_url: Option<String>,
    /// Email: where one-click sign-in links point.
    pub passwordless_url: Option<String>,
    /// Email: the template set.
    pub locale: Option<String>,
}

/// One delivery try, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryLog {
    /// Id of this log entry.
    pub id: String,
    /// The integration.
    pub integration_id: String,
    /// The event delivered.
    pub event_id: String,
    /// Whether the receiver accepted it (2xx).
    pub succeeded: bool,
    /// Which try this was, from 1.
    pub attempt: u32,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// The start of the receiver's answer (at most 1 KiB).
    pub body: String,
    /// Seconds the try took.
    pub processing_time: f64,
    /// What went wrong, if anything.
    pub error_detail: String,
    /// When (RFC 3339).
    pub created_at: String,
}

/// Integration id to integration, in the shard of the id.
pub(crate) const INTEGRATIONS: &str = "integrations";
/// Log entries kept per integration and overall.
pub const LOGS_KEPT: usize = 200;

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
}

fn invalid(m: impl Into<String>) -> DirectoryError {
    DirectoryError::Invalid(m.into())
}

fn check_url(url: &str) -> Result<String, DirectoryError> {
    let u = url.trim();
    let ok = (u.starts_with("http://") || u.starts_with("https://"))
        && u.len() <= 2048
        && u.len() > "http://".len()
        && !u.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(u.to_owned())
    } else {
        Err(invalid(
            "configuration.url must be an http:// or https:// URL",
        ))
    }
}

/// The integrations and their logs.
#[derive(Clone)]
pub struct Integrations {
    store: Arc<dyn Store>,
    keys: Keys,
    keyring: Keyring,
}

impl std::fmt::Debug for Integrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Integrations(..)")
    }
}

impl Integrations {
    /// The integrations kept in `store`.
    pub fn new(store: Arc<dyn Store>, keys: Keys, keyring: Keyring) -> Self {
        Self {
            store,
            keys,
            keyring,
        }
    }

    /// The shard of the integrations that holds integration `id`.
    fn key(&self, id: &str) -> String {
        self.keys.sharded(INTEGRATIONS, id)
    }

    /// The log list of one integration, or of all when `None`.
    pub fn log_key(&self, integration_id: Option<&str>) -> String {
        self.keys.delivery_log(integration_id)
    }

    async fn put(&self, i: &Integration) -> Result<(), DirectoryError> {
        let json = serde_json::to_vec(i).map_err(|e| invalid(e.to_string()))?;
        self.store
            .exec(vec![Op::MapSet {
                key: self.key(&i.id),
                fields: vec![(i.id.clone(), json)],
                ttl: None,
            }])
            .await?;
        Ok(())
    }

    fn apply(&self, i: &mut Integration, input: IntegrationInput) -> Result<(), DirectoryError> {
        if let Some(n) = input.name {
            let n = n.trim().to_owned();
            if n.is_empty() || n.len() > 255 {
                return Err(invalid("name must be 1 to 255 characters"));
            }
            i.name = n;
        }
        if let Some(d) = input.description {
            if d.len() > 1024 {
                return Err(invalid("description must be at most 1024 characters"));
            }
            i.description = d;
        }
        if let Some(e) = input.enabled {
            i.enabled = e;
        }
        if let Some(t) = input.integration_type {
            i.integration_type = t;
        }
        if let Some(o) = input.observes {
            if let Some(unknown) = o.iter().find(|e| e.as_str() != OTP_REQUEST_CREATED) {
                return Err(invalid(format!(
                    "cannot observe {unknown:?}: the only event is {OTP_REQUEST_CREATED}"
                )));
            }
            i.observes = o;
        }
        if let Some(u) = input.url {
            i.url = Some(check_url(&u)?);
        }
        if let Some(k) = input.secret_key {
            if k.len() > 512 {
                return Err(invalid(
                    "configuration.secret_key must be at most 512 characters",
                ));
            }
            i.secret_key_sealed = Some(self.keyring.seal(k.as_bytes(), &i.id));
        }
        let address = |field: &str, v: String| -> Result<String, DirectoryError> {
            let v = v.trim().to_owned();
            let ok = v.len() <= 320 && v.contains('@') && !v.chars().any(char::is_control);
            ok.then_some(v)
                .ok_or_else(|| invalid(format!("configuration.{field} must be an email address")))
        };
        if let Some(v) = input.from {
            i.from = Some(address("from", v)?);
        }
        if let Some(v) = input.reply_to {
            i.reply_to = Some(address("reply_to", v)?);
        }
        if let Some(v) = input.reset_password_url {
            i.reset_password_url = Some(check_url(&v).map_err(|_| {
                invalid("configuration.reset_password_url must be an http:// or https:// URL")
            })?);
        }
        if let Some(v) = input.passwordless_url {
            i.passwordless_url = Some(check_url(&v).map_err(|_| {
                invalid("configuration.passwordless_url must be an http:// or https:// URL")
            })?);
        }
        if let Some(v) = input.locale {
            let v = v.trim().to_owned();
            if v.is_empty()
                || v.len() > 16
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid(
                    "configuration.locale must be a short tag such as en or pt-BR",
                ));
            }
            i.locale = Some(v);
        }
        if i.integration_type == IntegrationType::Webhook && i.url.is_none() {
            return Err(invalid("a webhook integration needs configuration.url"));
        }
        Ok(())
    }

    /// Creates an integration.
    pub async fn create(&self, input: IntegrationInput) -> Result<Integration, DirectoryError> {
        if input.name.is_none() {
            return Err(invalid("name is required"));
        }
        let ts = now();
        let mut i = Integration {
            id: uuid::Uuid::new_v4().to_string(),
            name: String::new(),
            description: String::new(),
            enabled: true,
            integration_type: input.integration_type.unwrap_or(IntegrationType::Webhook),
            observes: vec![OTP_REQUEST_CREATED.to_owned()],
            url: None,
            secret_key_sealed: None,
            from: None,
            reply_to: None,
            reset_password_url: None,
            passwordless_url: None,
            locale: None,
            created_at: ts.clone(),
            updated_at: ts,
        };
        self.apply(&mut i, input)?;
        self.put(&i).await?;
        Ok(i)
    }

    /// One integration.
    pub async fn get(&self, id: &str) -> Result<Integration, DirectoryError> {
        let raw = self
            .store
            .exec(vec![Op::MapGet(self.key(id), id.to_owned())])
            .await?
            .pop()
            .map(Reply::into_value)
            .transpose()?
            .flatten()
            .ok_or(DirectoryError::NotFound("integration"))?;
        serde_json::from_slice(&raw).map_err(|e| StoreError::Protocol(e.to_string()).into())
    }

    /// All integrations, oldest first (every shard, in one batch).
    pub async fn list(&self) -> Result<Vec<Integration>, DirectoryError> {
        let map = layout::read_all_shards(&*self.store, &self.keys, INTEGRATIONS).await?;
        let mut all = map
            .values()
            .map(|v| serde_json::from_slice(v))
            .collect::<Result<Vec<Integration>, _>>()
            .map_err(|e| StoreError::Protocol(e.to_string()))?;
        all.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(all)
    }

    /// The enabled integrations observing `event`.
    pub async fn observing(&self, event: &str) -> Result<Vec<Integration>, DirectoryError> {
        let mut all = self.list().await?;
        all.retain(|i| i.enabled && i.observes.iter().any(|e| e == event));
        Ok(all)
    }

    /// Changes an integration.
    pub async fn update(
        &self,
        id: &str,
        input: IntegrationInput,
    ) -> Result<Integration, DirectoryError> {
        let mut i = self.get(id).await?;
        self.apply(&mut i, input)?;
        i.updated_at = now();
        self.put(&i).await?;
        Ok(i)
    }

    /// Deletes an integration and its own log (the overall log keeps its entries).
    pub async fn delete(&self, id: &str) -> Result<(), DirectoryError> {
        self.get(id).await?;
        self.store
            .exec(vec![
                Op::MapDelete(self.key(id), vec![id.to_owned()]),
                Op::Delete(vec![self.log_key(Some(id))]),
            ])
            .await?;
        Ok(())
    }

    /// The webhook's signing secret in clear ("" when none was given).
    pub fn secret_key(&self, i: &Integration) -> String {
        let Some(sealed) = i.secret_key_sealed.as_deref() else {
            return String::new();
        };
        match self.keyring.open(sealed, &i.id) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(_) => {
                tracing::error!(integration = %i.id, "the integration's secret_key cannot be opened (was AUTHGATE_TOKEN_SECRET changed?); set it again");
                String::new()
            }
        }
    }

    /// Records a delivery try in the integration's log and the overall log.
    pub async fn log(&self, entry: &DeliveryLog) -> Result<(), StoreError> {
        let json = serde_json::to_vec(entry).map_err(|e| StoreError::Protocol(e.to_string()))?;
        self.store
            .exec(vec![
                Op::ListPush {
                    key: self.log_key(Some(&entry.integration_id)),
                    value: json.clone(),
                    keep: LOGS_KEPT,
                },
                Op::ListPush {
                    key: self.log_key(None),
                    value: json,
                    keep: LOGS_KEPT,
                },
            ])
            .await?;
        Ok(())
    }

    /// The newest log entries, of one integration or of all.
    pub async fn logs(
        &self,
        integration_id: Option<&str>,
        count: usize,
    ) -> Result<Vec<DeliveryLog>, StoreError> {
        let items = self
            .store
            .exec(vec![Op::ListRange {
                key: self.log_key(integration_id),
                count,
            }])
            .await?
            .pop()
            .map(Reply::into_items)
            .transpose()?
            .unwrap_or_default();
        Ok(items
            .iter()
            .filter_map(|i| serde_json::from_slice(i).ok())
            .collect())
    }
}
