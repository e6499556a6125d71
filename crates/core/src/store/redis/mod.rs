//! The Redis store: one pipeline per batch (per slot on a cluster), Lua where an
//! op reads before it writes.
//!
//! - this module: turning [`Op`]s into commands and replies into [`Reply`]s, and
//!   running a batch: on one server as one pipeline; on a cluster split by slot,
//!   the parts sent concurrently, so a request still costs one round trip.
//! - `connect`: [`RedisOptions`], URLs, TLS, and finding out whether the server
//!   is a cluster.
//! - `wire`: the store's own pipelined connection to one server (plain TCP or a
//!   Unix socket), which the batches go on; redis-rs serves the rest.
//! - `clock`: the server's clock, followed from here, for the scores of index
//!   adds sent as plain commands.
//! - `scripts`: the Lua.
//! - `tracking`: the connections that keep the session cache true.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, Value};

use super::{CodeCheck, Op, ReadCache, Reply, Rotation, Store, StoreError};
use crate::text::{concat, decimal};
use commands::Commands;

mod clock;
mod commands;
mod connect;
mod scripts;
mod tracking;
mod wire;

pub use connect::{ensure_tls_provider, without_credentials, RedisMode, RedisOptions};
use scripts::{
    sha, source, CHECK_CODE, CHECK_CODE_GUARDED, HIT, HIT_UNLESS_SEEN, INDEX_ADD, INDEX_MEMBERS,
    RELEASE, ROTATE, SET_UNDER_LIMIT, STREAM_ADD_IF_PRESENT, STREAM_CLAIM, STREAM_READ,
};
/// How many pipelines may wait to be written to one server (plain TCP or a Unix
/// socket) while it stalls; past that a batch fails at once.
pub use wire::QUEUE_LIMIT as REDIS_QUEUE_LIMIT;

/// A store on a Redis server or a Redis Cluster, reconnecting by itself when a
/// server comes back and following a cluster's redirections and failovers.
#[derive(Clone)]
pub struct RedisStore {
    conn: Connection,
    /// Replicas a write that must survive a failover waits for ([`Op::Replicate`]), and how long.
    replicate: Option<(usize, Duration)>,
    /// The settings of the node the store was given (for the tracking connections).
    node: redis::ConnectionInfo,
    /// This replica's memory of sessions ([`RedisStore::with_session_cache`]).
    cache: Option<Arc<ReadCache>>,
    /// The server's clock, kept when an index add goes as plain commands
    /// ([`plain_index_add`]) rather than as the `INDEX_ADD` script: on one
    /// server of Redis 7.0 or later.
    plain_index: Option<Arc<clock::ServerClock>>,
    /// Index adds sent as plain commands so far (by any clone): every
    /// [`PRUNE_EVERY`]th also drops the index's ended members.
    index_adds: Arc<AtomicU64>,
    /// The connection the batches go on when the server is reached by plain
    /// TCP or a Unix socket ([`wire`]); otherwise `conn`.
    wire: Option<wire::Wire>,
}

#[derive(Clone)]
enum Connection {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("cluster", &self.is_cluster())
            .field("replicate", &self.replicate)
            .finish_non_exhaustive()
    }
}

/// How a raw pipeline reply turns into a [`Reply`], and how many raw replies it takes.
#[derive(Clone, Copy)]
enum Shape {
    Value,
    Ok,
    Flag,
    Int,
    Counter,
    Counted,
    /// A plain write standing for a [`Reply::Counted`] with nothing counted.
    Written,
    Map,
    Members,
    Rotation,
    Code,
    Entries,
    Items,
    /// A command whose reply is ignored (a PEXPIRE after an HSET).
    Skip,
    /// No command was sent: the op had nothing to do.
    Done,
    /// No command was sent: nothing to count ([`Reply::Int`] 0).
    Nothing,
}

/// The ops of a batch that go to one slot, as one pipeline.
struct Part {
    slot: Option<u16>,
    /// Each op's index in the batch.
    ops: Vec<usize>,
    cmds: Commands,
    shapes: Vec<Shape>,
    /// Index adds sent as plain commands, in case any of them fails.
    fallbacks: Vec<Fallback>,
}

impl Part {
    fn new(slot: Option<u16>) -> Self {
        Self {
            slot,
            ops: Vec::new(),
            cmds: Commands::new(),
            shapes: Vec::new(),
            fallbacks: Vec::new(),
        }
    }

    fn push(&mut self, store: &RedisStore, op: Op) {
        store.push(&mut self.cmds, &mut self.shapes, &mut self.fallbacks, op);
    }
}

