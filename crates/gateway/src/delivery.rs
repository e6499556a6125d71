//! Delivery of events through a durable outbox shared by all replicas.
//!
//! An accepted code request appends one entry per observing integration to a
//! stream in the store ([`Outbox::enqueue`]); the request itself delivers nothing,
//! so it answers in the same time whether or not the user exists. Every replica
//! runs a [`Worker`] in one consumer group: it takes new entries, POSTs them,
//! logs each try, and acknowledges (and deletes) an entry only once it has been
//! delivered or rescheduled, so nothing accepted is lost when a receiver is down
//! or a replica dies. Failed tries go to a schedule with exponential backoff and
//! jitter and return to the stream when due; entries a dead replica left pending
//! are claimed by another after a grace period.
//!
//! Each webhook POST carries `X-MOLTIN-SECRET-KEY: <secret_key>` and
//! `X-Authgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
//! keyed by the same secret, so receivers can check the body and refuse replays.

use std::sync::Arc;
use std::time::{Duration, Instant};

use authgate_core::funnel::{Ignore, Observer, Stage, ONE_TIME_PASSWORD};
use authgate_core::integrations::{
    DeliveryLog, Integration, IntegrationType, Integrations, OTP_REQUEST_CREATED,
};
use authgate_core::store::{Keys, Op, Store, StoreError};
use authgate_otp::{CodeRequest, IssuedCode, OneTimeCode, OtpError, OtpScheme, Purpose};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::{watch, Semaphore};

use crate::email::{EmailSettings, Mailer};

const STREAM: &str = "events";
const SCHEDULE: &str = "retry";
/// Where the decoys of requests for unknown usernames go (one entry is kept).
const DECOYS: &str = "decoys";
const GROUP: &str = "delivery";
/// The most new entries a worker takes at once: code requests without a
/// recipient are settled a batch at a time, at a few round trips per batch.
const BATCH: usize = 128;
/// How long a worker waits after a part batch before reading again.
const LINGER: Duration = Duration::from_millis(10);
/// The `kind` of an outbox entry holding an accepted code request.
const REQUEST_KIND: &str = "one-time-password-token-request";

/// How deliveries are tried.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Tries per event and integration before giving up.
    pub max_attempts: u32,
    /// Wait before the second try; doubles each time, capped at `retry_cap`.
    pub retry_base: Duration,
    /// The longest wait between tries.
    pub retry_cap: Duration,
    /// How long a receiver may take to answer.
    pub timeout: Duration,
    /// How often an idle worker looks for new entries.
    pub poll: Duration,
    /// How long an entry may stay unacknowledged before another replica takes it.
    pub claim_after: Duration,
    /// No retry starts once this long has passed since the event was accepted
    /// (the code's lifetime: a late code is useless).
    pub give_up_after: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 20,
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            poll: Duration::from_millis(50),
            claim_after: Duration::from_secs(30),
            give_up_after: Duration::from_secs(600),
        }
    }
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// The outbox: where accepted events wait for delivery.
#[derive(Clone)]
pub struct Outbox {
    keys: Keys,
    store_id: String,
    mailer: Option<Mailer>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox(..)")
    }
}

impl Outbox {
    /// The outbox under `keys`; `store_id` names this deployment in event bodies.
    pub fn new(keys: Keys, store_id: String) -> Self {
        Self {
            keys,
            store_id,
            mailer: None,
        }
    }

    /// Sends email integrations' messages through `mailer`.
    pub fn with_mailer(mut self, mailer: Mailer) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// The op that appends an accepted code request to the outbox when the
    /// username is in the directory's index `(map, field)`, and otherwise a
    /// decoy of the same length (no code in it) to a stream kept at one entry.
    /// The same op is sent for every request, in the same round trip as the
    /// code, and the store does the same work either way; the worker checks the
    /// rest (a live code, an enabled user and profile) before sending anything.
    pub fn request_op(&self, request: &CodeRequest, index: (String, String)) -> Op {
        let now = OffsetDateTime::now_utc();
        let entry = RequestEntry {
            kind: REQUEST_KIND.to_owned(),
            // Not a secret: the thread's generator spares a system call per request.
            event_id: uuid::Builder::from_random_bytes(rand::random())
                .into_uuid()
                .to_string(),
            accepted_ms: (now.unix_timestamp_nanos() / 1_000_000) as i64,
            created_at: rfc3339(now),
            password_profile_id: request.profile_id.clone(),
            username: request.username.clone(),
            purpose: request.purpose.as_str().to_owned(),
            one_time_password_token: request.code.as_str().to_owned(),
        };
        let entry = serde_json::to_vec(&entry).unwrap_or_default();
        let (index, field) = index;
        Op::StreamAddIfPresent {
            index,
            field,
            stream: self.keys.outbox(STREAM),
            decoy: vec![b'-'; entry.len()],
            entry,
            decoys: self.keys.outbox(DECOYS),
        }
    }

