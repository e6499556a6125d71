//! The outbox: a stream of entries in the store, shared by all replicas, with a
//! schedule of retries beside it; the entries as stored; and every store operation
//! on them, here and nowhere else.
//!
//! Two kinds of entry live in the stream, both JSON, and their form is shared by
//! every replica of every version running at once (a rolling upgrade has old and
//! new side by side), so it does not change with the code:
//!
//! - a [`RequestEntry`]: a code request the API accepted, before anyone knows who
//!   (if anyone) gets the code;
//! - a [`DeliveryEntry`]: one event for one integration whose earlier try failed,
//!   back from the schedule when due.
//!
//! Earlier versions also left `{"decoy": true}` entries, which are acknowledged
//! and otherwise ignored.
//!
//! The outbox is spread over the store's shards (see
//! [`authgate_core::directory::layout`]): each shard has its stream, its decoys
//! and its schedule, under the shard's tag. A code request goes to the shard of
//! the directory's index entry for its username, so that the one op that looks
//! the username up and appends the request, or a decoy, stays in one slot. A
//! worker reads every shard in one batch, and each entry it takes carries its
//! shard ([`EntryId`]) so that it is acknowledged where it lies.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use authgate_core::directory::layout::{OUTBOX_DECOYS, OUTBOX_SCHEDULE, OUTBOX_STREAM};
use authgate_core::ids::{ProfileId, RealmId};
use authgate_core::store::{Batch, Handle, Keys, Store, StoreError, StoreExt, SHARDS};
use authgate_otp::{CodeRequest, OneTimeCode, Purpose};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use crate::event::{code, purpose, Payload};

/// The consumer group all replicas' workers share (on every shard's stream).
const GROUP: &str = "delivery";
/// The most due retries moved back to a shard's stream per read.
const RELEASE_MAX: usize = 100;

/// Where an entry taken from the outbox lies: its shard, and its id in that
/// shard's stream (ids of different shards may be alike).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId {
    /// The shard.
    pub shard: usize,
    /// The id in the shard's stream.
    pub id: String,
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.shard, self.id)
    }
}

/// An entry taken from the outbox: where it lies, and its stored bytes.
pub type Taken = (EntryId, Vec<u8>);

/// The outbox: where accepted events wait for delivery.
///
/// Clones share one wake signal: [`Outbox::wake`] on the request path ends the
/// idle wait of this replica's worker ([`Outbox::woken`]), so an idle worker can
/// poll seldom and still deliver at once. Other replicas' workers are not woken;
/// they find the entry at their next poll.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn Store>,
    keys: Keys,
    store_id: RealmId,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox(..)")
    }
}

/// The `kind` of an entry holding an accepted code request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// The only kind there is.
    #[serde(rename = "one-time-password-token-request")]
    CodeRequest,
}

/// An accepted code request, as [`Outbox::request_in`] writes it to the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEntry {
    /// What the entry is.
    pub kind: Kind,
    /// The event's id (a UUID).
    pub event_id: String,
    /// When the request was accepted (Unix milliseconds).
    pub accepted_ms: i64,
    /// The same instant, RFC 3339, as the payload shows it.
    pub created_at: String,
    /// The password profile.
    pub password_profile_id: ProfileId,
    /// The username, canonical.
    pub username: String,
    /// What the code is for.
    #[serde(with = "purpose")]
    pub purpose: Purpose,
    /// The code, in clear.
    #[serde(with = "code")]
    pub one_time_password_token: OneTimeCode,
}

impl RequestEntry {
    /// The code request it holds.
    pub fn request(&self) -> CodeRequest {
        CodeRequest {
            code: self.one_time_password_token.clone(),
            purpose: self.purpose,
            profile_id: self.password_profile_id.clone(),
            username: self.username.clone(),
        }
    }
}

/// One event for one integration, between tries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryEntry {
    /// The event's id.
    pub event_id: String,
    /// The integration it goes to.
    pub integration_id: String,
    /// The try about to be made, from 1.
    pub attempt: u32,
    /// When the request was accepted (Unix milliseconds).
    pub accepted_ms: i64,
    /// The event's payload.
    pub payload: Payload,
}