impl RedisStore {
    /// Connects to `url`: one server, or any node of a cluster (found out by
    /// asking it), or a comma-separated list of a cluster's nodes. Fails when
    /// the first connection does.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(&RedisOptions::new(url)).await
    }

    /// Connects as `options` say. Fails when the first connection does.
    pub async fn connect_with(options: &RedisOptions) -> Result<Self, StoreError> {
        connect::open(options).await
    }

    /// Whether this store talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Connection::Cluster(_))
    }

    /// The same store, remembering the token sessions it reads (keys starting
    /// with `prefix`, see [`crate::store::Keys::session_prefix`]): at most
    /// `max_entries`, each at most `max_age`, kept true by Redis pushing every
    /// change of a session (`CLIENT TRACKING`, on every primary). The memory
    /// serves only while those pushes are known to flow. Needs a Tokio runtime.
    pub fn with_session_cache(
        mut self,
        prefix: String,
        max_entries: usize,
        max_age: Duration,
    ) -> Self {
        let cache = Arc::new(ReadCache::new(max_entries, max_age));
        let nodes = match &self.conn {
            Connection::Server(_) => tracking::Nodes::Server(self.node.clone()),
            Connection::Cluster(conn) => tracking::Nodes::Cluster(self.node.clone(), conn.clone()),
        };
        tokio::spawn(tracking::supervise(nodes, prefix, Arc::downgrade(&cache)));
        self.cache = Some(cache);
        self
    }

    /// How many replicas a write that must survive a failover waits for (0: none).
    pub fn replicas_awaited(&self) -> usize {
        self.replicate.map_or(0, |(n, _)| n)
    }

    fn push(
        &self,
        pipe: &mut Commands,
        shapes: &mut Vec<Shape>,
        fallbacks: &mut Vec<Fallback>,
        op: Op,
    ) {
        let ms = |d: Duration| d.as_millis().max(1) as u64;
        match op {
            Op::Replicate { .. } => match self.replicate {
                Some((replicas, timeout)) => {
                    pipe.cmd("WAIT").arg(replicas).arg(ms(timeout));
                    shapes.push(Shape::Int);
                }
                None => shapes.push(Shape::Nothing),
            },
            Op::Get(key) => {
                pipe.cmd("GET").arg(key);
                shapes.push(Shape::Value);
            }
            Op::Set { key, value, ttl } => {
                let c = pipe.cmd("SET").arg(key).arg(value);
                if let Some(t) = ttl {
                    c.arg("PX").arg(ms(t));
                }
                shapes.push(Shape::Ok);
            }
            Op::SetIfAbsent { key, value, ttl } => {
                let c = pipe.cmd("SET").arg(key).arg(value).arg("NX");
                if let Some(t) = ttl {
                    c.arg("PX").arg(ms(t));
                }
                shapes.push(Shape::Flag);
            }
            Op::Take(key) => {
                pipe.cmd("GETDEL").arg(key);
                shapes.push(Shape::Value);
            }
            Op::Delete(keys) => {
                if keys.is_empty() {
                    pipe.cmd("ECHO").arg(0);
                    shapes.push(Shape::Int);
                } else {
                    pipe.cmd("DEL").arg(keys);
                    shapes.push(Shape::Int);
                }
            }
            Op::TtlMillis(key) => {
                pipe.cmd("PTTL").arg(key);
                shapes.push(Shape::Int);
            }
            Op::Hit { key, window } => {
                pipe.cmd("EVALSHA")
                    .arg(sha(HIT))
                    .arg(1)
                    .arg(key)
                    .arg(ms(window));
                shapes.push(Shape::Counter);
            }
            Op::HitUnlessSeen {
                key,
                seen,
                member,
                window,
            } => {
                pipe.cmd("EVALSHA")
                    .arg(sha(HIT_UNLESS_SEEN))
                    .arg(2)
                    .arg(key)
                    .arg(seen)
                    .arg(ms(window))
                    .arg(member);
                shapes.push(Shape::Counter);
            }
            Op::Peek(key) => {
                pipe.cmd("GET").arg(&key);
                pipe.cmd("PTTL").arg(key);
                shapes.push(Shape::Counter);
            }
            // Nothing to count: a plain write, no script.
            Op::SetUnderLimit {
                limit: 0,
                key,
                value,
                ttl,
                ..
            } => {
                pipe.cmd("SET").arg(key).arg(value).arg("PX").arg(ms(ttl));
                shapes.push(Shape::Written);
            }
            Op::SetUnderLimit {
                counter,
                window,
                limit,
                key,
                value,
                ttl,
            } => {
                pipe.cmd("EVALSHA")
                    .arg(sha(SET_UNDER_LIMIT))
                    .arg(2)
                    .arg(counter)
                    .arg(key)
                    .arg(ms(window))
                    .arg(limit)
                    .arg(value)
                    .arg(ms(ttl));
                shapes.push(Shape::Counted);
            }
            Op::CheckCode {
                key,
                digest,
                max_tries,
            } => {
                pipe.cmd("EVALSHA")
                    .arg(sha(CHECK_CODE))
                    .arg(1)
                    .arg(key)
                    .arg(digest)
                    .arg(max_tries);
                shapes.push(Shape::Code);
            }
            Op::CheckCodeGuarded {
                key,
                digest,
                max_tries,
                guard,
            } => {
                pipe.cmd("EVALSHA")
                    .arg(sha(CHECK_CODE_GUARDED))
                    .arg(3)
                    .arg(key)
                    .arg(guard.guesses)
                    .arg(guard.seen)
                    .arg(digest)
                    .arg(max_tries)
                    .arg(guard.limit)
                    .arg(ms(guard.window));
                shapes.push(Shape::Code);
            }
            Op::StreamAdd { stream, entry } => {
                pipe.cmd("XADD").arg(stream).arg("*").arg("e").arg(entry);
                shapes.push(Shape::Value);
            }
            Op::StreamRead {
                stream,
                group,
                consumer,
                count,
            } => {
                pipe.cmd("EVALSHA")
                    .arg(sha(STREAM_READ))
                    .arg(1)
                    .arg(stream)
                    .arg(group)
                    .arg(consumer)
                    .arg(count);
                shapes.push(Shape::Entries);
            }
            Op::StreamClaim {
                stream,
                group,
                consumer,
                min_idle,
                count,
            } => {
                pipe.cmd("EVALSHA")
                    .arg(sha(STREAM_CLAIM))
                    .arg(1)
                    .arg(stream)
                    .arg(group)
                    .arg(consumer)
                    .arg(min_idle.as_millis() as u64)
                    .arg(count);
                shapes.push(Shape::Entries);
            }
            Op::StreamAck { ids, .. } if ids.is_empty() => shapes.push(Shape::Done),
            Op::StreamAck { stream, group, ids } => {
                pipe.cmd("XACK").arg(&stream).arg(group).arg(&ids);
                shapes.push(Shape::Skip);
                pipe.cmd("XDEL").arg(stream).arg(ids);
                shapes.push(Shape::Ok);
            }
            Op::Schedule {
                schedule,
                due_ms,
                entry,
            } => {
                pipe.cmd("ZADD").arg(schedule).arg(due_ms).arg(entry);
                shapes.push(Shape::Ok);
            }
            Op::StreamAddIfPresent {
                index,
                field,
                stream,
                entry,
                decoys,
                decoy,
            } => {
                pipe.cmd("EVALSHA")
                    .arg(sha(STREAM_ADD_IF_PRESENT))
                    .arg(3)
                    .arg(index)
                    .arg(stream)
                    .arg(decoys)
                    .arg(field)
                    .arg(entry)
                    .arg(decoy);
                shapes.push(Shape::Ok);
            }
            Op::Release {
                schedule,
                stream,
                now_ms,
                max,
            } => {
                pipe.cmd("EVALSHA")
                    .arg(sha(RELEASE))
                    .arg(2)
                    .arg(schedule)
                    .arg(stream)
                    .arg(now_ms)
                    .arg(max);
                shapes.push(Shape::Int);
            }
            Op::ListPush { key, value, keep } => {
                pipe.cmd("LPUSH").arg(&key).arg(value);
                shapes.push(Shape::Skip);
                pipe.cmd("LTRIM").arg(key).arg(0).arg(keep.max(1) - 1);
                shapes.push(Shape::Ok);
            }
            Op::ListRange { key, count } => {
                pipe.cmd("LRANGE").arg(key).arg(0).arg(count as i64 - 1);
                shapes.push(Shape::Items);
            }
            Op::MapGetAll(key) => {
                pipe.cmd("HGETALL").arg(key);
                shapes.push(Shape::Map);
            }
            Op::MapGet(key, field) => {
                pipe.cmd("HGET").arg(key).arg(field);
                shapes.push(Shape::Value);
            }
            Op::MapSet { key, fields, ttl } => {
                let c = pipe.cmd("HSET").arg(&key);
                for (f, v) in fields {
                    c.arg(f).arg(v);
                }
                shapes.push(Shape::Ok);
                if let Some(t) = ttl {
                    pipe.cmd("PEXPIRE").arg(key).arg(ms(t));
                    shapes.push(Shape::Skip);
                }
            }
            Op::MapSetIfAbsent(key, field, value) => {
                pipe.cmd("HSETNX").arg(key).arg(field).arg(value);
                shapes.push(Shape::Flag);
            }
            Op::MapDelete(key, fields) => {
                pipe.cmd("HDEL").arg(key).arg(fields);
                shapes.push(Shape::Int);
            }
            Op::IndexAdd { key, member, ttl } => {
                match &self.plain_index {
                    Some(clock) => {
                        let first = pipe.len();
                        let prune = self
                            .index_adds
                            .fetch_add(1, Ordering::Relaxed)
                            .is_multiple_of(PRUNE_EVERY);
                        let len =
                            plain_index_add(pipe, &key, &member, ms(ttl), clock.now_ms(), prune);
                        shapes.extend(std::iter::repeat_n(Shape::Skip, len - 1));
                        fallbacks.push(Fallback {
                            first,
                            len,
                            key,
                            member,
                            ttl_ms: ms(ttl),
                        });
                    }
                    None => {
                        pipe.add_command(&index_add_script(&key, &member, ms(ttl)));
                    }
                }
                shapes.push(Shape::Ok);
            }
            Op::IndexMembers(key) => {
                pipe.cmd("EVALSHA").arg(sha(INDEX_MEMBERS)).arg(1).arg(key);
                shapes.push(Shape::Members);
            }
            Op::RotateRefresh {
                key,
                presented,
                fields,
                ttl,
            } => {
                let c = pipe
                    .cmd("EVALSHA")
                    .arg(sha(ROTATE))
                    .arg(1)
                    .arg(key)
                    .arg(presented)
                    .arg(ms(ttl))
                    .arg(super::USED_REMEMBERED);
                for (f, v) in fields {
                    c.arg(f).arg(v);
                }
                shapes.push(Shape::Rotation);
            }
        }
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn protocol(what: &str, v: &Value) -> StoreError {
    StoreError::Protocol(format!("{what}: {v:?}"))
}

fn int(v: &Value) -> Result<i64, StoreError> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| protocol("integer", v)),
        Value::Nil => Ok(0),
        other => Err(protocol("integer", other)),
    }
}

