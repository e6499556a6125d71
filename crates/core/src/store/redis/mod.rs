//! The Redis store: one pipeline per batch, Lua where an op reads before it writes.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Pipeline, Value};

use super::{CodeCheck, Op, Reply, Rotation, Store, StoreError};

mod scripts;

use scripts::{
    sha, source, CHECK_CODE, HIT, HIT_UNLESS_SEEN, RELEASE, ROTATE, SET_ADD, SET_UNDER_LIMIT,
    STREAM_ADD_IF_PRESENT, STREAM_CLAIM, STREAM_READ,
};

/// A store on a Redis server, reconnecting by itself when the server comes back.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
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
}

impl RedisStore {
    /// Connects to `url` (`redis://`, `rediss://`, `unix://`). Fails when the first connection does.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unavailable)?;
        Ok(Self { conn })
    }

    fn push(pipe: &mut Pipeline, shapes: &mut Vec<Shape>, op: Op) {
        let ms = |d: Duration| d.as_millis().max(1) as u64;
        match op {
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
            Op::SetAdd { key, member, ttl } => {
                pipe.cmd("EVALSHA")
                    .arg(sha(SET_ADD))
                    .arg(1)
                    .arg(key)
                    .arg(member)
                    .arg(ms(ttl));
                shapes.push(Shape::Ok);
            }
            Op::SetRemove(key, member) => {
                pipe.cmd("SREM").arg(key).arg(member);
                shapes.push(Shape::Ok);
            }
            Op::SetMembers(key) => {
                pipe.cmd("SMEMBERS").arg(key);
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
        Shape::Code => Reply::Code(match int(&next()?)? {
            1 => CodeCheck::Matched,
            2 => CodeCheck::Wrong { burnt: false },
            3 => CodeCheck::Wrong { burnt: true },
            _ => CodeCheck::Missing,
        }),
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

#[async_trait]
impl Store for RedisStore {
    async fn exec(&self, ops: Vec<Op>) -> Result<Vec<Reply>, StoreError> {
        let mut pipe = redis::pipe();
        let mut shapes = Vec::with_capacity(ops.len());
        for op in ops {
            Self::push(&mut pipe, &mut shapes, op);
        }
        let mut conn = self.conn.clone();
        // Scripts run by their hash (EVALSHA), which spares Redis hashing the
        // source on every call. A Redis that restarted has forgotten them: the
        // commands answered NOSCRIPT (and only those) run again with their source.
        let mut raw: Vec<Value> = if pipe.cmd_iter().next().is_none() {
            // Nothing to send (every op had nothing to do).
            Vec::new()
        } else {
            pipe.ignore_errors()
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?
        };
        for (value, cmd) in raw.iter_mut().zip(pipe.cmd_iter()) {
            let Value::ServerError(err) = value else {
                continue;
            };
            if err.code() != "NOSCRIPT" {
                return Err(StoreError::Protocol(format!(
                    "{}: {}",
                    err.code(),
                    err.details().unwrap_or_default()
                )));
            }
            let mut args = cmd.args_iter().skip(1).map(|a| match a {
                redis::Arg::Simple(b) => b,
                _ => &b""[..],
            });
            let script = args
                .next()
                .and_then(source)
                .ok_or_else(|| StoreError::Protocol("NOSCRIPT for an unknown script".into()))?;
            let mut again = redis::cmd("EVAL");
            again.arg(script);
            for a in args {
                again.arg(a);
            }
            *value = again.query_async(&mut conn).await.map_err(unavailable)?;
        }
        let mut raw = raw.into_iter();
        let mut replies = Vec::with_capacity(shapes.len());
        for shape in shapes {
            if let Some(reply) = decode(shape, &mut raw)? {
                replies.push(reply);
            }
        }
        Ok(replies)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
