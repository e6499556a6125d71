//! A lean pipelined connection to one Redis server, for the requests' batches.
//!
//! redis-rs's connection manager passes every pipeline through a bounded
//! channel, a framed codec and a combinator parser; on the login flow that was
//! about a sixth of the gateway's CPU. This one does what the store needs and
//! no more: one task per connection writes every pipeline waiting (several
//! requests' in one `write`), reads the replies in order with a small RESP2
//! parser, and hands each pipeline its own. It is used for plain TCP and Unix
//! socket connections to one server; TLS, clusters and everything off the
//! request path keep redis-rs.
//!
//! A broken connection fails the pipelines in flight (as redis-rs's does) and
//! is opened again by the next one; while the server stays unreachable, each
//! pipeline fails with its own attempt (refused at once, or timed out).
//!
//! When the server stalls (it stops reading, so writes to it block), pipelines
//! wait in a queue, bounded at [`QUEUE_LIMIT`]: past it a pipeline fails at
//! once rather than adding to a backlog nobody waits for. A pipeline whose
//! caller has stopped waiting (its 2 s are up, or its request was dropped) is
//! not sent at all when its turn comes, so the backlog of writes whose callers
//! were told they failed does not land later, when the server is back (only
//! what was already in the socket when it stalled can).

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, Pipeline, RedisError, RedisFuture, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// The longest a connection may take to open (and authenticate).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a pipeline waits for its replies.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// The deepest nesting of arrays a reply may have (the store's deepest is 4).
const MAX_DEPTH: usize = 16;
/// The most pipelines waiting to be written. Normally the queue is emptied at
/// every write; it fills only while the server stalls, at the request rate (a
/// few hundred bytes each).
pub const QUEUE_LIMIT: usize = 16_384;

/// A pipelined connection to one server, cheap to clone (a channel's sender).
#[derive(Clone)]
pub(super) struct Wire {
    jobs: mpsc::Sender<Job>,
}

/// A pipeline to send: its encoded commands, how many replies it gets, and
/// where they go.
struct Job {
    bytes: Vec<u8>,
    replies: usize,
    answer: oneshot::Sender<Result<Vec<Value>, String>>,
}

/// A job sent, waiting for its replies.
struct Waiting {
    replies: usize,
    got: Vec<Value>,
    answer: oneshot::Sender<Result<Vec<Value>, String>>,
}

/// Whether `info` is one this connection can open (plain TCP or a Unix socket).
pub(super) fn can_open(info: &ConnectionInfo) -> bool {
    matches!(
        info.addr(),
        ConnectionAddr::Tcp(..) | ConnectionAddr::Unix(_)
    )
}

impl Wire {
    /// Opens a connection to the server `info` names (authenticating and
    /// choosing its database as it says), then serves pipelines on it from a
    /// task of its own until every clone is dropped. Needs a Tokio runtime.
    pub(super) async fn open(info: ConnectionInfo) -> Result<Self, RedisError> {
        let link = Link::open(&info).await.map_err(RedisError::from)?;
        let (jobs, queue) = mpsc::channel(QUEUE_LIMIT);
        tokio::spawn(drive(info, link, queue));
        Ok(Self { jobs })
    }

    /// Sends `bytes`, a pipeline of `replies` commands in RESP, and returns its
    /// replies (errors among them as values).
    pub(super) async fn send(
        &self,
        bytes: Vec<u8>,
        replies: usize,
    ) -> Result<Vec<Value>, RedisError> {
        if replies == 0 {
            // Nothing would come back to tell this job's end from the next one's.
            return Ok(Vec::new());
        }
        let (answer, answered) = oneshot::channel();
        let job = Job {
            bytes,
            replies,
            answer,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(RedisError::from(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("Redis is not keeping up: {QUEUE_LIMIT} pipelines wait to be sent"),
                )))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(broken("the Redis connection's task has stopped"))
            }
        }
        match tokio::time::timeout(RESPONSE_TIMEOUT, answered).await {
            Ok(Ok(Ok(values))) => Ok(values),
            Ok(Ok(Err(e))) => Err(broken(&e)),
            Ok(Err(_)) => Err(broken("the Redis connection's task has stopped")),
            Err(_) => Err(RedisError::from(io::Error::new(
                io::ErrorKind::TimedOut,
                "Redis did not answer in time",
            ))),
        }
    }
}

fn broken(what: &str) -> RedisError {
    RedisError::from(io::Error::new(io::ErrorKind::BrokenPipe, what.to_owned()))
}