fn bytes(v: Value) -> Result<Option<Vec<u8>>, StoreError> {
    match v {
        Value::Nil => Ok(None),
        Value::BulkString(b) => Ok(Some(b)),
        Value::SimpleString(s) => Ok(Some(s.into_bytes())),
        other => Err(protocol("bulk string", &other)),
    }
}

fn array(v: Value) -> Result<Vec<Value>, StoreError> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(protocol("array", &other)),
    }
}

fn millis(n: i64) -> Duration {
    Duration::from_millis(n.max(0) as u64)
}

/// One index add in this many, sent as plain commands, also drops the members
/// that have ended. The others leave them: readers skip them by score, and the
/// next prune takes them, so an index holds its live members and those ended
/// since its last prune (a handful, for an index added to steadily). Pruning on
/// every add cost each login and exchange one more Redis command.
const PRUNE_EVERY: u64 = 8;

/// An index add sent as plain commands: where the first of them is in its
/// pipeline, how many there are, and what the script needs should it have to
/// run instead.
struct Fallback {
    first: usize,
    len: usize,
    key: String,
    member: String,
    ttl_ms: u64,
}

/// The `INDEX_ADD` script's command.
fn index_add_script(key: &str, member: &str, ttl_ms: u64) -> Cmd {
    let mut script = redis::cmd("EVALSHA");
    script
        .arg(sha(INDEX_ADD))
        .arg(1)
        .arg(key)
        .arg(member)
        .arg(ttl_ms);
    script
}

