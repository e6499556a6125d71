//! One replica's delivery worker: the loop that reads and claims outbox entries,
//! resolves the recipients of code requests a batch at a time, fans each event out
//! to the integrations observing it, logs every try, and reschedules failures with
//! exponential backoff and jitter until they succeed, expire or run out of tries.
//!
//! An entry is acknowledged only once everything it asked for was delivered,
//! dropped or rescheduled: a crash in between repeats a delivery rather than
//! losing one.
//!
//! An idle worker looks at the outbox less often the longer it stays idle (from
//! `poll` up to `idle_poll_max`), since every look costs commands on every shard;
//! a code request accepted by the same replica wakes it at once
//! ([`Outbox::wake`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use authgate_core::directory::DirectoryError;
use authgate_core::funnel::{Funnel, Observer, Stage, ONE_TIME_PASSWORD};
use authgate_core::integrations::{
    DeliveryLog, Integration, IntegrationType, Integrations, OTP_REQUEST_CREATED,
};
use authgate_core::store::StoreError;
use authgate_otp::{IssuedCode, OtpScheme};
use futures::FutureExt;
use rand::Rng;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::{watch, Semaphore};

use crate::email::EmailSettings;
use crate::event::{Event, Payload};
use crate::outbox::{now_ms, DeliveryEntry, Entry, EntryId, Outbox, RequestEntry, Taken};
use crate::send::{Attempt, Failure, Senders};

/// The most new entries a worker takes at once: code requests without a
/// recipient are settled a batch at a time, at a few round trips per batch.
const BATCH: usize = 128;
/// The most entries of dead replicas a worker takes over at once.
const CLAIM: usize = 32;
/// How many deliveries a worker runs at once.
const CONCURRENCY: usize = 32;
/// How long a worker waits after a part batch before reading again.
const LINGER: Duration = Duration::from_millis(10);

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
    /// How long a worker waits after a look that found nothing; each further
    /// empty look in a row doubles the wait, up to `idle_poll_max`.
    pub poll: Duration,
    /// The longest an idle worker waits between looks. A code request that
    /// this replica accepts wakes its worker at once, but one accepted by a
    /// replica without a worker waits for another replica's next look: up to
    /// this long on an idle system. Due retries are moved from the schedule
    /// back to the stream by the looks too, so they can start up to this late
    /// (small beside their own backoff: a second before the second try, by default).
    pub idle_poll_max: Duration,
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
            idle_poll_max: Duration::from_secs(1),
            claim_after: Duration::from_secs(30),
            give_up_after: Duration::from_secs(600),
        }
    }
}

/// How long an idle worker waits after its `empty_polls`th empty look in a row
/// (from 1): `poll`, doubled for each further one, at most `cap` (or `poll`, if
/// that is longer).
fn idle_wait(empty_polls: u32, poll: Duration, cap: Duration) -> Duration {
    let doublings = empty_polls.saturating_sub(1).min(16);
    poll.saturating_mul(1 << doublings).min(cap.max(poll))
}

/// `t` as RFC 3339 (empty for years RFC 3339 cannot write).
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// One replica's delivery worker.
pub struct Worker {
    outbox: Outbox,
    otp: OtpScheme,
    integrations: Integrations,
    senders: Senders,
    config: DeliveryConfig,
    consumer: String,
    funnel: Funnel,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

/// What a delivery task does with an entry.
enum Work {
    /// A code request with a recipient: its first tries.
    FanOut(Box<(RequestEntry, IssuedCode)>),
    /// A delivery due again.
    Retry(Box<DeliveryEntry>),
}

/// What follows from one try.
enum Next {
    /// Nothing: delivered, or the integration is gone or disabled.
    Done,
    /// Another try, if time and tries are left.
    Retry,
    /// Nothing: retrying cannot mend it.
    GiveUp,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl Worker {
    /// A worker with its own consumer name, delivering from `outbox` through `senders`.
    pub fn new(
        outbox: Outbox,
        otp: OtpScheme,
        integrations: Integrations,
        senders: Senders,
        config: DeliveryConfig,
    ) -> Self {
        Self {
            outbox,
            otp,
            integrations,
            senders,
            config,
            consumer: format!("worker-{}", uuid::Uuid::new_v4().simple()),
            funnel: Funnel::new(ONE_TIME_PASSWORD),
        }
    }

    /// Reports deliveries to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.funnel = self.funnel.observed_by(observer);
        self
    }

