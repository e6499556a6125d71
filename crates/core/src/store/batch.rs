//! Typed batches: operations queued for one round trip, each handing back a
//! [`Handle`] to its own typed result.
//!
//! A caller queues what it needs (`let key = batch.take(k); let user =
//! directory.user_in(&mut batch, id);`), runs the batch once
//! ([`super::StoreExt::run`]: one pipeline on Redis, one lock on the memory
//! store), then reads each handle (`key.get()?`). Nobody outside the store decodes
//! replies by position: each queued operation carries its own decoder, so a
//! missing or misshapen reply is that operation's [`StoreError`], named, not a
//! neighbour's value read by mistake.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{CodeCheck, GuessLimit, Op, Reply, Rotation, StoreError};

type Sink = Box<dyn FnOnce(Result<Reply, StoreError>) + Send>;

/// Operations to run in one round trip.
#[derive(Default)]
pub struct Batch {
    ops: Vec<Op>,
    sinks: Vec<Sink>,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch").field("ops", &self.ops).finish()
    }
}

/// The result of one queued operation, once its batch has run.
#[must_use = "a queued operation's result says whether it worked"]
pub struct Handle<T> {
    slot: Arc<Mutex<Option<Result<T, StoreError>>>>,
}

impl<T> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Handle(..)")
    }
}

impl<T> Handle<T> {
    /// A handle that already holds its result (for an operation that needed no
    /// round trip, such as a read answered from a replica's memory).
    pub fn ready(value: T) -> Self {
        Self {
            slot: Arc::new(Mutex::new(Some(Ok(value)))),
        }
    }

    /// The result; an error when the batch failed or never ran.
    pub fn get(self) -> Result<T, StoreError> {
        self.slot
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .unwrap_or_else(|| Err(StoreError::Protocol("a batch was not run".into())))
    }

    /// A handle to `f` of this one's result.
    pub fn map<U>(self, f: impl FnOnce(T) -> U + Send + 'static) -> Mapped<T, U> {
        Mapped {
            inner: self,
            f: Box::new(f),
        }
    }
}

/// A [`Handle`] whose result is transformed when read.
pub struct Mapped<T, U> {
    inner: Handle<T>,
    f: Box<dyn FnOnce(T) -> U + Send>,
}

impl<T, U> fmt::Debug for Mapped<T, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mapped(..)")
    }
}

impl<T, U> Mapped<T, U> {
    /// The transformed result.
    pub fn get(self) -> Result<U, StoreError> {
        self.inner.get().map(self.f)
    }
}

/// A window counter after an event: how many so far, and when the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Events counted in the current window (this one included, when counting).
    pub count: u64,
    /// Time until the window ends.
    pub reset: Duration,
}

/// A write guarded by a counter ([`Batch::put_under_limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// The counter after this event.
    pub count: Count,
    /// Whether the count was within the limit, so the value was written.
    pub written: bool,
}