/// Queues an index add as plain commands, which cost Redis about half of what
/// the `INDEX_ADD` script does: the member scored by its end, with `prune` the
/// members that ended dropped, and the index's lifetime raised to the member's
/// if shorter (`NX` gives a new index one; `GT` only ever lengthens it).
/// `now_ms` is the server's time as [`clock::ServerClock`] follows it, so the
/// scores mean what the script's (which reads `TIME`) do. Needs Redis 7.0
/// (`PEXPIRE NX`/`GT`). An index still kept as a plain set answers WRONGTYPE,
/// and the script then runs in its place ([`fall_back`]). Returns how many
/// commands it queued.
fn plain_index_add(
    pipe: &mut Commands,
    key: &str,
    member: &str,
    ttl_ms: u64,
    now_ms: u64,
    prune: bool,
) -> usize {
    let first = pipe.len();
    pipe.cmd("ZADD").arg(key).arg(now_ms + ttl_ms).arg(member);
    if prune {
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(key)
            .arg("-inf")
            .arg(concat(&["(", &decimal(now_ms)]));
    }
    pipe.cmd("PEXPIRE").arg(key).arg(ttl_ms).arg("NX");
    pipe.cmd("PEXPIRE").arg(key).arg(ttl_ms).arg("GT");
    pipe.len() - first
}

/// Whether a server of `version` (INFO's `redis_version`) has `PEXPIRE NX`/`GT` (7.0).
fn has_expire_conditions(version: &str) -> bool {
    version
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major >= 7)
}

fn decode(shape: Shape, raw: &mut std::vec::IntoIter<Value>) -> Result<Option<Reply>, StoreError> {
    let mut next = || {
        raw.next()
            .ok_or_else(|| StoreError::Protocol("pipeline reply too short".into()))
    };
    Ok(Some(match shape {
        Shape::Skip => {
            next()?;
            return Ok(None);
        }
        Shape::Done => Reply::Done,
        Shape::Nothing => Reply::Int(0),
        Shape::Value => Reply::Value(bytes(next()?)?),
        Shape::Ok => {
            next()?;
            Reply::Done
        }
        Shape::Flag => Reply::Flag(match next()? {
            Value::Okay | Value::SimpleString(_) => true,
            Value::Nil => false,
            v => int(&v)? == 1,
        }),
        Shape::Int => Reply::Int(int(&next()?)?),
        Shape::Counter => {
            let first = next()?;
            match first {
                Value::Array(items) => {
                    let count = items.first().map(int).transpose()?.unwrap_or(0) as u64;
                    let reset = millis(items.get(1).map(int).transpose()?.unwrap_or(0));
                    Reply::Counter { count, reset }
                }
                value => {
                    // A peek: GET then PTTL.
                    let count = int(&value)?.max(0) as u64;
                    let reset = millis(int(&next()?)?);
                    Reply::Counter { count, reset }
                }
            }
        }
        Shape::Counted => {
            let items = array(next()?)?;
            let at = |i: usize| items.get(i).map(int).transpose().map(|v| v.unwrap_or(0));
            Reply::Counted {
                count: at(0)?.max(0) as u64,
                reset: millis(at(1)?),
                written: at(2)? == 1,
            }
        }
        Shape::Written => {
            next()?;
            Reply::Counted {
                count: 0,
                reset: Duration::ZERO,
                written: true,
            }
        }
        Shape::Map => {
            let v = next()?;
            let mut map = HashMap::new();
            match v {
                Value::Map(pairs) => {
                    for (k, v) in pairs {
                        if let (Some(k), Some(v)) = (bytes(k)?, bytes(v)?) {
                            map.insert(String::from_utf8_lossy(&k).into_owned(), v);
                        }
                    }
                }
                other => {
                    let items = array(other)?;
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        if let (Some(k), Some(v)) = (bytes(k)?, bytes(v)?) {
                            map.insert(String::from_utf8_lossy(&k).into_owned(), v);
                        }
                    }
                }
            }
            Reply::Map(map)
        }
        Shape::Members => {
            let items = array(next()?)?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(b) = bytes(item)? {
                    out.push(String::from_utf8_lossy(&b).into_owned());
                }
            }
            Reply::Members(out)
        }
        Shape::Code => {
            // CHECK_CODE answers the outcome; CHECK_CODE_GUARDED {outcome, ms left}.
            let (outcome, left) = match next()? {
                Value::Array(items) => (
                    items.first().map(int).transpose()?.unwrap_or(0),
                    items.get(1).map(int).transpose()?.unwrap_or(0),
                ),
                v => (int(&v)?, 0),
            };
            Reply::Code(match outcome {
                1 => CodeCheck::Matched,
                2 => CodeCheck::Wrong { burnt: false },
                3 => CodeCheck::Wrong { burnt: true },
                4 => CodeCheck::Throttled {
                    retry_after: millis(left),
                },
                _ => CodeCheck::Missing,
            })
        }
        Shape::Entries => {
            // XREADGROUP: [[stream, [[id, [field, value]], ...]]]; XAUTOCLAIM's list: [[id, [field, value]], ...]
            let outer = array(next()?)?;
            let list = match outer.first() {
                Some(Value::Array(first))
                    if first.len() == 2
                        && !matches!(first[0], Value::Array(_))
                        && matches!(first[1], Value::Array(ref inner) if inner.first().is_some_and(|v| matches!(v, Value::Array(_)))) =>
                {
                    array(first[1].clone())?
                }
                _ => outer,
            };
            let mut out = Vec::with_capacity(list.len());
            for item in list {
                let pair = array(item)?;
                let mut it = pair.into_iter();
                let (Some(id), Some(fields)) = (it.next(), it.next()) else {
                    continue;
                };
                let id = bytes(id)?
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let fields = array(fields)?;
                // A deleted entry comes back with no fields; skip it.
                if let Some(value) = fields.into_iter().nth(1) {
                    if let Some(v) = bytes(value)? {
                        out.push((id, v));
                    }
                }
            }
            Reply::Entries(out)
        }
        Shape::Items => {
            let items = array(next()?)?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(b) = bytes(item)? {
                    out.push(b);
                }
            }
            Reply::Items(out)
        }
        Shape::Rotation => Reply::Rotated(match int(&next()?)? {
            1 => Rotation::Rotated,
            2 => Rotation::Reused,
            _ => Rotation::Unknown,
        }),
    }))
}