    /// The event's payload for a code that has a recipient, field for field as the
    /// platform sends it; `created_at` is when the request was accepted.
    fn payload(&self, issued: &IssuedCode, created_at: &str) -> Value {
        json!({
            "authentication_realm_id": self.store_id,
            "created_at": created_at,
            "one_time_password_token": issued.code.as_str(),
            "password_profile_id": issued.profile.id,
            "purpose": issued.purpose.as_str(),
            "updated_at": created_at,
            "user_authentication_info": {
                "email": issued.user.email,
                "id": issued.user.id,
                "name": issued.user.name,
            },
            "user_authentication_password_profile_info": {
                "id": issued.credential.id,
                "password_profile_id": issued.credential.password_profile_id,
                "username": issued.credential.username,
            },
        })
    }

    /// The webhook body, field for field as the platform sends it.
    pub fn webhook_body(&self, i: &Integration, secret_key: &str, entry: &Value) -> Value {
        json!({
            "id": entry["event_id"],
            "store_id": self.store_id,
            "triggered_by": OTP_REQUEST_CREATED,
            "attempt": entry["attempt"],
            "integration": {
                "id": i.id,
                "integration_type": i.integration_type.as_str(),
                "name": i.name,
                "description": i.description,
            },
            "payload": entry["payload"],
            "configuration": {
                "url": i.url,
                "secret_key": secret_key,
            },
        })
    }
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed by `secret`.
pub fn signature(secret: &str, unix_secs: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(unix_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={unix_secs},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// One replica's delivery worker.
pub struct Worker {
    store: Arc<dyn Store>,
    keys: Keys,
    outbox: Outbox,
    otp: OtpScheme,
    integrations: Integrations,
    config: DeliveryConfig,
    http: reqwest::Client,
    consumer: String,
    observer: Arc<dyn Observer>,
}

/// What a delivery task does with an entry.
enum Work {
    /// A code request with a recipient: its first tries.
    FanOut(Box<(RequestEntry, IssuedCode)>),
    /// A delivery due again.
    Retry(Value),
}

enum Outcome {
    Delivered,
    Failed,
    /// A failure that retrying cannot mend.
    Permanent,
    Dropped,
}

/// An accepted code request, as [`Outbox::request_op`] writes it to the outbox.
#[derive(Debug, Serialize, Deserialize)]
struct RequestEntry {
    kind: String,
    event_id: String,
    accepted_ms: i64,
    created_at: String,
    password_profile_id: String,
    username: String,
    purpose: String,
    one_time_password_token: String,
}

impl RequestEntry {
    /// The code request it holds.
    fn request(&self) -> Option<CodeRequest> {
        Some(CodeRequest {
            code: OneTimeCode::parse(&self.one_time_password_token).ok()?,
            purpose: Purpose::parse(&self.purpose).ok()?,
            profile_id: self.password_profile_id.clone(),
            username: self.username.clone(),
        })
    }
}

fn unavailable(e: OtpError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl Worker {
    /// A worker with its own consumer name.
    pub fn new(
        store: Arc<dyn Store>,
        keys: Keys,
        outbox: Outbox,
        otp: OtpScheme,
        integrations: Integrations,
        config: DeliveryConfig,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("authgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            store,
            keys,
            outbox,
            otp,
            integrations,
            config,
            http,
            consumer: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            observer: Arc::new(Ignore),
        }
    }

    /// Reports deliveries to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Runs until `stop` changes.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let me = Arc::new(self);
        let slots = Arc::new(Semaphore::new(32));
        let mut last_claim = Instant::now();
        loop {
            if *stop.borrow() {
                break;
            }
            let mut ops = vec![
                Op::Release {
                    schedule: me.keys.outbox(SCHEDULE),
                    stream: me.keys.outbox(STREAM),
                    now_ms: now_ms(),
                    max: 100,
                },
                Op::StreamRead {
                    stream: me.keys.outbox(STREAM),
                    group: GROUP.into(),
                    consumer: me.consumer.clone(),
                    count: BATCH,
                },
            ];
            let claiming = last_claim.elapsed() >= me.config.claim_after / 3;
            if claiming {
                last_claim = Instant::now();
                ops.push(Op::StreamClaim {
                    stream: me.keys.outbox(STREAM),
                    group: GROUP.into(),
                    consumer: me.consumer.clone(),
                    min_idle: me.config.claim_after,
                    count: 32,
                });
            }
            let entries = match me.store.exec(ops).await {
                Ok(replies) => replies
                    .into_iter()
                    .skip(1)
                    .filter_map(|r| r.into_entries().ok())
                    .flatten()
                    .collect::<Vec<_>>(),
                Err(e) => {
                    tracing::warn!(error = %e, "outbox unreachable; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {},
                        _ = stop.changed() => {},
                    }
                    continue;
                }
            };
            // Idle: wait a poll interval. A part batch: wait a little, so that under
            // load batches fill up and the per-batch round trips are shared by more
            // entries. A full batch: go on at once.
            let pause = match entries.len() {
                0 => Some(me.config.poll),
                n if n < BATCH => Some(LINGER),
                _ => None,
            };
            if !entries.is_empty() {
                me.dispatch(entries, &slots).await;
            }
            if let Some(pause) = pause {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {},
                    _ = stop.changed() => {},
                }
            }
        }
    }

    /// Acknowledges (and deletes) entries, in one round trip.
    async fn ack(&self, ids: Vec<String>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.store
            .exec(vec![Op::StreamAck {
                stream: self.keys.outbox(STREAM),
                group: GROUP.into(),
                ids,
            }])
            .await
            .map(drop)
    }

    /// Sorts out a batch of entries: code requests get their recipients resolved
    /// together (a few store round trips per batch, not per entry); those with
    /// none, and leftovers of earlier versions, are acknowledged together; each
    /// delivery runs in its own task, within the worker's concurrency.
    async fn dispatch(self: &Arc<Self>, entries: Vec<(String, Vec<u8>)>, slots: &Arc<Semaphore>) {
        let mut requests = Vec::new();
        let mut found: Vec<CodeRequest> = Vec::new();
        let mut retries = Vec::new();
        let mut settled = Vec::new();
        for (id, raw) in entries {
            if let Ok(entry) = serde_json::from_slice::<RequestEntry>(&raw) {
                match entry.request().filter(|_| entry.kind == REQUEST_KIND) {
                    Some(request) => {
                        requests.push((id, entry));
                        found.push(request);
                    }
                    None => {
                        tracing::error!(%id, "malformed code request dropped");
                        settled.push(id);
                    }
                }
                continue;
            }
            match serde_json::from_slice::<Value>(&raw) {
                // Left by an earlier version of the gateway: nothing to send.
                Ok(entry) if entry["decoy"] == true => settled.push(id),
                Ok(entry) => retries.push((id, entry)),
                Err(_) => {
                    tracing::error!(%id, "malformed outbox entry dropped");
                    settled.push(id);
                }
            }
        }
        let mut work: Vec<(String, Work)> = Vec::new();
        if !requests.is_empty() {
            match self.otp.recipients(&found).await {
                Ok(recipients) => {
                    for ((id, entry), issued) in requests.into_iter().zip(recipients) {
                        match issued {
                            // Unknown, disabled, throttled or replaced: nothing to send.
                            None => settled.push(id),
                            Some(issued) => {
                                work.push((id, Work::FanOut(Box::new((entry, issued)))))
                            }
                        }
                    }
                }
                // Left pending: claimed again once they have been idle long enough.
                Err(e) => {
                    tracing::warn!(error = %e, "could not resolve the recipients of code requests")
                }
            }
        }
        work.extend(
            retries
                .into_iter()
                .map(|(id, entry)| (id, Work::Retry(entry))),
        );
        if let Err(e) = self.ack(settled).await {
            tracing::warn!(error = %e, "could not acknowledge outbox entries; they will be claimed again");
        }
        for (id, job) in work {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let me = self.clone();
            tokio::spawn(async move {
                let outcome = match job {
                    Work::FanOut(job) => {
                        let (entry, issued) = *job;
                        me.fan_out(&entry, issued).await
                    }
                    Work::Retry(entry) => me.retry(entry).await,
                };
                let outcome = match outcome {
                    Ok(()) => me.ack(vec![id.clone()]).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = outcome {
                    // Left pending: another replica (or this one) claims it later.
                    tracing::warn!(error = %e, %id, "could not settle an outbox entry");
                }
                drop(permit);
            });
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .config
            .retry_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.config.retry_cap);
        // Up to 20% jitter either way, so retries of many events do not align.
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        exp.mul_f64(jitter)
    }

    /// A code request with a recipient: tries every integration observing the
    /// event once; failed tries go to the schedule.
    async fn fan_out(&self, entry: &RequestEntry, issued: IssuedCode) -> Result<(), StoreError> {
        let targets = self
            .integrations
            .observing(OTP_REQUEST_CREATED)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        if targets.is_empty() {
            tracing::warn!("a one-time password token was issued but no enabled integration observes {OTP_REQUEST_CREATED}");
            return Ok(());
        }
        let payload = self.outbox.payload(&issued, &entry.created_at);
        let tries = targets.into_iter().map(|integration| {
            let delivery = json!({
                "event_id": entry.event_id,
                "integration_id": integration.id,
                "attempt": 1,
                "accepted_ms": entry.accepted_ms,
                "payload": payload,
            });
            self.attempt(delivery, Some(integration))
        });
        futures::future::join_all(tries).await.into_iter().collect()
    }

    /// A delivery that failed before and is due again, unless its code is no
    /// longer live (used, replaced, burnt or expired): then it is not worth sending.
    async fn retry(&self, entry: Value) -> Result<(), StoreError> {
        let p = &entry["payload"];
        let live = match (
            p["password_profile_id"].as_str(),
            p["user_authentication_password_profile_info"]["username"].as_str(),
            p["one_time_password_token"]
                .as_str()
                .and_then(|c| OneTimeCode::parse(c).ok()),
        ) {
            (Some(profile), Some(username), Some(code)) => self
                .otp
                .is_live(profile, username, &code)
                .await
                .map_err(unavailable)?,
            _ => true,
        };
        if !live {
            tracing::info!(event = %entry["event_id"], integration = %entry["integration_id"], "the code is no longer live; delivery not retried");
            return Ok(());
        }
        self.attempt(entry, None).await
    }

    /// One try of one delivery, then what follows from it: nothing more, or a
    /// retry on the schedule. Fails only when the retry could not be scheduled.
    async fn attempt(
        &self,
        mut entry: Value,
        integration: Option<Integration>,
    ) -> Result<(), StoreError> {
        let attempt = entry["attempt"].as_u64().unwrap_or(1) as u32;
        let outcome = self.deliver(&entry, integration, attempt).await;
        let accepted = entry["accepted_ms"].as_i64().unwrap_or_else(now_ms);
        let expired = now_ms() - accepted > self.config.give_up_after.as_millis() as i64;
        match outcome {
            Outcome::Delivered | Outcome::Dropped => Ok(()),
            Outcome::Permanent => {
                tracing::error!(event = %entry["event_id"], integration = %entry["integration_id"], attempt, "delivery failed for good; not retried");
                Ok(())
            }
            Outcome::Failed if expired => {
                tracing::error!(event = %entry["event_id"], integration = %entry["integration_id"], attempt, "delivery abandoned: the code has expired");
                Ok(())
            }
            Outcome::Failed if attempt < self.config.max_attempts => {
                entry["attempt"] = json!(attempt + 1);
                let due = now_ms() + self.backoff(attempt).as_millis() as i64;
                // Scheduled before the entry that asked for it is acknowledged: a
                // crash in between repeats a delivery rather than losing one.
                self.store
                    .exec(vec![Op::Schedule {
                        schedule: self.keys.outbox(SCHEDULE),
                        due_ms: due,
                        entry: entry.to_string().into_bytes(),
                    }])
                    .await
                    .map(drop)
            }
            Outcome::Failed => {
                tracing::error!(event = %entry["event_id"], integration = %entry["integration_id"], attempt, "delivery abandoned after the last attempt");
                Ok(())
            }
        }
    }

    async fn deliver(
        &self,
        entry: &Value,
        integration: Option<Integration>,
        attempt: u32,
    ) -> Outcome {
        let integration_id = entry["integration_id"].as_str().unwrap_or_default();
        let found = match integration {
            Some(i) => Ok(i),
            None => self.integrations.get(integration_id).await,
        };
        let integration = match found {
            Ok(i) if i.enabled => i,
            Ok(_) | Err(authgate_core::directory::DirectoryError::NotFound(_)) => {
                tracing::info!(
                    integration = integration_id,
                    "integration gone or disabled; event dropped"
                );
                return Outcome::Dropped;
            }
            Err(e) => {
                tracing::warn!(error = %e, "integration unreadable; will retry");
                return Outcome::Failed;
            }
        };
        let started = Instant::now();
        let (succeeded, status_code, body, error_detail, permanent) =
            match integration.integration_type {
                IntegrationType::Webhook => self.post(&integration, entry).await,
                IntegrationType::Email => self.email(&integration, entry).await,
            };
        let log = DeliveryLog {
            id: uuid::Uuid::new_v4().to_string(),
            integration_id: integration.id.clone(),
            event_id: entry["event_id"].as_str().unwrap_or_default().to_owned(),
            succeeded,
            attempt,
            status_code,
            body,
            processing_time: started.elapsed().as_secs_f64(),
            error_detail,
            created_at: rfc3339(OffsetDateTime::now_utc()),
        };
        if let Err(e) = self.integrations.log(&log).await {
            tracing::warn!(error = %e, "could not write a delivery log");
        }
        if succeeded {
            self.observer.observe(ONE_TIME_PASSWORD, Stage::Delivered);
            let accepted = entry["accepted_ms"].as_i64().unwrap_or_else(now_ms);
            tracing::debug!(latency_ms = now_ms() - accepted, attempt, "event delivered");
            Outcome::Delivered
        } else if permanent {
            tracing::warn!(integration = %integration.id, attempt, status = ?status_code, "delivery failed for good: {}", log.error_detail);
            Outcome::Permanent
        } else {
            tracing::info!(integration = %integration.id, attempt, status = ?status_code, "delivery failed: {}", log.error_detail);
            Outcome::Failed
        }
    }

    async fn email(
        &self,
        i: &Integration,
        entry: &Value,
    ) -> (bool, Option<u16>, String, String, bool) {
        let Some(mailer) = &self.outbox.mailer else {
            return (
                false,
                None,
                String::new(),
                "email is not configured".to_owned(),
                true,
            );
        };
        let settings = EmailSettings {
            from: i.from.clone(),
            reply_to: i.reply_to.clone(),
            reset_password_url: i.reset_password_url.clone(),
            passwordless_url: i.passwordless_url.clone(),
            locale: i.locale.clone(),
        };
        let minutes = (self.config.give_up_after.as_secs() / 60).max(1);
        match mailer.send(&entry["payload"], &settings, minutes).await {
            Ok(code) => (true, code, String::new(), String::new(), false),
            Err(e) => (false, e.code, String::new(), e.detail, e.permanent),
        }
    }

    async fn post(
        &self,
        i: &Integration,
        entry: &Value,
    ) -> (bool, Option<u16>, String, String, bool) {
        let secret = self.integrations.secret_key(i);
        let body = self.outbox.webhook_body(i, &secret, entry).to_string();
        let url = i.url.clone().unwrap_or_default();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let sent = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("X-MOLTIN-SECRET-KEY", &secret)
            .header(
                "X-Authgate-Signature",
                signature(&secret, now, body.as_bytes()),
            )
            .body(body)
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status();
                let mut text = resp.text().await.unwrap_or_default();
                if text.len() > 1024 {
                    let mut cut = 1024;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                }
                let detail = if status.is_success() {
                    String::new()
                } else {
                    format!("the receiver answered {status}")
                };
                (
                    status.is_success(),
                    Some(status.as_u16()),
                    text,
                    detail,
                    false,
                )
            }
            Err(e) => {
                let detail = if e.is_timeout() {
                    format!("no answer within {} s", self.config.timeout.as_secs())
                } else if e.is_connect() {
                    "could not connect to the receiver".to_owned()
                } else {
                    format!("request failed: {e}")
                };
                (false, None, String::new(), detail, false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_an_hmac_of_time_dot_body() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'shh'
        assert_eq!(
            signature("shh", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=be310eac0f84daf469d630347a950258de768b365563ab68f29f2f783473d547"
        );
    }
}