/// An entry read from the stream.
#[derive(Debug)]
pub enum Entry {
    /// An accepted code request: its recipient is yet to be found.
    Request(RequestEntry),
    /// A delivery due again.
    Retry(DeliveryEntry),
    /// Left by an earlier version, with nothing to send.
    Leftover,
    /// Not an entry this or an earlier version writes.
    Malformed,
}

/// An earlier version's decoy.
#[derive(Deserialize)]
struct Decoy {
    decoy: bool,
}

impl Entry {
    /// Reads a stored entry.
    pub fn parse(raw: &[u8]) -> Self {
        if let Ok(entry) = serde_json::from_slice::<RequestEntry>(raw) {
            return Self::Request(entry);
        }
        if let Ok(entry) = serde_json::from_slice::<DeliveryEntry>(raw) {
            return Self::Retry(entry);
        }
        match serde_json::from_slice::<Decoy>(raw) {
            Ok(Decoy { decoy: true }) => Self::Leftover,
            _ => Self::Malformed,
        }
    }
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Outbox {
    /// The outbox in `store` under `keys`; `store_id` names this deployment in event bodies.
    pub fn new(store: Arc<dyn Store>, keys: Keys, store_id: RealmId) -> Self {
        Self {
            store,
            keys,
            store_id,
            wake: Arc::default(),
        }
    }

    /// Tells this replica's worker that an entry may be waiting, once the
    /// batch of [`Outbox::request_in`] has run. Call it for every code request
    /// that ran one, known username or not, so that a wake says nothing the
    /// decoy does not. Wakes while the worker is busy coalesce into one.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Completes at the next [`Outbox::wake`] of this outbox or a clone, or at
    /// once if one came since the last was seen.
    pub fn woken(&self) -> Notified<'_> {
        self.wake.notified()
    }

    /// This deployment's name in event bodies (the realm's id).
    pub fn store_id(&self) -> &RealmId {
        &self.store_id
    }

    /// Queues the outbox entry of an accepted code request on `batch`: appended
    /// to the outbox when the username is in the directory's index `(map,
    /// field)`, and otherwise a decoy of the same length (no code in it) to a
    /// stream kept at one entry. The same write is queued for every request, in
    /// the same round trip as the code, and the store does the same work either
    /// way; the worker checks the rest (a live code, an enabled user and
    /// profile) before sending anything.
    ///
    /// The stream and the decoys are those of the shard of `field`, where the
    /// directory keeps the index entry (`Directory::name_index`): the op's three
    /// keys share one slot.
    pub fn request_in(
        &self,
        batch: &mut Batch,
        request: &CodeRequest,
        index: (String, String),
    ) -> Handle<()> {
        let entry = self.request_entry(request);
        let decoy = vec![b'-'; entry.len()];
        let (stream, decoys) = self.request_keys(&index.1);
        let written = batch.stream_add_if_present(index, stream.clone(), entry, decoys, decoy);
        // An accepted code's delivery must survive a failover of its primary:
        // the answer waits (bounded) until a replica has the entry too, when
        // the store is set to wait for replicas. Known and unknown names alike.
        let _replicated = batch.replicate(stream);
        written
    }

    /// The stream and the decoys a code request whose index field is `field` goes to.
    fn request_keys(&self, field: &str) -> (String, String) {
        let shard = self.keys.shard_of(field);
        (
            self.keys.in_shard(shard, OUTBOX_STREAM),
            self.keys.in_shard(shard, OUTBOX_DECOYS),
        )
    }

    /// The stored form of an accepted code request.
    fn request_entry(&self, request: &CodeRequest) -> Vec<u8> {
        let now = OffsetDateTime::now_utc();
        let entry = RequestEntry {
            kind: Kind::CodeRequest,
            // Not a secret: the thread's generator spares a system call per request.
            event_id: uuid::Builder::from_random_bytes(rand::random())
                .into_uuid()
                .to_string(),
            accepted_ms: (now.unix_timestamp_nanos() / 1_000_000) as i64,
            created_at: crate::worker::rfc3339(now),
            password_profile_id: request.profile_id.clone(),
            username: request.username.clone(),
            purpose: request.purpose,
            one_time_password_token: request.code.clone(),
        };
        // Strings, an integer and unit variants: serializing cannot fail.
        serde_json::to_vec(&entry).unwrap_or_default()
    }