/// The key an op is routed by: every key of one op shares its hash tag.
fn routing_key(op: &Op) -> Option<&str> {
    let key = match op {
        Op::Get(key)
        | Op::Take(key)
        | Op::TtlMillis(key)
        | Op::Peek(key)
        | Op::MapGetAll(key)
        | Op::MapGet(key, _)
        | Op::MapSetIfAbsent(key, _, _)
        | Op::MapDelete(key, _)
        | Op::IndexMembers(key)
        | Op::Set { key, .. }
        | Op::SetIfAbsent { key, .. }
        | Op::Hit { key, .. }
        | Op::HitUnlessSeen { key, .. }
        | Op::SetUnderLimit { key, .. }
        | Op::CheckCode { key, .. }
        | Op::CheckCodeGuarded { key, .. }
        | Op::ListPush { key, .. }
        | Op::ListRange { key, .. }
        | Op::MapSet { key, .. }
        | Op::IndexAdd { key, .. }
        | Op::RotateRefresh { key, .. }
        | Op::Replicate { key } => key,
        Op::StreamAdd { stream, .. }
        | Op::StreamRead { stream, .. }
        | Op::StreamClaim { stream, .. }
        | Op::StreamAck { stream, .. }
        | Op::Release { stream, .. } => stream,
        Op::Schedule { schedule, .. } => schedule,
        Op::StreamAddIfPresent { index, .. } => index,
        Op::Delete(keys) => return keys.first().map(String::as_str),
    };
    Some(key)
}

/// The name of `cmd` (`GET`, `EVALSHA`, …).
fn name(cmd: &Cmd) -> &[u8] {
    match cmd.args_iter().next() {
        Some(redis::Arg::Simple(b)) => b,
        _ => b"",
    }
}

fn is_wait(cmd: &Cmd) -> bool {
    name(cmd) == b"WAIT"
}

/// The arguments of `cmd` after its name.
fn args(cmd: &Cmd) -> impl Iterator<Item = &[u8]> {
    cmd.args_iter().skip(1).map(|a| match a {
        redis::Arg::Simple(b) => b,
        _ => &b""[..],
    })
}

/// The keys a script command names, from its arguments after its name (its
/// hash, then the keys' count, then the keys).
fn script_keys<'a>(args: impl Iterator<Item = &'a [u8]>) -> Vec<&'a [u8]> {
    let mut rest = args.skip(1);
    let count = rest
        .next()
        .and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok())
        .unwrap_or(0);
    rest.take(count).collect()
}

/// `cmd` (an EVALSHA) with its script's source in place of its hash.
fn with_source(cmd: &Cmd) -> Result<Cmd, StoreError> {
    let mut rest = args(cmd);
    let script = rest
        .next()
        .and_then(source)
        .ok_or_else(|| StoreError::Protocol("NOSCRIPT for an unknown script".into()))?;
    let mut again = redis::cmd("EVAL");
    again.arg(script);
    for a in rest {
        again.arg(a);
    }
    Ok(again)
}

/// The scripts of `cmds` that must go with their source from the start. Scripts
/// go by their hash (EVALSHA), which spares Redis hashing the source on every
/// call; a server that restarted, or a replica promoted by a failover, answers
/// NOSCRIPT and the script is sent again with its source ([`query`]), after the
/// rest of the pipeline has run. So a script followed in the same pipeline by a
/// command on one of its keys goes with its source from the start: run again
/// later, it would see that command's effect, or that command would miss its.
fn ordered_scripts(cmds: &Commands) -> Vec<usize> {
    let mut ordered = Vec::new();
    for i in 0..cmds.len() {
        let mut args = cmds.command(i);
        if args.next() != Some(&b"EVALSHA"[..]) {
            continue;
        }
        let keys = script_keys(args);
        if (i + 1..cmds.len()).any(|later| cmds.command(later).skip(1).any(|a| keys.contains(&a))) {
            ordered.push(i);
        }
    }
    ordered
}

/// The commands of a pipeline as redis-rs's, ready to send: the scripts of
/// [`ordered_scripts`] with their source.
fn prepared(cmds: &Commands) -> Result<Pipeline, StoreError> {
    let ordered = ordered_scripts(cmds);
    if ordered.is_empty() {
        // The usual case: sent as it was built.
        return Ok(cmds.to_pipeline());
    }
    let mut out = pipeline(false);
    for i in 0..cmds.len() {
        let cmd = cmds.to_cmd(i);
        out.add_command(if ordered.contains(&i) {
            with_source(&cmd)?
        } else {
            cmd
        });
    }
    Ok(out)
}