/// One stream entry: its id and its bytes.
pub type Entry = (String, Vec<u8>);

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Queues `op`, whose reply `decode` turns into the handle's result. Only the
    /// store's own modules name operations; everyone else calls the typed
    /// methods below or those of the core's services.
    pub(crate) fn push<T: Send + 'static>(
        &mut self,
        op: Op,
        decode: impl FnOnce(Reply) -> Result<T, StoreError> + Send + 'static,
    ) -> Handle<T> {
        let slot = Arc::new(Mutex::new(None));
        let sink = slot.clone();
        self.ops.push(op);
        self.sinks.push(Box::new(move |reply| {
            if let Ok(mut s) = sink.lock() {
                *s = Some(reply.and_then(decode));
            }
        }));
        Handle { slot }
    }

    /// Queues `op` for its effect alone.
    fn effect(&mut self, op: Op) -> Handle<()> {
        self.push(op, |_| Ok(()))
    }

    /// The queued operations, and what to do with their replies (for the store).
    pub(crate) fn into_parts(self) -> (Vec<Op>, Vec<Sink>) {
        (self.ops, self.sinks)
    }

    /// Hands each reply to its operation's handle; a short answer or a failed
    /// batch fails every handle left.
    pub(crate) fn settle(sinks: Vec<Sink>, replies: Result<Vec<Reply>, &StoreError>) {
        let mut replies = match replies {
            Ok(r) => r.into_iter(),
            Err(e) => {
                for sink in sinks {
                    sink(Err(e.clone()));
                }
                return;
            }
        };
        for sink in sinks {
            sink(
                replies
                    .next()
                    .ok_or_else(|| StoreError::Protocol("a reply is missing".into())),
            );
        }
    }

    // ---- values ----

    /// A value, or `None` when absent.
    pub fn get(&mut self, key: String) -> Handle<Option<Vec<u8>>> {
        self.push(Op::Get(key), Reply::into_value)
    }

    /// Writes a value, replacing any earlier one, with an optional lifetime.
    pub fn put(&mut self, key: String, value: Vec<u8>, ttl: Option<Duration>) -> Handle<()> {
        self.effect(Op::Set { key, value, ttl })
    }

    /// Writes a value only if the key is absent; whether it was written.
    pub fn put_if_absent(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Handle<bool> {
        self.push(Op::SetIfAbsent { key, value, ttl }, Reply::into_flag)
    }

    /// Reads and deletes a value in one step: single use.
    pub fn take(&mut self, key: String) -> Handle<Option<Vec<u8>>> {
        self.push(Op::Take(key), Reply::into_value)
    }

    /// Deletes keys; how many existed.
    pub fn delete(&mut self, keys: Vec<String>) -> Handle<u64> {
        self.push(Op::Delete(keys), |r| {
            r.into_int().map(|n| u64::try_from(n).unwrap_or(0))
        })
    }

    /// Waits (bounded) until the writes queued before it on `key`'s slot reach
    /// the replicas the store waits for; how many acknowledged.
    pub fn replicate(&mut self, key: String) -> Handle<u64> {
        self.push(Op::Replicate { key }, |r| {
            r.into_int().map(|n| u64::try_from(n).unwrap_or(0))
        })
    }

    // ---- counters ----

    /// Counts one event in a window that starts with the first event.
    pub fn count(&mut self, key: String, window: Duration) -> Handle<Count> {
        self.push(Op::Hit { key, window }, counter)
    }

    /// Counts one event unless `member` was already counted in this window.
    pub fn count_unless_seen(
        &mut self,
        key: String,
        seen: String,
        member: String,
        window: Duration,
    ) -> Handle<Count> {
        self.push(
            Op::HitUnlessSeen {
                key,
                seen,
                member,
                window,
            },
            counter,
        )
    }

    /// Reads a counter without counting (zero when absent).
    pub fn peek_count(&mut self, key: String) -> Handle<Count> {
        self.push(Op::Peek(key), counter)
    }

    /// Counts one event and, only while the count is within `limit` (0: no
    /// limit, nothing counted), writes `key`: a new secret replaces the old one
    /// and counts towards its limit in one step.
    pub fn put_under_limit(
        &mut self,
        counter: String,
        window: Duration,
        limit: u64,
        key: String,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Handle<Limited> {
        self.push(
            Op::SetUnderLimit {
                counter,
                window,
                limit,
                key,
                value,
                ttl,
            },
            |r| match r {
                Reply::Counted {
                    count,
                    reset,
                    written,
                } => Ok(Limited {
                    count: Count { count, reset },
                    written,
                }),
                other => Err(StoreError::Protocol(format!(
                    "wanted a counted write, got {other:?}"
                ))),
            },
        )
    }

    /// Checks a one-time code's digest (see [`Op::CheckCode`]).
    pub fn check_code(&mut self, key: String, digest: String, max_tries: u64) -> Handle<CodeCheck> {
        self.push(
            Op::CheckCode {
                key,
                digest,
                max_tries,
            },
            |r| match r {
                Reply::Code(c) => Ok(c),
                other => Err(StoreError::Protocol(format!(
                    "wanted a code check, got {other:?}"
                ))),
            },
        )
    }

    /// Checks a one-time code's digest under a guess limit (see [`Op::CheckCodeGuarded`]).
    pub fn check_code_guarded(
        &mut self,
        key: String,
        digest: String,
        max_tries: u64,
        guard: GuessLimit,
    ) -> Handle<CodeCheck> {
        self.push(
            Op::CheckCodeGuarded {
                key,
                digest,
                max_tries,
                guard,
            },
            |r| match r {
                Reply::Code(c) => Ok(c),
                other => Err(StoreError::Protocol(format!(
                    "wanted a code check, got {other:?}"
                ))),
            },
        )
    }

    // ---- maps and sets ----

    /// One field of a map.
    pub fn map_get(&mut self, key: String, field: String) -> Handle<Option<Vec<u8>>> {
        self.push(Op::MapGet(key, field), Reply::into_value)
    }

    /// Writes one field only if absent; whether it was written.
    pub fn map_put_if_absent(
        &mut self,
        key: String,
        field: String,
        value: Vec<u8>,
    ) -> Handle<bool> {
        self.push(Op::MapSetIfAbsent(key, field, value), Reply::into_flag)
    }

    // ---- streams (the outbox) ----

    /// Appends `entry` to `stream` when `field` is present in the map `index`, a
    /// same-length `decoy` to `decoys` otherwise (see [`Op::StreamAddIfPresent`]).
    pub fn stream_add_if_present(
        &mut self,
        index: (String, String),
        stream: String,
        entry: Vec<u8>,
        decoys: String,
        decoy: Vec<u8>,
    ) -> Handle<()> {
        let (index, field) = index;
        self.effect(Op::StreamAddIfPresent {
            index,
            field,
            stream,
            entry,
            decoys,
            decoy,
        })
    }

    /// Up to `count` new entries for `consumer` of `group` (see [`Op::StreamRead`]).
    pub fn stream_read(
        &mut self,
        stream: String,
        group: String,
        consumer: String,
        count: usize,
    ) -> Handle<Vec<Entry>> {
        self.push(
            Op::StreamRead {
                stream,
                group,
                consumer,
                count,
            },
            Reply::into_entries,
        )
    }

    /// Takes over entries pending for longer than `min_idle` (see [`Op::StreamClaim`]).
    pub fn stream_claim(
        &mut self,
        stream: String,
        group: String,
        consumer: String,
        min_idle: Duration,
        count: usize,
    ) -> Handle<Vec<Entry>> {
        self.push(
            Op::StreamClaim {
                stream,
                group,
                consumer,
                min_idle,
                count,
            },
            Reply::into_entries,
        )
    }

    /// Acknowledges and deletes entries.
    pub fn stream_ack(&mut self, stream: String, group: String, ids: Vec<String>) -> Handle<()> {
        self.effect(Op::StreamAck { stream, group, ids })
    }

    /// Schedules `entry` for its stream at `due_ms` (Unix milliseconds).
    pub fn schedule(&mut self, schedule: String, due_ms: i64, entry: Vec<u8>) -> Handle<()> {
        self.effect(Op::Schedule {
            schedule,
            due_ms,
            entry,
        })
    }

    /// Moves up to `max` due entries from a schedule to its stream; how many moved.
    pub fn release(
        &mut self,
        schedule: String,
        stream: String,
        now_ms: i64,
        max: usize,
    ) -> Handle<u64> {
        self.push(
            Op::Release {
                schedule,
                stream,
                now_ms,
                max,
            },
            |r| r.into_int().map(|n| u64::try_from(n).unwrap_or(0)),
        )
    }

    /// Whether a refresh secret was rotated (for the token service).
    pub(crate) fn rotate_refresh(
        &mut self,
        key: String,
        presented: String,
        fields: Vec<(String, Vec<u8>)>,
        ttl: Duration,
    ) -> Handle<Rotation> {
        self.push(
            Op::RotateRefresh {
                key,
                presented,
                fields,
                ttl,
            },
            |r| match r {
                Reply::Rotated(r) => Ok(r),
                other => Err(StoreError::Protocol(format!(
                    "wanted a rotation, got {other:?}"
                ))),
            },
        )
    }
}

fn counter(r: Reply) -> Result<Count, StoreError> {
    r.into_counter()
        .map(|(count, reset)| Count { count, reset })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn each_handle_gets_its_own_reply_and_a_short_answer_fails_the_rest() {
        let mut b = Batch::new();
        let a = b.get("a".into());
        let n = b.delete(vec!["x".into()]);
        let c = b.get("c".into());
        let (ops, sinks) = b.into_parts();
        assert_eq!(ops.len(), 3);
        Batch::settle(
            sinks,
            Ok(vec![Reply::Value(Some(b"1".to_vec())), Reply::Int(2)]),
        );
        assert_eq!(a.get().unwrap(), Some(b"1".to_vec()));
        assert_eq!(n.get().unwrap(), 2);
        assert!(matches!(c.get(), Err(StoreError::Protocol(_))));
    }

    #[test]
    fn a_reply_of_the_wrong_shape_is_that_operations_error() {
        let mut b = Batch::new();
        let flag = b.put_if_absent("k".into(), vec![], None);
        let value = b.get("v".into());
        let (_, sinks) = b.into_parts();
        Batch::settle(sinks, Ok(vec![Reply::Done, Reply::Value(None)]));
        assert!(flag.get().is_err());
        assert_eq!(value.get().unwrap(), None);
    }

    #[test]
    fn a_failed_batch_fails_every_handle_and_an_unrun_one_says_so() {
        let mut b = Batch::new();
        let a = b.get("a".into());
        let (_, sinks) = b.into_parts();
        Batch::settle(sinks, Err(&StoreError::Unavailable("down".into())));
        assert!(matches!(a.get(), Err(StoreError::Unavailable(_))));
        let mut unrun = Batch::new();
        assert!(unrun.get("x".into()).get().is_err());
        assert_eq!(Handle::ready(5).map(|n| n * 2).get().unwrap(), 10);
    }
}