    /// In one round trip, on every shard: moves due retries back to the
    /// shard's stream, takes new entries for `consumer`, and, with `claim` set,
    /// takes over entries pending for longer than `claim.0` (a dead replica's).
    /// `count` and `claim.1` bound the entries taken from all shards together
    /// (each shard gives at most its even share, rounded up).
    pub async fn take(
        &self,
        consumer: &str,
        count: usize,
        claim: Option<(Duration, usize)>,
    ) -> Result<Vec<Taken>, StoreError> {
        let share = |n: usize| n.div_ceil(SHARDS).max(1);
        let mut batch = Batch::new();
        let mut handles = Vec::with_capacity(SHARDS);
        for shard in 0..SHARDS {
            let stream = self.keys.in_shard(shard, OUTBOX_STREAM);
            let _released = batch.release(
                self.keys.in_shard(shard, OUTBOX_SCHEDULE),
                stream.clone(),
                now_ms(),
                RELEASE_MAX,
            );
            let new = batch.stream_read(
                stream.clone(),
                GROUP.into(),
                consumer.to_owned(),
                share(count),
            );
            let claimed = claim.map(|(min_idle, count)| {
                batch.stream_claim(
                    stream,
                    GROUP.into(),
                    consumer.to_owned(),
                    min_idle,
                    share(count),
                )
            });
            handles.push((shard, new, claimed));
        }
        self.store.run(batch).await?;
        let mut entries = Vec::new();
        for (shard, new, claimed) in handles {
            let mut taken = new.get()?;
            if let Some(claimed) = claimed {
                taken.extend(claimed.get()?);
            }
            entries.extend(
                taken
                    .into_iter()
                    .map(|(id, raw)| (EntryId { shard, id }, raw)),
            );
        }
        Ok(entries)
    }

    /// Acknowledges (and deletes) entries, in one round trip (one op per shard).
    pub async fn ack(&self, ids: Vec<EntryId>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut by_shard: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for EntryId { shard, id } in ids {
            by_shard.entry(shard).or_default().push(id);
        }
        let mut batch = Batch::new();
        let acked: Vec<_> = by_shard
            .into_iter()
            .map(|(shard, ids)| {
                batch.stream_ack(self.keys.in_shard(shard, OUTBOX_STREAM), GROUP.into(), ids)
            })
            .collect();
        self.store.run(batch).await?;
        acked.into_iter().try_for_each(Handle::get)
    }