/// An empty pipeline (a transaction when `atomic`) whose errors come back as
/// values, so that NOSCRIPT can be told from the rest.
fn pipeline(atomic: bool) -> Pipeline {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    if atomic {
        pipe.atomic();
    }
    pipe
}

/// Sends `pipe` (made by [`pipeline`]), the replies of scripts the server did
/// not know (NOSCRIPT) replaced by those of a second run with their source. A
/// WAIT in the pipeline is sent once more after such a run (in the same
/// pipeline, so to the same node), so that it covers the scripts' writes too.
async fn query<C: ConnectionLike + Clone>(
    conn: &C,
    pipe: &Pipeline,
) -> Result<Vec<Value>, redis::RedisError> {
    if pipe.is_empty() {
        // Nothing to send (every op had nothing to do).
        return Ok(Vec::new());
    }
    let mut conn = conn.clone();
    let raw: Vec<Value> = pipe.query_async(&mut conn).await?;
    again_with_sources(&conn, pipe, raw).await
}

/// `raw`, the replies to `pipe`, with those of scripts the server did not know
/// (NOSCRIPT) replaced as [`query`] says.
async fn again_with_sources<C: ConnectionLike + Clone>(
    conn: &C,
    pipe: &Pipeline,
    mut raw: Vec<Value>,
) -> Result<Vec<Value>, redis::RedisError> {
    // The scripts answered NOSCRIPT, with their source, then the WAITs: one
    // pipeline, sent where the scripts' keys are.
    let mut again = pipeline(false);
    let mut at = Vec::new();
    for (i, (value, cmd)) in raw.iter().zip(pipe.cmd_iter()).enumerate() {
        if let Value::ServerError(err) = value {
            if err.code() == "NOSCRIPT" {
                if let Ok(with) = with_source(cmd) {
                    again.add_command(with);
                    at.push(i);
                }
            }
        }
    }
    if at.is_empty() {
        return Ok(raw);
    }
    for (i, cmd) in pipe.cmd_iter().enumerate() {
        if is_wait(cmd) {
            again.add_command(cmd.clone());
            at.push(i);
        }
    }
    let replies: Vec<Value> = again.query_async(&mut conn.clone()).await?;
    for (i, reply) in at.into_iter().zip(replies) {
        raw[i] = reply;
    }
    Ok(raw)
}

/// Sends a pipeline on the store's own connection ([`wire`]), encoded straight
/// from its commands. When a reply is an error the pipeline is made a redis-rs
/// one for what follows, as on any connection: scripts sent again with their
/// source, index adds redone by script. A pipeline with a script that must go
/// with its source ([`ordered_scripts`]) goes that way from the start.
async fn send_on_wire(
    wire: &wire::Wire,
    cmds: &Commands,
    fallbacks: Vec<Fallback>,
) -> Result<Vec<Value>, StoreError> {
    if !ordered_scripts(cmds).is_empty() {
        return send_to_server(wire, &prepared(cmds)?, fallbacks).await;
    }
    let raw = wire
        .send(cmds.encode(), cmds.len())
        .await
        .map_err(unavailable)?;
    if !raw.iter().any(|v| matches!(v, Value::ServerError(_))) {
        return Ok(raw);
    }
    let pipe = cmds.to_pipeline();
    let mut raw = again_with_sources(wire, &pipe, raw)
        .await
        .map_err(unavailable)?;
    fall_back(wire, &mut raw, fallbacks).await?;
    Ok(raw)
}

/// Sends a pipeline to one server, redoing by script the index adds sent as
/// plain commands that failed ([`fall_back`]).
async fn send_to_server<C: ConnectionLike + Clone>(
    conn: &C,
    pipe: &Pipeline,
    fallbacks: Vec<Fallback>,
) -> Result<Vec<Value>, StoreError> {
    let mut raw = query(conn, pipe).await.map_err(unavailable)?;
    fall_back(conn, &mut raw, fallbacks).await?;
    Ok(raw)
}

/// Runs the `INDEX_ADD` script for each index add sent as plain commands that
/// got an error (an index still kept as a plain set, or a server older than
/// 7.0 since the store connected), its reply taking the place of theirs. The
/// script redoes what the plain commands did; what they leave behind is an old
/// set's lifetime already raised to the new member's, which its members then keep.
async fn fall_back<C: ConnectionLike + Clone>(
    conn: &C,
    raw: &mut [Value],
    fallbacks: Vec<Fallback>,
) -> Result<(), StoreError> {
    let failed = |f: &Fallback| {
        raw.get(f.first..f.first + f.len)
            .is_some_and(|r| r.iter().any(|v| matches!(v, Value::ServerError(_))))
    };
    let mut again = pipeline(false);
    let mut at = Vec::new();
    for f in fallbacks {
        if failed(&f) {
            again.add_command(index_add_script(&f.key, &f.member, f.ttl_ms));
            at.push((f.first, f.len));
        }
    }
    if at.is_empty() {
        return Ok(());
    }
    let replies = query(conn, &again).await.map_err(unavailable)?;
    for ((first, len), reply) in at.into_iter().zip(replies) {
        raw[first] = reply;
        for v in &mut raw[first + 1..first + len] {
            *v = Value::Okay;
        }
    }
    Ok(())
}

/// The replies of a pipeline, or the first error among them.
fn checked(raw: Vec<Value>) -> Result<Vec<Value>, StoreError> {
    if let Some(Value::ServerError(err)) = raw.iter().find(|v| matches!(v, Value::ServerError(_))) {
        return Err(StoreError::Protocol(format!(
            "{}: {}",
            err.code(),
            err.details().unwrap_or_default()
        )));
    }
    Ok(raw)
}