    /// Runs until `stop` turns true or its sender is dropped, then waits for the
    /// deliveries under way (the caller bounds how long by dropping the future).
    ///
    /// Once stopped it starts nothing new: entries of the current batch that have
    /// not started stay pending in the outbox, unacknowledged, and another worker
    /// (or this replica's next one) claims them once they have been idle for
    /// `claim_after`. A delivery cut short the same way is made again; none is lost.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let me = Arc::new(self);
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let mut last_claim = Instant::now();
        let mut empty_polls = 0u32;
        loop {
            // Stopped, or whoever could stop it is gone (a gateway task aborted
            // rather than shut down): either way there is nobody to work for.
            if *stop.borrow() || stop.has_changed().is_err() {
                break;
            }
            let claiming = last_claim.elapsed() >= me.config.claim_after / 3;
            if claiming {
                last_claim = Instant::now();
            }
            let claim = claiming.then_some((me.config.claim_after, CLAIM));
            // A wake from before this look is answered by it: forget it, so that
            // it does not cut the next idle wait short.
            let _ = me.outbox.woken().now_or_never();
            let entries = match me.outbox.take(&me.consumer, BATCH, claim).await {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox unreachable; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {},
                        _ = stop.changed() => {},
                    }
                    continue;
                }
            };
            // Idle: wait, longer after each empty look in a row, until this
            // replica accepts a code request. A part batch: wait a little, so
            // that under load batches fill up and the per-batch round trips are
            // shared by more entries. A full batch: go on at once.
            let idle = entries.is_empty();
            empty_polls = if idle {
                empty_polls.saturating_add(1)
            } else {
                0
            };
            let pause = match entries.len() {
                0 => Some(idle_wait(
                    empty_polls,
                    me.config.poll,
                    me.config.idle_poll_max,
                )),
                n if n < BATCH => Some(LINGER),
                _ => None,
            };
            if !idle {
                me.dispatch(entries, &slots, &stop).await;
            }
            if let Some(pause) = pause {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {},
                    _ = stop.changed() => {},
                    // Not a linger's: under load every request wakes the worker,
                    // and batches would no longer fill.
                    _ = me.outbox.woken(), if idle => {},
                }
            }
        }
        // Every delivery under way holds a slot until it has been settled.
        let _ = slots.acquire_many(CONCURRENCY as u32).await;
        tracing::debug!(consumer = %me.consumer, "delivery worker stopped");
    }

    /// Sorts out a batch of entries: code requests get their recipients resolved
    /// together (a few store round trips per batch, not per entry); those with
    /// none, and leftovers of earlier versions, are acknowledged together; each
    /// delivery runs in its own task, within the worker's concurrency.
    async fn dispatch(
        self: &Arc<Self>,
        entries: Vec<Taken>,
        slots: &Arc<Semaphore>,
        stop: &watch::Receiver<bool>,
    ) {
        let mut requests = Vec::new();
        let mut found = Vec::new();
        let mut work: Vec<(EntryId, Work)> = Vec::new();
        let mut settled = Vec::new();
        for (id, raw) in entries {
            match Entry::parse(&raw) {
                Entry::Request(entry) => {
                    found.push(entry.request());
                    requests.push((id, entry));
                }
                Entry::Retry(entry) => work.push((id, Work::Retry(Box::new(entry)))),
                // Left by an earlier version of the gateway: nothing to send.
                Entry::Leftover => settled.push(id),
                Entry::Malformed => {
                    tracing::error!(%id, "malformed outbox entry dropped");
                    settled.push(id);
                }
            }
        }
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
        if let Err(e) = self.outbox.ack(settled).await {
            tracing::warn!(error = %e, "could not acknowledge outbox entries; they will be claimed again");
        }
        let mut left = work.len();
        for (id, job) in work {
            let permit = if *stop.borrow() {
                None
            } else {
                slots.clone().acquire_owned().await.ok()
            };
            // Stopping: the rest stay pending, for a worker to claim later.
            let Some(permit) = permit.filter(|_| !*stop.borrow()) else {
                tracing::info!(
                    left,
                    "stopping: deliveries not started stay pending in the outbox"
                );
                break;
            };
            left -= 1;
            let me = self.clone();
            tokio::spawn(async move {
                let outcome = match job {
                    Work::FanOut(job) => {
                        let (entry, issued) = *job;
                        me.fan_out(&entry, issued).await
                    }
                    Work::Retry(entry) => me.retry(*entry).await,
                };
                let outcome = match outcome {
                    Ok(()) => me.outbox.ack(vec![id.clone()]).await,
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
            .map_err(unavailable)?;
        if targets.is_empty() {
            tracing::warn!("a one-time password token was issued but no enabled integration observes {OTP_REQUEST_CREATED}");
            return Ok(());
        }
        let payload = Payload::new(self.outbox.store_id(), &issued, &entry.created_at);
        let tries = targets.into_iter().map(|integration| {
            let delivery = DeliveryEntry {
                event_id: entry.event_id.clone(),
                integration_id: integration.id.clone(),
                attempt: 1,
                accepted_ms: entry.accepted_ms,
                payload: payload.clone(),
            };
            self.attempt(delivery, Some(integration))
        });
        futures::future::join_all(tries).await.into_iter().collect()
    }

    /// A delivery that failed before and is due again, unless its code is no
    /// longer live (used, replaced, burnt or expired): then it is not worth sending.
    async fn retry(&self, entry: DeliveryEntry) -> Result<(), StoreError> {
        let p = &entry.payload;
        let live = self
            .otp
            .is_live(
                &p.password_profile_id,
                &p.user_authentication_password_profile_info.username,
                &p.one_time_password_token,
            )
            .await
            .map_err(unavailable)?;
        if !live {
            tracing::info!(event = %entry.event_id, integration = %entry.integration_id, "the code is no longer live; delivery not retried");
            return Ok(());
        }
        self.attempt(entry, None).await
    }

    /// One try of one delivery, then what follows from it: nothing more, or a
    /// retry on the schedule. Fails only when the retry could not be scheduled.
    async fn attempt(
        &self,
        mut entry: DeliveryEntry,
        integration: Option<Integration>,
    ) -> Result<(), StoreError> {
        let attempt = entry.attempt;
        let next = self.deliver(&entry, integration).await;
        let expired = now_ms() - entry.accepted_ms > self.config.give_up_after.as_millis() as i64;
        let (event, integration) = (&entry.event_id, &entry.integration_id);
        match next {
            Next::Done => Ok(()),
            Next::GiveUp => {
                tracing::error!(%event, %integration, attempt, "delivery failed for good; not retried");
                Ok(())
            }
            Next::Retry if expired => {
                tracing::error!(%event, %integration, attempt, "delivery abandoned: the code has expired");
                Ok(())
            }
            Next::Retry if attempt < self.config.max_attempts => {
                let due = now_ms() + self.backoff(attempt).as_millis() as i64;
                entry.attempt = attempt + 1;
                // Scheduled before the entry that asked for it is acknowledged: a
                // crash in between repeats a delivery rather than losing one.
                self.outbox.schedule(&entry, due).await
            }
            Next::Retry => {
                tracing::error!(%event, %integration, attempt, "delivery abandoned after the last attempt");
                Ok(())
            }
        }
    }

    /// Tries `entry` once and logs the try; `integration` when already read.
    async fn deliver(&self, entry: &DeliveryEntry, integration: Option<Integration>) -> Next {
        let found = match integration {
            Some(i) => Ok(i),
            None => self.integrations.get(&entry.integration_id).await,
        };
        let integration = match found {
            Ok(i) if i.enabled => i,
            Ok(_) | Err(DirectoryError::NotFound(_)) => {
                tracing::info!(
                    integration = %entry.integration_id,
                    "integration gone or disabled; event dropped"
                );
                return Next::Done;
            }
            Err(e) => {
                tracing::warn!(error = %e, "integration unreadable; will retry");
                return Next::Retry;
            }
        };
        let attempt = entry.attempt;
        let started = Instant::now();
        let Attempt {
            status_code,
            body,
            failure,
        } = self.send(entry, &integration).await;
        let log = DeliveryLog {
            id: uuid::Uuid::new_v4().to_string(),
            integration_id: integration.id.clone(),
            event_id: entry.event_id.clone(),
            succeeded: failure.is_none(),
            attempt,
            status_code,
            body,
            processing_time: started.elapsed().as_secs_f64(),
            error_detail: failure
                .as_ref()
                .map(|f| f.detail().to_owned())
                .unwrap_or_default(),
            created_at: rfc3339(OffsetDateTime::now_utc()),
        };
        if let Err(e) = self.integrations.log(&log).await {
            tracing::warn!(error = %e, "could not write a delivery log");
        }
        match failure {
            None => {
                self.funnel.saw(Stage::Delivered);
                tracing::debug!(
                    latency_ms = now_ms() - entry.accepted_ms,
                    attempt,
                    "event delivered"
                );
                Next::Done
            }
            Some(Failure::Permanent(detail)) => {
                tracing::warn!(integration = %integration.id, attempt, status = ?status_code, "delivery failed for good: {detail}");
                Next::GiveUp
            }
            Some(Failure::Transient(detail)) => {
                tracing::info!(integration = %integration.id, attempt, status = ?status_code, "delivery failed: {detail}");
                Next::Retry
            }
        }
    }

    /// One try by the integration's way: a webhook POST or an email.
    async fn send(&self, entry: &DeliveryEntry, integration: &Integration) -> Attempt {
        match integration.integration_type {
            IntegrationType::Webhook => {
                let secret_key = self.integrations.secret_key(integration);
                let event = Event::new(entry, self.outbox.store_id(), integration, secret_key);
                self.senders.webhook.post(&event).await
            }
            IntegrationType::Email => {
                // The code's lifetime, as the message states it.
                let minutes = (self.config.give_up_after.as_secs() / 60).max(1);
                self.senders
                    .mailer
                    .send(&entry.payload, &EmailSettings::from(integration), minutes)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_worker_waits_twice_as_long_after_each_empty_look_up_to_the_cap() {
        let ms = Duration::from_millis;
        let waits: Vec<u128> = (1..=7)
            .map(|n| idle_wait(n, ms(50), ms(1000)).as_millis())
            .collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(idle_wait(u32::MAX, ms(50), ms(1000)), ms(1000));
        assert_eq!(
            idle_wait(3, ms(50), ms(10)),
            ms(50),
            "a cap below the poll interval does not shorten it"
        );
    }
}