    /// Puts `entry` on the schedule of its event's shard, to return to that
    /// shard's stream at `due_ms`.
    pub async fn schedule(&self, entry: &DeliveryEntry, due_ms: i64) -> Result<(), StoreError> {
        let schedule = self.keys.sharded(OUTBOX_SCHEDULE, &entry.event_id);
        let entry = serde_json::to_vec(entry).map_err(|e| StoreError::Protocol(e.to_string()))?;
        let mut batch = Batch::new();
        let scheduled = batch.schedule(schedule.clone(), due_ms, entry);
        // The entry it retries is acknowledged next: the retry must be on a replica first.
        let _replicated = batch.replicate(schedule);
        self.store.run(batch).await?;
        scheduled.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::{id, payload, PROFILE, REALM};
    use authgate_core::store::{slot::slot, MemoryStore, Op, Reply};
    use serde_json::json;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;

    fn outbox() -> Result<Outbox, String> {
        Ok(Outbox::new(
            Arc::new(MemoryStore::new()),
            Keys::new("test:"),
            id(REALM)?,
        ))
    }

    /// The directory's index entry of `username` in the test profile (the
    /// directory keeps it in the shard of its field, in its map `names`).
    fn index(username: &str) -> (String, String) {
        let field = format!("{PROFILE}\u{0}{username}");
        (Keys::new("test:").sharded("names", &field), field)
    }

    /// A memory store that records the keys each batch names, read from the
    /// ops' debug form (every string starting with the prefix).
    #[derive(Default)]
    struct Recording {
        inner: MemoryStore,
        keys: Mutex<Vec<Vec<String>>>,
    }

    impl Store for Recording {
        fn exec<'a, 'b>(
            &'a self,
            ops: Vec<Op>,
        ) -> Pin<Box<dyn Future<Output = Result<Vec<Reply>, StoreError>> + Send + 'b>>
        where
            'a: 'b,
            Self: 'b,
        {
            let named = ops
                .iter()
                .flat_map(|op| {
                    format!("{op:?}")
                        .split('"')
                        .filter(|s| s.starts_with("test:"))
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect();
            if let Ok(mut keys) = self.keys.lock() {
                keys.push(named);
            }
            self.inner.exec(ops)
        }

        fn ping<'a, 'b>(
            &'a self,
        ) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'b>>
        where
            'a: 'b,
            Self: 'b,
        {
            self.inner.ping()
        }

        fn kind(&self) -> &'static str {
            "recording"
        }
    }

    fn request(username: &str) -> Result<CodeRequest, String> {
        Ok(CodeRequest {
            code: OneTimeCode::parse("ab12cd").map_err(|e| e.to_string())?,
            purpose: Purpose::ResetPassword,
            profile_id: id(PROFILE)?,
            username: username.into(),
        })
    }

    #[tokio::test]
    async fn known_and_unknown_usernames_touch_as_many_keys_of_one_slot() -> Result<(), String> {
        let store = Arc::new(Recording::default());
        let outbox = Outbox::new(store.clone(), Keys::new("test:"), id(REALM)?);
        let (map, field) = index("jo");
        let mut batch = Batch::new();
        let _indexed = batch.map_put_if_absent(map, field, b"c-1".to_vec());
        store.run(batch).await.map_err(|e| e.to_string())?;
        let mut touched = Vec::new();
        for username in ["jo", "nobody", "someone.else@example.com"] {
            if let Ok(mut keys) = store.keys.lock() {
                keys.clear();
            }
            let mut batch = Batch::new();
            let _queued = outbox.request_in(&mut batch, &request(username)?, index(username));
            store.run(batch).await.map_err(|e| e.to_string())?;
            let keys = store.keys.lock().map_err(|e| e.to_string())?.concat();
            let slots: std::collections::BTreeSet<u16> =
                keys.iter().map(|k| slot(k.as_bytes())).collect();
            assert_eq!(slots.len(), 1, "{username}: {keys:?}");
            touched.push(keys.len());
        }
        assert_eq!(
            touched,
            [4, 4, 4],
            "index, stream and decoys, then the wait for a replica on the stream's slot, known or not"
        );
        let taken = outbox
            .take("w1", 100, None)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(
            taken.len(),
            1,
            "only the known username's request is in a stream"
        );
        assert_eq!(
            taken[0].0.shard,
            Keys::new("test:").shard_of(&index("jo").1)
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_worker_takes_from_every_shard_and_acknowledges_each_where_it_lies(
    ) -> Result<(), String> {
        let outbox = outbox()?;
        let mut scheduled = std::collections::BTreeSet::new();
        for n in 0..48 {
            let entry = DeliveryEntry {
                event_id: format!("e-{n}"),
                integration_id: "int-1".into(),
                attempt: 2,
                accepted_ms: now_ms(),
                payload: payload(Purpose::ResetPassword, "Jo")?,
            };
            outbox
                .schedule(&entry, now_ms() - 1)
                .await
                .map_err(|e| e.to_string())?;
            scheduled.insert(entry.event_id);
        }
        let mut taken = Vec::new();
        let mut shards = std::collections::BTreeSet::new();
        while taken.len() < scheduled.len() {
            let more = outbox
                .take("w1", 16, None)
                .await
                .map_err(|e| e.to_string())?;
            assert!(
                !more.is_empty(),
                "{} of {} taken",
                taken.len(),
                scheduled.len()
            );
            assert!(more.len() <= SHARDS, "one entry a shard for a take of 16");
            shards.extend(more.iter().map(|(at, _)| at.shard));
            taken.extend(more);
        }
        assert!(shards.len() > SHARDS / 2, "spread over {shards:?}");
        let events: std::collections::BTreeSet<String> = taken
            .iter()
            .filter_map(|(_, raw)| match Entry::parse(raw) {
                Entry::Retry(e) => Some(e.event_id),
                _ => None,
            })
            .collect();
        assert_eq!(events, scheduled);
        // Ids alike in different shards (the memory store counts from 1 in
        // each): each acknowledgement goes to its own shard's stream.
        outbox
            .ack(taken.iter().map(|(at, _)| at.clone()).collect())
            .await
            .map_err(|e| e.to_string())?;
        let left = outbox
            .take("w2", 100, Some((Duration::ZERO, 100)))
            .await
            .map_err(|e| e.to_string())?;
        assert!(left.is_empty(), "nothing pending after the acks: {left:?}");
        Ok(())
    }

    #[test]
    fn a_code_request_is_stored_as_earlier_versions_store_it() -> Result<(), String> {
        // Written by the untyped version: field names and order, wire names.
        let old = r#"{"kind":"one-time-password-token-request","event_id":"e-1","accepted_ms":1693925581584,"created_at":"2023-09-05T14:53:01.584Z","password_profile_id":"0b7d6c5a-4e3f-4a2b-9c1d-0e9f8a7b6c5d","username":"jo@example.com","purpose":"reset_password","one_time_password_token":"ab12cd"}"#;
        let Entry::Request(entry) = Entry::parse(old.as_bytes()) else {
            return Err("not read as a code request".into());
        };
        assert_eq!(entry.purpose, Purpose::ResetPassword);
        assert_eq!(entry.password_profile_id.as_str(), PROFILE);
        assert_eq!(entry.one_time_password_token.as_str(), "ab12cd");
        assert_eq!(entry.request().username, "jo@example.com");
        let again = serde_json::to_string(&entry).map_err(|e| e.to_string())?;
        assert_eq!(again, old, "byte for byte, so old replicas read it too");
        Ok(())
    }

    #[test]
    fn a_retry_written_by_an_earlier_version_is_read_and_written_back_alike() -> Result<(), String>
    {
        let p = payload(Purpose::PasswordlessAuthentication, "Jo")?;
        // The untyped version wrote a `json!` with these five fields.
        let old = json!({"event_id": "e-1", "integration_id": "int-1", "attempt": 2,
            "accepted_ms": 1_693_925_581_584_i64, "payload": serde_json::to_value(&p).map_err(|e| e.to_string())?});
        let Entry::Retry(entry) = Entry::parse(old.to_string().as_bytes()) else {
            return Err("not read as a retry".into());
        };
        assert_eq!(entry.attempt, 2);
        assert_eq!(entry.payload, p);
        assert_eq!(
            serde_json::to_value(&entry).map_err(|e| e.to_string())?,
            old
        );
        Ok(())
    }

    #[test]
    fn decoys_of_earlier_versions_are_leftovers_and_garbage_is_malformed() {
        assert!(matches!(
            Entry::parse(br#"{"decoy":true}"#),
            Entry::Leftover
        ));
        assert!(matches!(Entry::parse(b"-----"), Entry::Malformed));
        assert!(matches!(
            Entry::parse(br#"{"kind":"order","event_id":"e"}"#),
            Entry::Malformed
        ));
    }

    #[tokio::test]
    async fn a_known_username_s_request_reaches_the_stream_and_is_taken_once() -> Result<(), String>
    {
        let outbox = outbox()?;
        let index = index("jo");
        let mut batch = Batch::new();
        let _indexed =
            batch.map_put_if_absent(index.0.clone(), index.1.clone(), b"user-1".to_vec());
        outbox.store.run(batch).await.map_err(|e| e.to_string())?;
        let mut batch = Batch::new();
        let _queued = outbox.request_in(&mut batch, &request("jo")?, index);
        outbox.store.run(batch).await.map_err(|e| e.to_string())?;
        let taken = outbox
            .take("w1", 10, None)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(taken.len(), 1);
        let Entry::Request(entry) = Entry::parse(&taken[0].1) else {
            return Err("not a code request".into());
        };
        assert_eq!(entry.one_time_password_token.as_str(), "ab12cd");
        assert!(outbox
            .take("w2", 10, None)
            .await
            .map_err(|e| e.to_string())?
            .is_empty());
        outbox
            .ack(vec![taken[0].0.clone()])
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    #[tokio::test]
    async fn a_due_retry_returns_to_the_stream() -> Result<(), String> {
        let outbox = outbox()?;
        let entry = DeliveryEntry {
            event_id: "e-1".into(),
            integration_id: "int-1".into(),
            attempt: 2,
            accepted_ms: now_ms(),
            payload: payload(Purpose::ResetPassword, "Jo")?,
        };
        outbox
            .schedule(&entry, now_ms() - 1)
            .await
            .map_err(|e| e.to_string())?;
        let taken = outbox
            .take("w1", 10, None)
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(taken.len(), 1);
        assert!(matches!(Entry::parse(&taken[0].1), Entry::Retry(e) if e == entry));
        Ok(())
    }
}