/// Whether a transaction was refused because its slot is moving or has moved
/// (ASK, MOVED, TRYAGAIN, CLUSTERDOWN): nothing in it ran, and each command
/// alone can be redirected.
fn refused_for_a_move(e: &redis::RedisError) -> bool {
    use redis::ServerErrorKind as K;
    e.kind() == redis::ErrorKind::Server(K::ExecAbort)
        && e.clone().into_server_errors().is_some_and(|errs| {
            !errs.is_empty()
                && errs.iter().all(|(_, err)| {
                    matches!(
                        err.kind(),
                        Some(K::Ask | K::Moved | K::TryAgain | K::ClusterDown | K::MasterDown)
                    )
                })
        })
}

/// A command and its place in its pipeline.
type Numbered = (usize, Cmd);

/// Sends the commands of one slot to a cluster.
///
/// redis-rs follows a redirection by sending the whole pipeline again to the
/// node named, after one ASKING: right for a pipeline of one command, wrong for
/// several while their slot migrates, where the old owner runs the commands on
/// the keys it still holds and answers ASK for the rest, so that the rest need
/// the new owner and the first would run twice. So several commands of a slot
/// go as a transaction: the old owner refuses it whole (EXECABORT) when any of
/// its commands is redirected, nothing has run, and the commands are then sent
/// one by one, each redirected on its own, in order. A WAIT cannot wait inside
/// a transaction, so it follows it, on the slot's primary.
async fn send_to_slot(
    conn: &ClusterConnection,
    slot: Option<u16>,
    pipe: Pipeline,
) -> Result<Vec<Value>, StoreError> {
    let keyed = pipe.cmd_iter().filter(|c| !is_wait(c)).count();
    if keyed < 2 {
        return query(conn, &pipe).await.map_err(unavailable);
    }
    let (waits, work): (Vec<Numbered>, Vec<Numbered>) = pipe
        .cmd_iter()
        .cloned()
        .enumerate()
        .partition(|(_, c)| is_wait(c));
    let mut tx = pipeline(true);
    for (_, cmd) in &work {
        tx.add_command(cmd.clone());
    }
    let replies = match query(conn, &tx).await {
        Ok(replies) => replies,
        Err(e) if refused_for_a_move(&e) => {
            let mut replies = Vec::with_capacity(work.len());
            for (_, cmd) in &work {
                let cmd = if name(cmd) == b"EVALSHA" {
                    with_source(cmd)?
                } else {
                    cmd.clone()
                };
                replies.push(one(conn, &cmd).await?);
            }
            replies
        }
        Err(e) => return Err(unavailable(e)),
    };
    let mut raw: Vec<Option<Value>> = vec![None; work.len() + waits.len()];
    for ((at, _), reply) in work.iter().zip(replies) {
        raw[*at] = Some(reply);
    }
    for (at, wait) in waits {
        let route = match slot {
            Some(slot) => redis::cluster_routing::RoutingInfo::SingleNode(
                redis::cluster_routing::SingleNodeRoutingInfo::SpecificNode(
                    redis::cluster_routing::Route::new(
                        slot,
                        redis::cluster_routing::SlotAddr::Master,
                    ),
                ),
            ),
            None => redis::cluster_routing::RoutingInfo::SingleNode(
                redis::cluster_routing::SingleNodeRoutingInfo::Random,
            ),
        };
        raw[at] = Some(
            conn.clone()
                .route_command(wait, route)
                .await
                .map_err(unavailable)?,
        );
    }
    raw.into_iter()
        .map(|v| v.ok_or_else(|| StoreError::Protocol("a command got no reply".into())))
        .collect()
}

/// One command on a cluster, its server error (other than a redirection,
/// which redis-rs follows) as a value like a pipeline's.
async fn one(conn: &ClusterConnection, cmd: &Cmd) -> Result<Value, StoreError> {
    use redis::ServerErrorKind as K;
    match cmd.query_async::<Value>(&mut conn.clone()).await {
        Ok(v) => Ok(v),
        Err(e) => match e.kind() {
            redis::ErrorKind::Server(K::Ask | K::Moved | K::TryAgain | K::ClusterDown) => {
                Err(unavailable(e))
            }
            redis::ErrorKind::Server(_) => match e.clone().into_server_errors() {
                Some(errs) if errs.len() == 1 => Ok(Value::ServerError(errs[0].1.clone())),
                _ => Err(unavailable(e)),
            },
            _ => Err(unavailable(e)),
        },
    }
}

impl RedisStore {
    /// Splits a batch into one part per slot (one part in all on a single
    /// server), keeping the order of the ops within each part.
    fn split(&self, ops: Vec<Op>) -> Vec<Part> {
        let mut parts: Vec<Part> = Vec::new();
        if !self.is_cluster() {
            let mut part = Part::new(None);
            for (i, op) in ops.into_iter().enumerate() {
                part.ops.push(i);
                part.push(self, op);
            }
            parts.push(part);
            return parts;
        }
        for (i, op) in ops.into_iter().enumerate() {
            // A delete is the one op that may name keys of several slots: it
            // becomes one DEL per slot, whose counts add up.
            let pieces = match op {
                Op::Delete(keys) if keys.len() > 1 => {
                    let mut by_slot: Vec<(u16, Vec<String>)> = Vec::new();
                    for key in keys {
                        let slot = super::slot::slot(key.as_bytes());
                        match by_slot.iter_mut().find(|(s, _)| *s == slot) {
                            Some((_, keys)) => keys.push(key),
                            None => by_slot.push((slot, vec![key])),
                        }
                    }
                    by_slot
                        .into_iter()
                        .map(|(slot, keys)| (Some(slot), Op::Delete(keys)))
                        .collect()
                }
                op => {
                    let slot = routing_key(&op).map(|k| super::slot::slot(k.as_bytes()));
                    vec![(slot, op)]
                }
            };
            for (slot, op) in pieces {
                let at = match parts.iter().position(|p| slot.is_none() || p.slot == slot) {
                    Some(at) => at,
                    None => {
                        parts.push(Part::new(slot));
                        parts.len() - 1
                    }
                };
                let part = &mut parts[at];
                part.ops.push(i);
                part.push(self, op);
            }
        }
        parts
    }