impl redis::aio::ConnectionLike for Wire {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, Value> {
        let bytes = cmd.get_packed_command();
        Box::pin(async move {
            let mut values = self.send(bytes, 1).await?;
            values.pop().ok_or_else(|| broken("no reply"))
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let bytes = pipeline.get_packed_pipeline();
        Box::pin(async move {
            let values = self.send(bytes, offset + count).await?;
            Ok(values.into_iter().skip(offset).collect())
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// An open connection.
enum Link {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl Link {
    async fn open(info: &ConnectionInfo) -> io::Result<Self> {
        tokio::time::timeout(CONNECT_TIMEOUT, Self::connect(info))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting to Redis timed out"))?
    }

    async fn connect(info: &ConnectionInfo) -> io::Result<Self> {
        let mut link = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                Link::Tcp(stream)
            }
            ConnectionAddr::Unix(path) => Link::Unix(tokio::net::UnixStream::connect(path).await?),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "TLS connections go through redis-rs",
                ))
            }
        };
        let settings = info.redis_settings();
        let mut hello = Pipeline::new();
        if let Some(password) = settings.password() {
            let auth = hello.cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            auth.arg(password);
        }
        if settings.db() != 0 {
            hello.cmd("SELECT").arg(settings.db());
        }
        if !hello.is_empty() {
            let replies = link
                .exchange(&hello.get_packed_pipeline(), hello.len())
                .await?;
            if let Some(Value::ServerError(e)) =
                replies.iter().find(|v| matches!(v, Value::ServerError(_)))
            {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("Redis refused the connection: {e}"),
                ));
            }
        }
        Ok(link)
    }

