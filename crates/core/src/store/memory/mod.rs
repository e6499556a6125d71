//! The embedded store: the same semantics as Redis, in one process, gone at exit.
//!
//! # Layout
//!
//! - this module: [`MemoryStore`], its entries with their expiry, and the ops on
//!   values, counters, lists, maps and sets (codes, sessions, rate limits);
//! - `stream`: streams with consumer groups and schedules released into them
//!   (the delivery outbox).

mod stream;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use self::stream::StreamData;
use crate::store::{trim_used, used_contains, CodeCheck, Op, Reply, Rotation, Store, StoreError};

#[derive(Debug, Clone)]
enum Value {
    Bytes(Vec<u8>),
    Map(HashMap<String, Vec<u8>>),
    Set(HashSet<String>),
    /// Members and the instant each one's lifetime ends ([`Op::IndexAdd`]).
    Index(HashMap<String, Instant>),
    Stream(StreamData),
    Schedule(Vec<(i64, Vec<u8>)>),
    List(VecDeque<Vec<u8>>),
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    expires: Option<Instant>,
}

/// An in-process store for trying the gateway and for unit tests.
///
/// A whole batch runs under one lock, so it is atomic here (Redis gives that per op).
/// Expired entries are dropped when touched and swept now and then.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    ops_since_sweep: u32,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Inner {
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        let expired =
            matches!(self.entries.get(key), Some(Entry { expires: Some(at), .. }) if *at <= now);
        if expired {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }

    fn sweep(&mut self, now: Instant) {
        self.ops_since_sweep += 1;
        if self.ops_since_sweep >= 1024 {
            self.ops_since_sweep = 0;
            self.entries
                .retain(|_, e| e.expires.is_none_or(|at| at > now));
        }
    }

    fn remaining(entry: &Entry, now: Instant) -> Duration {
        entry
            .expires
            .map(|at| at.saturating_duration_since(now))
            .unwrap_or(Duration::ZERO)
    }

    fn hit(&mut self, key: &str, window: Duration, now: Instant) -> (u64, Duration) {
        self.live(key, now);
        let entry = self.entries.entry(key.to_owned()).or_insert_with(|| Entry {
            value: Value::Bytes(b"0".to_vec()),
            expires: Some(now + window),
        });
        let count = match &entry.value {
            Value::Bytes(b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0),
            _ => 0,
        } + 1;
        entry.value = Value::Bytes(count.to_string().into_bytes());
        if entry.expires.is_none() {
            entry.expires = Some(now + window);
        }
        (count, Self::remaining(entry, now))
    }

    fn apply(&mut self, op: Op, now: Instant) -> Result<Reply, StoreError> {
        let expiry = |ttl: Option<Duration>| ttl.map(|t| now + t);
        Ok(match op {
            Op::Get(key) => Reply::Value(match self.live(&key, now) {
                Some(Entry {
                    value: Value::Bytes(b),
                    ..
                }) => Some(b.clone()),
                Some(_) => return Err(wrong_type(&key)),
                None => None,
            }),
            Op::Set { key, value, ttl } => {
                self.entries.insert(
                    key,
                    Entry {
                        value: Value::Bytes(value),
                        expires: expiry(ttl),
                    },
                );
                Reply::Done
            }
            Op::SetIfAbsent { key, value, ttl } => {
                if self.live(&key, now).is_some() {
                    Reply::Flag(false)
                } else {
                    self.entries.insert(
                        key,
                        Entry {
                            value: Value::Bytes(value),
                            expires: expiry(ttl),
                        },
                    );
                    Reply::Flag(true)
                }
            }
            Op::Take(key) => {
                self.live(&key, now);
                Reply::Value(match self.entries.remove(&key) {
                    Some(Entry {
                        value: Value::Bytes(b),
                        ..
                    }) => Some(b),
                    Some(other) => {
                        self.entries.insert(key.clone(), other);
                        return Err(wrong_type(&key));
                    }
                    None => None,
                })
            }
            Op::Delete(keys) => {
                let mut n = 0;
                for key in keys {
                    if self.live(&key, now).is_some() {
                        self.entries.remove(&key);
                        n += 1;
                    }
                }
                Reply::Int(n)
            }
            Op::TtlMillis(key) => Reply::Int(match self.live(&key, now) {
                None => -2,
                Some(Entry { expires: None, .. }) => -1,
                Some(e) => Self::remaining(e, now).as_millis() as i64,
            }),
            Op::Hit { key, window } => {
                let (count, reset) = self.hit(&key, window, now);
                Reply::Counter { count, reset }
            }
            Op::HitUnlessSeen {
                key,
                seen,
                member,
                window,
            } => {
                if self.set_contains(&seen, &member, now)? {
                    self.peek(&key, now)?
                } else {
                    self.set_insert(&seen, member, window, now)?;
                    let (count, reset) = self.hit(&key, window, now);
                    Reply::Counter { count, reset }
                }
            }
            Op::Peek(key) => match self.live(&key, now) {
                Some(e) => {
                    let count = match &e.value {
                        Value::Bytes(b) => std::str::from_utf8(b)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0),
                        _ => return Err(wrong_type(&key)),
                    };
                    Reply::Counter {
                        count,
                        reset: Self::remaining(e, now),
                    }
                }
                None => Reply::Counter {
                    count: 0,
                    reset: Duration::ZERO,
                },
            },
            Op::SetUnderLimit {
                counter,
                window,
                limit,
                key,
                value,
                ttl,
            } => {
                let (count, reset) = if limit == 0 {
                    (0, Duration::ZERO)
                } else {
                    self.hit(&counter, window, now)
                };
                let written = limit == 0 || count <= limit;
                if written {
                    self.entries.insert(
                        key,
                        Entry {
                            value: Value::Bytes(value),
                            expires: Some(now + ttl),
                        },
                    );
                }
                Reply::Counted {
                    count,
                    reset,
                    written,
                }
            }
            Op::CheckCode {
                key,
                digest,
                max_tries,
            } => {
                let stored = match self.live(&key, now) {
                    Some(Entry {
                        value: Value::Bytes(b),
                        ..
                    }) => b.clone(),
                    Some(_) => return Err(wrong_type(&key)),
                    None => return Ok(Reply::Code(CodeCheck::Missing)),
                };
                // The same layout as the Redis store's: the code's digest, then
                // "\n" and each wrong digest counted.
                let mut parts = stored.split(|b| *b == b'\n');
                let code = parts.next().unwrap_or_default();
                let digest = digest.into_bytes();
                if code == digest.as_slice() {
                    self.entries.remove(&key);
                    return Ok(Reply::Code(CodeCheck::Matched));
                }
                let mut tries = 0u64;
                for wrong in parts {
                    if wrong == digest.as_slice() {
                        return Ok(Reply::Code(CodeCheck::Wrong { burnt: false }));
                    }
                    tries += 1;
                }
                let burnt = tries + 1 >= max_tries;
                if burnt {
                    self.entries.remove(&key);
                } else if let Some(Entry {
                    value: Value::Bytes(b),
                    ..
                }) = self.entries.get_mut(&key)
                {
                    b.push(b'\n');
                    b.extend_from_slice(&digest);
                }
                Reply::Code(CodeCheck::Wrong { burnt })
            }
            Op::CheckCodeGuarded {
                key,
                digest,
                max_tries,
                guard,
            } => {
                if let Reply::Counter { count, reset } =
                    self.apply(Op::Peek(guard.guesses.clone()), now)?
                {
                    if count >= guard.limit {
                        return Ok(Reply::Code(CodeCheck::Throttled { retry_after: reset }));
                    }
                }
                let checked = self.apply(
                    Op::CheckCode {
                        key,
                        digest: digest.clone(),
                        max_tries,
                    },
                    now,
                )?;
                if matches!(checked, Reply::Code(CodeCheck::Wrong { .. })) {
                    self.apply(
                        Op::HitUnlessSeen {
                            key: guard.guesses,
                            seen: guard.seen,
                            member: digest,
                            window: guard.window,
                        },
                        now,
                    )?;
                }
                checked
            }
            op @ (Op::StreamAdd { .. }
            | Op::StreamAddIfPresent { .. }
            | Op::StreamRead { .. }
            | Op::StreamClaim { .. }
            | Op::StreamAck { .. }
            | Op::Schedule { .. }
            | Op::Release { .. }) => return self.apply_stream(op, now),
            Op::ListPush { key, value, keep } => {
                self.live(&key, now);
                let e = self.entries.entry(key.clone()).or_insert_with(|| Entry {
                    value: Value::List(VecDeque::new()),
                    expires: None,
                });
                match &mut e.value {
                    Value::List(items) => {
                        items.push_front(value);
                        items.truncate(keep.max(1));
                    }
                    _ => return Err(wrong_type(&key)),
                }
                Reply::Done
            }
            Op::ListRange { key, count } => Reply::Items(match self.live(&key, now) {
                Some(Entry {
                    value: Value::List(items),
                    ..
                }) => items.iter().take(count).cloned().collect(),
                Some(_) => return Err(wrong_type(&key)),
                None => Vec::new(),
            }),
            Op::MapGetAll(key) => Reply::Map(match self.live(&key, now) {
                Some(Entry {
                    value: Value::Map(m),
                    ..
                }) => m.clone(),
                Some(_) => return Err(wrong_type(&key)),
                None => HashMap::new(),
            }),
            Op::MapGet(key, field) => Reply::Value(match self.live(&key, now) {
                Some(Entry {
                    value: Value::Map(m),
                    ..
                }) => m.get(&field).cloned(),
                Some(_) => return Err(wrong_type(&key)),
                None => None,
            }),
            Op::MapSet { key, fields, ttl } => {
                let map = self.map_mut(&key, now)?;
                map.extend(fields);
                if let (Some(t), Some(e)) = (ttl, self.entries.get_mut(&key)) {
                    e.expires = Some(now + t);
                }
                Reply::Done
            }
            Op::MapSetIfAbsent(key, field, value) => {
                let map = self.map_mut(&key, now)?;
                match map.entry(field) {
                    std::collections::hash_map::Entry::Occupied(_) => Reply::Flag(false),
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(value);
                        Reply::Flag(true)
                    }
                }
            }
            Op::MapDelete(key, fields) => {
                let mut n = 0;
                if let Some(Entry {
                    value: Value::Map(m),
                    ..
                }) = self.live(&key, now)
                {
                    for f in fields {
                        n += i64::from(m.remove(&f).is_some());
                    }
                    if m.is_empty() {
                        self.entries.remove(&key);
                    }
                }
                Reply::Int(n)
            }
            Op::IndexAdd { key, member, ttl } => {
                self.live(&key, now);
                let entry = self.entries.entry(key.clone()).or_insert_with(|| Entry {
                    value: Value::Index(HashMap::new()),
                    expires: None,
                });
                let till = now + ttl;
                match &mut entry.value {
                    Value::Index(members) => {
                        members.retain(|_, end| *end > now);
                        members.insert(member, till);
                    }
                    _ => return Err(wrong_type(&key)),
                }
                if entry.expires.is_none_or(|e| e < till) {
                    entry.expires = Some(till);
                }
                Reply::Done
            }
            Op::IndexMembers(key) => Reply::Members(match self.live(&key, now) {
                Some(Entry {
                    value: Value::Index(members),
                    ..
                }) => members
                    .iter()
                    .filter(|(_, till)| **till > now)
                    .map(|(m, _)| m.clone())
                    .collect(),
                Some(_) => return Err(wrong_type(&key)),
                None => Vec::new(),
            }),
            // One process, no replicas: nothing to wait for.
            Op::Replicate { .. } => Reply::Int(0),
            Op::RotateRefresh {
                key,
                presented,
                fields,
                ttl,
            } => {
                let Some(Entry {
                    value: Value::Map(m),
                    expires,
                }) = self.live(&key, now)
                else {
                    return Ok(Reply::Rotated(Rotation::Unknown));
                };
                let current = m.get("r").cloned().unwrap_or_default();
                let used = m.get("used").cloned().unwrap_or_default();
                if current == presented.as_bytes() {
                    let mut used = used;
                    used.extend_from_slice(presented.as_bytes());
                    used.push(b',');
                    m.extend(fields);
                    m.insert("used".into(), trim_used(used));
                    *expires = Some(now + ttl);
                    Reply::Rotated(Rotation::Rotated)
                } else if used_contains(&used, &presented) {
                    self.entries.remove(&key);
                    Reply::Rotated(Rotation::Reused)
                } else {
                    Reply::Rotated(Rotation::Unknown)
                }
            }
        })
    }

    fn set_contains(&mut self, key: &str, member: &str, now: Instant) -> Result<bool, StoreError> {
        match self.live(key, now) {
            Some(Entry {
                value: Value::Set(s),
                ..
            }) => Ok(s.contains(member)),
            Some(_) => Err(wrong_type(key)),
            None => Ok(false),
        }
    }

    /// Adds to a set; a new set lives `ttl`.
    fn set_insert(
        &mut self,
        key: &str,
        member: String,
        ttl: Duration,
        now: Instant,
    ) -> Result<(), StoreError> {
        self.live(key, now);
        let entry = self.entries.entry(key.to_owned()).or_insert_with(|| Entry {
            value: Value::Set(HashSet::new()),
            expires: Some(now + ttl),
        });
        match &mut entry.value {
            Value::Set(s) => {
                s.insert(member);
                Ok(())
            }
            _ => Err(wrong_type(key)),
        }
    }

    fn peek(&mut self, key: &str, now: Instant) -> Result<Reply, StoreError> {
        Ok(match self.live(key, now) {
            Some(e) => {
                let count = match &e.value {
                    Value::Bytes(b) => std::str::from_utf8(b)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0),
                    _ => return Err(wrong_type(key)),
                };
                Reply::Counter {
                    count,
                    reset: Self::remaining(e, now),
                }
            }
            None => Reply::Counter {
                count: 0,
                reset: Duration::ZERO,
            },
        })
    }

    fn map_mut(
        &mut self,
        key: &str,
        now: Instant,
    ) -> Result<&mut HashMap<String, Vec<u8>>, StoreError> {
        if self.live(key, now).is_none() {
            self.entries.insert(
                key.to_owned(),
                Entry {
                    value: Value::Map(HashMap::new()),
                    expires: None,
                },
            );
        }
        match self.entries.get_mut(key).map(|e| &mut e.value) {
            Some(Value::Map(m)) => Ok(m),
            _ => Err(wrong_type(key)),
        }
    }
}

fn wrong_type(key: &str) -> StoreError {
    StoreError::Protocol(format!("key {key} holds another kind of value"))
}

#[async_trait]
impl Store for MemoryStore {
    async fn exec(&self, ops: Vec<Op>) -> Result<Vec<Reply>, StoreError> {
        let now = Instant::now();
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))?;
        inner.sweep(now);
        ops.into_iter().map(|op| inner.apply(op, now)).collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