    async fn send(
        &self,
        slot: Option<u16>,
        cmds: Commands,
        fallbacks: Vec<Fallback>,
    ) -> Result<Vec<Value>, StoreError> {
        let raw = match (&self.conn, &self.wire) {
            (Connection::Server(_), Some(wire)) => send_on_wire(wire, &cmds, fallbacks).await?,
            (Connection::Server(conn), None) => {
                send_to_server(conn, &prepared(&cmds)?, fallbacks).await?
            }
            (Connection::Cluster(conn), _) => send_to_slot(conn, slot, prepared(&cmds)?).await?,
        };
        checked(raw)
    }
}

/// One range of slots as `CLUSTER SLOTS` reports it.
pub(super) struct SlotRange {
    /// Its first and last slot.
    pub first: u16,
    pub last: u16,
    /// Its primary's host and port, when reported.
    pub primary: Option<(String, u16)>,
}

/// The cluster's ranges of slots and their primaries (`CLUSTER SLOTS`).
pub(super) async fn slot_ranges(conn: &ClusterConnection) -> Result<Vec<SlotRange>, StoreError> {
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn.clone())
        .await
        .map_err(unavailable)?;
    let slot = |v: &Value| int(v).map(|n| u16::try_from(n).unwrap_or(0));
    let mut ranges = Vec::new();
    for range in array(reply)? {
        let range = array(range)?;
        let (Some(first), Some(last)) = (range.first(), range.get(1)) else {
            continue;
        };
        let primary = match range.get(2).cloned().map(array).transpose()? {
            Some(node) => {
                let host = match node.first() {
                    Some(Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                    Some(Value::SimpleString(s)) => Some(s.clone()),
                    _ => None,
                };
                let port = node.get(1).map(slot).transpose()?;
                host.zip(port)
            }
            None => None,
        };
        ranges.push(SlotRange {
            first: slot(first)?,
            last: slot(last)?,
            primary,
        });
    }
    Ok(ranges)
}

/// The longest a readiness ping may take.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// Pings the primary of every range of slots the cluster reports: a cluster
/// with one primary down cannot serve its slots, whatever the rest say. (A
/// fan-out to "all primaries" would only reach those still connected.)
async fn ping_every_primary(conn: &ClusterConnection) -> Result<(), StoreError> {
    let ranges = slot_ranges(conn).await?;
    let covered: u32 = ranges
        .iter()
        .map(|r| u32::from(r.last.saturating_sub(r.first)) + 1)
        .sum();
    let starts: Vec<u16> = ranges.iter().map(|r| r.first).collect();
    if covered < u32::from(super::slot::SLOTS) {
        return Err(StoreError::Unavailable(format!(
            "the cluster serves {covered} of {} slots",
            super::slot::SLOTS
        )));
    }
    // A keyed command, so that it goes to the slot's primary: without a
    // connection to that primary, a PING would be answered by any other node.
    let pings = starts.into_iter().map(|slot| {
        let mut c = conn.clone();
        let mut exists = redis::cmd("EXISTS");
        exists.arg(super::slot::key_in(slot));
        async move { exists.query_async::<Value>(&mut c).await }
    });
    futures::future::try_join_all(pings)
        .await
        .map(drop)
        .map_err(unavailable)
}

#[async_trait]
impl Store for RedisStore {
    async fn exec(&self, ops: Vec<Op>) -> Result<Vec<Reply>, StoreError> {
        let count = ops.len();
        let mut parts = self.split(ops);
        let sends = parts.iter_mut().map(|p| {
            self.send(
                p.slot,
                std::mem::take(&mut p.cmds),
                std::mem::take(&mut p.fallbacks),
            )
        });
        let raws = futures::future::try_join_all(sends).await?;
        let mut replies: Vec<Option<Reply>> = vec![None; count];
        for (part, raw) in parts.into_iter().zip(raws) {
            let mut raw = raw.into_iter();
            let mut at = part.ops.into_iter();
            for shape in part.shapes {
                if let Some(reply) = decode(shape, &mut raw)? {
                    let i = at
                        .next()
                        .ok_or_else(|| StoreError::Protocol("more replies than ops".into()))?;
                    replies[i] = Some(match (replies[i].take(), reply) {
                        // The pieces of a delete split by slot.
                        (Some(Reply::Int(a)), Reply::Int(b)) => Reply::Int(a + b),
                        (_, reply) => reply,
                    });
                }
            }
        }
        replies
            .into_iter()
            .map(|r| r.ok_or_else(|| StoreError::Protocol("an op got no reply".into())))
            .collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let ping = async {
            match &self.conn {
                Connection::Server(conn) => redis::cmd("PING")
                    .query_async::<String>(&mut conn.clone())
                    .await
                    .map(drop)
                    .map_err(unavailable),
                Connection::Cluster(conn) => ping_every_primary(conn).await,
            }
        };
        tokio::time::timeout(PING_TIMEOUT, ping)
            .await
            .map_err(|_| StoreError::Unavailable("no answer to a ping in time".into()))?
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn read_cache(&self) -> Option<Arc<ReadCache>> {
        self.cache.clone()
    }
}