    /// Writes `bytes` and reads `replies` replies (only while opening).
    async fn exchange(&mut self, bytes: &[u8], replies: usize) -> io::Result<Vec<Value>> {
        match self {
            Link::Tcp(s) => exchange(s, bytes, replies).await,
            Link::Unix(s) => exchange(s, bytes, replies).await,
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    replies: usize,
) -> io::Result<Vec<Value>> {
    stream.write_all(bytes).await?;
    let mut buf = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(replies);
    while out.len() < replies {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut at = 0;
        while out.len() < replies {
            match parse(&buf, at, 0).map_err(invalid)? {
                Some((value, next)) => {
                    out.push(value);
                    at = next;
                }
                None => break,
            }
        }
        buf.drain(..at);
    }
    Ok(out)
}

fn invalid(e: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Serves the jobs on `link`, and on the links that replace it when it breaks,
/// until every sender is gone.
async fn drive(info: ConnectionInfo, link: Link, mut queue: mpsc::Receiver<Job>) {
    let mut link = Some(link);
    let mut first = None;
    // Whether the last attempt to reconnect failed (said once, not per request).
    let mut down = false;
    loop {
        if let Some(open) = link.take() {
            let served = match open {
                Link::Tcp(s) => {
                    let (r, w) = s.into_split();
                    pump(r, w, first.take(), &mut queue).await
                }
                Link::Unix(s) => {
                    let (r, w) = s.into_split();
                    pump(r, w, first.take(), &mut queue).await
                }
            };
            match served {
                Ok(()) => return,
                Err(e) => tracing::warn!(
                    error = %e,
                    "the Redis connection broke; it is opened again on the next request"
                ),
            }
        }
        // Broken: opened again when there is work (for a caller still waiting).
        let Some(job) = queue.recv().await else {
            return;
        };
        if job.answer.is_closed() {
            continue;
        }
        match Link::open(&info).await {
            Ok(open) => {
                if down {
                    tracing::info!("reconnected to Redis");
                    down = false;
                }
                link = Some(open);
                first = Some(job);
            }
            Err(e) => {
                if !down {
                    tracing::warn!(error = %e, "reconnecting to Redis failed; trying again on each request");
                    down = true;
                }
                let _ = job
                    .answer
                    .send(Err(format!("reconnecting to Redis failed: {e}")));
            }
        }
    }
}

/// Writes jobs and reads their replies until the connection breaks (`Err`,
/// every job in flight failed with it) or every sender is gone (`Ok`).
async fn pump<R, W>(
    mut reader: R,
    mut writer: W,
    first: Option<Job>,
    queue: &mut mpsc::Receiver<Job>,
) -> Result<(), String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut waiting: VecDeque<Waiting> = VecDeque::new();
    let mut read_buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut write_buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut next = first;
    let outcome = loop {
        if let Some(job) = next.take() {
            // Every job already queued goes in the same write; then, once, the
            // tasks ready to run get their turn, and what they queue goes too
            // (fewer, larger writes: fewer system calls here and in Redis).
            // A job nobody waits for any more is dropped unsent.
            let mut job = Some(job);
            for round in 0..2 {
                while let Some(j) = job {
                    if !j.answer.is_closed() {
                        write_buf.extend_from_slice(&j.bytes);
                        waiting.push_back(Waiting {
                            replies: j.replies,
                            got: Vec::with_capacity(j.replies),
                            answer: j.answer,
                        });
                    }
                    job = queue.try_recv().ok();
                }
                if round == 0 {
                    tokio::task::yield_now().await;
                    job = queue.try_recv().ok();
                }
            }
            if !write_buf.is_empty() {
                if let Err(e) = writer.write_all(&write_buf).await {
                    break Err(format!("writing to Redis: {e}"));
                }
                write_buf.clear();
            }
        }
        tokio::select! {
            biased;
            read = reader.read_buf(&mut read_buf) => match read {
                Ok(0) => break Err("Redis closed the connection".into()),
                Ok(_) => {
                    if let Err(e) = deliver(&mut read_buf, &mut waiting) {
                        break Err(e);
                    }
                }
                Err(e) => break Err(format!("reading from Redis: {e}")),
            },
            job = queue.recv() => match job {
                Some(job) => next = Some(job),
                None => break Ok(()),
            },
        }
    };
    if let Err(e) = &outcome {
        for w in waiting {
            let _ = w.answer.send(Err(e.clone()));
        }
    }
    outcome
}

/// Parses the complete replies in `buf`, hands them to the jobs waiting in
/// order, and keeps the rest of `buf` for the next read.
fn deliver(buf: &mut Vec<u8>, waiting: &mut VecDeque<Waiting>) -> Result<(), String> {
    let mut at = 0;
    while let Some((value, next)) = parse(buf, at, 0)? {
        at = next;
        let Some(front) = waiting.front_mut() else {
            return Err("a reply nobody asked for".into());
        };
        front.got.push(value);
        if front.got.len() == front.replies {
            if let Some(done) = waiting.pop_front() {
                let _ = done.answer.send(Ok(done.got));
            }
        }
    }
    buf.drain(..at);
    Ok(())
}

/// The reply starting at `buf[at]` and where the next starts, or `None` while
/// it has not all arrived. RESP2, plus RESP3's null.
fn parse(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Value, usize)>, String> {
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some(end) = line_end(buf, at + 1) else {
        return Ok(None);
    };
    let line = &buf[at + 1..end];
    let after = end + 2;
    let value = match kind {
        b'+' if line == b"OK" => Value::Okay,
        b'+' => Value::SimpleString(String::from_utf8_lossy(line).into_owned()),
        b'-' => redis::parse_redis_value(&buf[at..after]).map_err(|e| e.to_string())?,
        b':' => Value::Int(number(line)?),
        b'_' => Value::Nil,
        b'$' => {
            let len = number(line)?;
            if len < 0 {
                return Ok(Some((Value::Nil, after)));
            }
            let stop = after + len as usize;
            if buf.len() < stop + 2 {
                return Ok(None);
            }
            return Ok(Some((
                Value::BulkString(buf[after..stop].to_vec()),
                stop + 2,
            )));
        }
        b'*' => {
            let len = number(line)?;
            if len < 0 {
                return Ok(Some((Value::Nil, after)));
            }
            if depth >= MAX_DEPTH {
                return Err("a reply nested too deep".into());
            }
            let mut items = Vec::with_capacity((len as usize).min(1024));
            let mut next = after;
            for _ in 0..len {
                let Some((item, n)) = parse(buf, next, depth + 1)? else {
                    return Ok(None);
                };
                items.push(item);
                next = n;
            }
            return Ok(Some((Value::Array(items), next)));
        }
        other => return Err(format!("an unexpected reply type {:?}", other as char)),
    };
    Ok(Some((value, after)))
}

/// Where the line starting at `from` ends (its `\r`).
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    let cr = rest.windows(2).position(|w| w == b"\r\n")?;
    Some(from + cr)
}

fn number(line: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not a number: {:?}", String::from_utf8_lossy(line)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn all(bytes: &[u8]) -> Vec<Value> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some((v, next)) = parse(bytes, at, 0).unwrap() {
            out.push(v);
            at = next;
        }
        assert_eq!(at, bytes.len(), "everything parsed");
        out
    }

    #[test]
    fn replies_parse_as_redis_rs_parses_them() {
        let wire = b"+OK\r\n+QUEUED\r\n:-42\r\n$5\r\nhe\r\nl\r\n$-1\r\n*-1\r\n$0\r\n\r\n\
*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n*0\r\n-NOSCRIPT No matching script\r\n_\r\n";
        let ours = all(wire);
        assert_eq!(ours.len(), 10);
        // redis-rs's parser, one reply at a time, is the reference.
        let mut at = 0;
        for value in &ours {
            let (_, next) = parse(wire, at, 0).unwrap().unwrap();
            assert_eq!(&redis::parse_redis_value(&wire[at..next]).unwrap(), value);
            at = next;
        }
        assert_eq!(ours[0], Value::Okay);
        assert_eq!(ours[3], Value::BulkString(b"he\r\nl".to_vec()));
        match &ours[8] {
            Value::ServerError(e) => assert_eq!(e.code(), "NOSCRIPT"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_reply_cut_anywhere_waits_for_the_rest() {
        let wire = b"*2\r\n$3\r\nabc\r\n*1\r\n:7\r\n";
        for cut in 0..wire.len() {
            assert!(parse(&wire[..cut], 0, 0).unwrap().is_none(), "cut at {cut}");
        }
        let (v, next) = parse(wire, 0, 0).unwrap().unwrap();
        assert_eq!(next, wire.len());
        assert_eq!(
            v,
            Value::Array(vec![
                Value::BulkString(b"abc".to_vec()),
                Value::Array(vec![Value::Int(7)])
            ])
        );
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert!(parse(b":x\r\n", 0, 0).is_err());
        assert!(parse(b"?1\r\n", 0, 0).is_err());
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1) + ":1\r\n";
        assert!(parse(deep.as_bytes(), 0, 0).is_err());
    }

    #[test]
    fn replies_go_to_their_jobs_in_order() {
        let (a, mut a_rx) = oneshot::channel();
        let (b, mut b_rx) = oneshot::channel();
        let mut waiting = VecDeque::from([
            Waiting {
                replies: 2,
                got: Vec::new(),
                answer: a,
            },
            Waiting {
                replies: 1,
                got: Vec::new(),
                answer: b,
            },
        ]);
        let mut buf = b":1\r\n:2\r\n:3".to_vec();
        deliver(&mut buf, &mut waiting).unwrap();
        assert_eq!(
            a_rx.try_recv().unwrap().unwrap(),
            [Value::Int(1), Value::Int(2)]
        );
        assert!(b_rx.try_recv().is_err(), "its reply is not all here");
        assert_eq!(buf, b":3");
        buf.extend_from_slice(b"\r\n");
        deliver(&mut buf, &mut waiting).unwrap();
        assert_eq!(b_rx.try_recv().unwrap().unwrap(), [Value::Int(3)]);
        assert!(buf.is_empty() && waiting.is_empty());
        buf.extend_from_slice(b":4\r\n");
        assert!(deliver(&mut buf, &mut waiting).is_err(), "nobody asked");
    }

    /// A job of `n` bytes `b` wanting one reply, and where its reply goes.
    fn job(b: u8, n: usize) -> (Job, oneshot::Receiver<Result<Vec<Value>, String>>) {
        let (answer, answered) = oneshot::channel();
        let job = Job {
            bytes: vec![b; n],
            replies: 1,
            answer,
        };
        (job, answered)
    }

    #[tokio::test]
    async fn a_job_whose_caller_stopped_waiting_is_not_sent() {
        // A server that reads only when told: the first job's write blocks in a
        // 64-byte pipe, as it would against a stalled Redis.
        let (client, mut server) = tokio::io::duplex(64);
        let (r, w) = tokio::io::split(client);
        let (jobs, mut queue) = mpsc::channel(8);
        let (first, first_rx) = job(b'a', 1000);
        let pumping = tokio::spawn(async move { pump(r, w, Some(first), &mut queue).await });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        // Queued behind the blocked write: one whose caller gave up, one waited for.
        let (gone, gone_rx) = job(b'b', 4);
        drop(gone_rx);
        let (kept, kept_rx) = job(b'c', 4);
        jobs.try_send(gone).map_err(|_| "queue").unwrap();
        jobs.try_send(kept).map_err(|_| "queue").unwrap();
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while got.len() < 1004 {
            let mut chunk = [0u8; 256];
            let n = tokio::time::timeout_at(deadline, server.read(&mut chunk))
                .await
                .expect("the pump writes the jobs within 5 s")
                .unwrap();
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(got[..1000], [b'a'; 1000]);
        assert_eq!(got[1000..], *b"cccc", "the abandoned job is not sent");
        // Two replies, for the two jobs sent: the kept one gets the second.
        server.write_all(b"+OK\r\n:7\r\n").await.unwrap();
        assert_eq!(first_rx.await.unwrap().unwrap(), [Value::Okay]);
        assert_eq!(kept_rx.await.unwrap().unwrap(), [Value::Int(7)]);
        drop(jobs);
        assert_eq!(
            pumping.await.unwrap(),
            Ok(()),
            "ends when its senders are gone"
        );
    }
}
