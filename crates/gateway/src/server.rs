//! The HTTP server under the routes: it accepts connections, holds each to its
//! timeouts, caps how many are open, and shuts down gracefully.
//!
//! poem's `Server` has an idle timeout but no read timeouts and no cap: hyper's
//! header read timeout needs a timer that poem does not install, hyper-util's
//! protocol detection has no timeout at all, and a connection that has sent half a
//! header line counts as busy, so poem's idle timeout never closes it. The gateway
//! therefore drives hyper itself, as poem's server does (the same `auto` builder,
//! upgrades included, and poem's own request and response conversions), with a
//! guard around each connection's IO that knows which phase the connection is in:
//!
//! - **head**: from the connection's opening (TLS handshake and protocol detection
//!   included), or from the first byte of a later request, its head must arrive
//!   whole within [`Limits::header_read_timeout`];
//! - **busy**: a request is being served; its body must arrive whole within
//!   [`Limits::body_read_timeout`] of its head (then it is answered 408 and the
//!   connection closed), and the handler takes what it takes;
//! - **idle**: between requests of a keep-alive connection, the next one must start
//!   within [`Limits::idle_timeout`];
//! - **upgraded**: a WebSocket; its own protocol keeps time (`platform`).
//!
//! A connection past its deadline fails its next read, which ends it. At most
//! [`Limits::max_connections`] connections are open at once, WebSockets included;
//! one more is answered at once with a 503 and `Retry-After` (over TLS, closed
//! without a word: answering would take a handshake) rather than left waiting.
//!
//! [`serve`] returns once shutdown was asked for and every connection has ended, or
//! the grace period is over: it stops accepting at once, closes connections that
//! are between requests or still sending a head, lets requests in flight finish
//! (hyper's graceful shutdown: keep-alive off, then close), and waits for WebSockets
//! to close (they watch the same signal and close with 1001).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use poem::endpoint::BoxEndpoint;
use poem::http::header::{self, HeaderValue};
use poem::http::{StatusCode, Version};
use poem::listener::{Acceptor, BoxAcceptor, BoxIo};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep_until, Instant, Sleep};

use crate::config::Config;

/// What every connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a request's head may take to arrive whole.
    pub header_read_timeout: Duration,
    /// Time a request's body may take to arrive whole, from the end of its head.
    pub body_read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections open at once, WebSockets included.
    pub max_connections: usize,
}

impl Limits {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout,
            body_read_timeout: config.body_read_timeout,
            idle_timeout: config.idle_timeout,
            max_connections: config.max_connections.max(1),
        }
    }
}

/// Connection counters, rendered with the other metrics.
#[derive(Debug, Default)]
pub struct Stats {
    open: AtomicI64,
    refused: AtomicU64,
    header_timeouts: AtomicU64,
    body_timeouts: AtomicU64,
    idle_closed: AtomicU64,
}

impl Stats {
    /// Appends the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = write!(
            out,
            "# HELP authgate_connections_open Open client connections, WebSockets included.\n\
             # TYPE authgate_connections_open gauge\n\
             authgate_connections_open {}\n\
             # HELP authgate_connections_refused_total Connections turned away at the cap.\n\
             # TYPE authgate_connections_refused_total counter\n\
             authgate_connections_refused_total {}\n\
             # HELP authgate_connections_timed_out_total Connections closed by a timeout, by phase.\n\
             # TYPE authgate_connections_timed_out_total counter\n\
             authgate_connections_timed_out_total{{phase=\"header\"}} {}\n\
             authgate_connections_timed_out_total{{phase=\"body\"}} {}\n\
             authgate_connections_timed_out_total{{phase=\"idle\"}} {}\n",
            self.open.load(Ordering::Relaxed).max(0),
            self.refused.load(Ordering::Relaxed),
            self.header_timeouts.load(Ordering::Relaxed),
            self.body_timeouts.load(Ordering::Relaxed),
            self.idle_closed.load(Ordering::Relaxed),
        );
    }
}

/// Where a connection stands (see the module's description).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Busy,
    Idle,
    Upgraded,
}

#[derive(Debug)]
struct ConnState {
    phase: Phase,
    /// When the phase's time is up; `None` while busy or upgraded.
    deadline: Option<Instant>,
    /// Requests answered or being answered whose response has not been sent whole.
    in_flight: usize,
    /// HTTP/2: bytes between requests (pings, settings) do not start a head.
    h2: bool,
    /// Shutting down: heads and idle waits end now.
    draining: bool,
    /// The reader to wake when the deadline moves.
    waker: Option<Waker>,
}

/// One connection's phase, shared by its IO guard and its requests.
#[derive(Debug)]
struct Conn {
    state: Mutex<ConnState>,
    limits: Limits,
    stats: Arc<Stats>,
}

impl Conn {
    fn new(limits: Limits, stats: Arc<Stats>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(ConnState {
                phase: Phase::Head,
                deadline: Some(Instant::now() + limits.header_read_timeout),
                in_flight: 0,
                h2: false,
                draining: false,
                waker: None,
            }),
            limits,
            stats,
        })
    }

    /// Changes the state, and wakes the reader when the deadline moved.
    fn update(&self, change: impl FnOnce(&mut ConnState, &Limits)) {
        let waker = {
            let Ok(mut s) = self.state.lock() else { return };
            let before = s.deadline;
            change(&mut s, &self.limits);
            if s.deadline != before {
                s.waker.take()
            } else {
                None
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// A request's head has arrived.
    fn request_started(self: &Arc<Self>, h2: bool) -> InFlight {
        self.update(|s, _| {
            s.h2 |= h2;
            s.in_flight += 1;
            if s.phase != Phase::Upgraded {
                s.phase = Phase::Busy;
                s.deadline = None;
            }
        });
        InFlight(self.clone())
    }

    /// A response was sent whole (or given up).
    fn request_done(&self) {
        self.update(|s, limits| {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 && s.phase == Phase::Busy {
                s.phase = Phase::Idle;
                let now = Instant::now();
                s.deadline = Some(if s.draining {
                    now
                } else {
                    now + limits.idle_timeout
                });
            }
        });
    }

    /// The connection became a WebSocket: no more deadlines here.
    fn upgraded(&self) {
        self.update(|s, _| {
            s.phase = Phase::Upgraded;
            s.deadline = None;
        });
    }

    /// Shutting down: a head still arriving or an idle wait ends now.
    fn drain(&self) {
        self.update(|s, _| {
            s.draining = true;
            if matches!(s.phase, Phase::Head | Phase::Idle) {
                s.deadline = Some(Instant::now());
            }
        });
    }

    /// Bytes arrived: between HTTP/1 requests, they start the next head.
    fn saw_bytes(&self) {
        let idle = self
            .state
            .lock()
            .is_ok_and(|s| s.phase == Phase::Idle && !s.h2 && !s.draining);
        if idle {
            self.update(|s, limits| {
                s.phase = Phase::Head;
                s.deadline = Some(Instant::now() + limits.header_read_timeout);
            });
        }
    }

    /// The current deadline and phase; registers `waker` to hear of changes.
    fn deadline(&self, waker: &Waker) -> Option<(Instant, Phase)> {
        let mut s = self.state.lock().ok()?;
        let deadline = s.deadline?;
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            s.waker = Some(waker.clone());
        }
        Some((deadline, s.phase))
    }

    fn timed_out(&self, phase: Phase) {
        let draining = self.state.lock().is_ok_and(|s| s.draining);
        if draining {
            return;
        }
        let counter = match phase {
            Phase::Head => &self.stats.header_timeouts,
            _ => &self.stats.idle_closed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A request being answered; dropped once its response has been sent whole.
struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// A connection's IO, failing reads once the phase's time is up, and holding the
/// connection's place under the cap until it is dropped.
struct Guarded<I> {
    io: I,
    conn: Arc<Conn>,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: Option<Instant>,
    expired: bool,
    _permit: OwnedSemaphorePermit,
}

impl<I> Drop for Guarded<I> {
    fn drop(&mut self) {
        self.conn.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

fn timed_out_error(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

impl<I: AsyncRead + Unpin> AsyncRead for Guarded<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Err(timed_out_error("the connection")));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.conn.saw_bytes();
                }
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
        let Some((deadline, phase)) = this.conn.deadline(cx.waker()) else {
            return Poll::Pending;
        };
        if this.armed != Some(deadline) {
            match &mut this.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => this.sleep = Some(Box::pin(sleep_until(deadline))),
            }
            this.armed = Some(deadline);
        }
        let Some(sleep) = this.sleep.as_mut() else {
            return Poll::Pending;
        };
        if sleep.as_mut().poll(cx).is_ready() {
            this.expired = true;
            this.conn.timed_out(phase);
            let what = match phase {
                Phase::Head => "reading the request head",
                _ => "waiting for a request",
            };
            tracing::debug!(target: "authgate::server", what, "closing a connection");
            return Poll::Ready(Err(timed_out_error(what)));
        }
        Poll::Pending
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Guarded<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

type PoemBody = BoxBody<Bytes, io::Error>;

/// A request body that fails once its deadline has passed while it still waits.
struct TimedBody {
    inner: PoemBody,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
    stats: Arc<Stats>,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.expired.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(timed_out_error("reading the request body"))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {}
            ready => return ready,
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Relaxed);
            this.stats.body_timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: "authgate::server", "the request body did not arrive in time");
            return Poll::Ready(Some(Err(timed_out_error("reading the request body"))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that tells the connection when it has been sent (or dropped).
struct Tracked {
    inner: PoemBody,
    _in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a connection beyond the cap is told (plain HTTP only).
const BUSY: &str = "{\"errors\":[{\"status\":\"503\",\"title\":\"Service Unavailable\",\
                    \"detail\":\"too many open connections; try again\"}]}";

/// Connections beyond the cap being answered at once; more are just closed.
const REFUSING: usize = 64;

/// Answers a connection beyond the cap with 503 and closes it: the answer, then
/// our end of the stream, then whatever the client had sent (at most 64 KiB, for
/// at most a second), so that the close does not reset the answer away.
fn refuse(io: BoxIo, tls: bool, refusing: &Arc<Semaphore>) {
    if tls {
        return; // Dropped: answering would take a TLS handshake.
    }
    let Ok(slot) = refusing.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _slot = slot;
        let mut io = io;
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json; charset=utf-8\r\n\
             retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BUSY}",
            BUSY.len()
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            io.write_all(answer.as_bytes()).await?;
            io.shutdown().await?;
            let mut sink = [0u8; 4096];
            let mut total = 0usize;
            while total < 64 * 1024 {
                let n = io.read(&mut sink).await?;
                if n == 0 {
                    break;
                }
                total += n;
            }
            Ok::<_, io::Error>(())
        })
        .await;
    });
}

/// Whether shutdown was asked for: the channel holds the deadline from then on.
pub type Stopping = watch::Receiver<Option<Instant>>;

/// Waits until shutdown begins, and returns its deadline; a server gone without
/// a shutdown counts as one due now.
pub async fn stopped(stopping: &mut Stopping) -> Instant {
    match stopping.wait_for(Option::is_some).await {
        Ok(deadline) => deadline.unwrap_or_else(Instant::now),
        Err(_) => Instant::now(),
    }
}

/// Serves `ep` on `acceptor` under `limits` until `stopping` holds a deadline, then
/// shuts down gracefully until then (see the module's description).
pub(crate) async fn serve(
    mut acceptor: BoxAcceptor,
    tls: bool,
    ep: Arc<BoxEndpoint<'static, Response>>,
    limits: Limits,
    stats: Arc<Stats>,
    mut stopping: Stopping,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSING));
    let (kill, killed) = watch::channel(false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_pending_accept_reset_streams(20)
        .max_header_list_size(16 * 1024);
    let builder = Arc::new(builder);
    let mut accept_errors = 0u32;
    let deadline = loop {
        let accepted = tokio::select! {
            biased;
            deadline = stopped(&mut stopping) => break deadline,
            accepted = acceptor.accept() => accepted,
        };
        let (io, local, remote, scheme) = match accepted {
            Ok(accepted) => {
                accept_errors = 0;
                accepted
            }
            Err(e) => {
                // Out of file descriptors, most likely: wait rather than spin.
                accept_errors += 1;
                if accept_errors == 1 || accept_errors.is_multiple_of(100) {
                    tracing::warn!(error = %e, "could not accept a connection");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = stopping.changed() => {}
                }
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: "authgate::server", remote = %remote, "too many open connections; refused one");
            refuse(io, tls, &refusing);
            continue;
        };
        stats.open.fetch_add(1, Ordering::Relaxed);
        let conn = Conn::new(limits, stats.clone());
        let io = Guarded {
            io,
            conn: conn.clone(),
            sleep: None,
            armed: None,
            expired: false,
            _permit: permit,
        };
        tokio::spawn(connection(
            io,
            conn,
            local,
            remote,
            scheme,
            ep.clone(),
            builder.clone(),
            stopping.clone(),
            killed.clone(),
        ));
    };
    drop(acceptor);
    // Every connection, WebSockets included, holds a permit until it has ended.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout_at(deadline, permits.acquire_many(all)).await;
    if drained.is_err() {
        let open = limits.max_connections - permits.available_permits();
        tracing::warn!(
            open,
            "connections still open at the end of the shutdown grace period; closing them"
        );
        let _ = kill.send(true);
    }
}

/// Serves one connection until it ends, shutdown has drained it, or the grace
/// period is over.
#[allow(clippy::too_many_arguments)]
async fn connection(
    io: Guarded<BoxIo>,
    conn: Arc<Conn>,
    local: LocalAddr,
    remote: RemoteAddr,
    scheme: poem::http::uri::Scheme,
    ep: Arc<BoxEndpoint<'static, Response>>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    mut stopping: Stopping,
    mut killed: watch::Receiver<bool>,
) {
    let service = {
        let conn = conn.clone();
        hyper::service::service_fn(move |req: poem::http::Request<Incoming>| {
            let conn = conn.clone();
            let ep = ep.clone();
            let parts = (local.clone(), remote.clone(), scheme.clone());
            async move { Ok::<_, Infallible>(answer(req, conn, ep, parts).await) }
        })
    };
    let served = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => return,
        _ = stopped(&mut stopping) => {}
    }
    conn.drain();
    served.as_mut().graceful_shutdown();
    tokio::select! {
        _ = served => {}
        _ = async { let _ = killed.wait_for(|k| *k).await; } => {}
    }
}

/// One request: its body held to its deadline, its response tracked until sent.
async fn answer(
    req: poem::http::Request<Incoming>,
    conn: Arc<Conn>,
    ep: Arc<BoxEndpoint<'static, Response>>,
    (local, remote, scheme): (LocalAddr, RemoteAddr, poem::http::uri::Scheme),
) -> hyper::Response<Tracked> {
    let in_flight = conn.request_started(req.version() == Version::HTTP_2);
    let mut req = Request::from((req, local, remote, scheme));
    let body: PoemBody = req.take_body().into();
    let timed = if body.is_end_stream() {
        req.set_body(poem::Body::from(body));
        None
    } else {
        let expired = Arc::new(AtomicBool::new(false));
        req.set_body(poem::Body::from(BoxBody::new(TimedBody {
            inner: body,
            deadline: Instant::now() + conn.limits.body_read_timeout,
            sleep: None,
            expired: expired.clone(),
            stats: conn.stats.clone(),
        })));
        Some((expired, req.uri().path().to_owned()))
    };
    let mut resp = ep.get_response(req).await;
    if let Some((expired, path)) = timed {
        if expired.load(Ordering::Relaxed) {
            resp = crate::errors::dialect_body(
                &path,
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            );
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        conn.upgraded();
    }
    let resp: hyper::Response<PoemBody> = resp.into();
    resp.map(|inner| Tracked {
        inner,
        _in_flight: in_flight,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            max_connections: 10,
        }
    }

    fn phase(conn: &Conn) -> (Phase, Option<Instant>) {
        let s = conn.state.lock().unwrap();
        (s.phase, s.deadline)
    }

    /// Asserts the phase, and a deadline `after` from some instant within `window`.
    fn assert_phase(conn: &Conn, want: Phase, after: Option<(Duration, Instant, Instant)>) {
        let (got, deadline) = phase(conn);
        assert_eq!(got, want);
        match (after, deadline) {
            (None, None) => {}
            (Some((d, from, to)), Some(deadline)) => {
                assert!(deadline >= from + d && deadline <= to + d, "{deadline:?}")
            }
            (after, deadline) => panic!("deadline {deadline:?}, expected {after:?}"),
        }
    }

    #[tokio::test]
    async fn a_connection_moves_through_its_phases() {
        let (head, idle) = (Duration::from_secs(10), Duration::from_secs(120));
        let before = Instant::now();
        let conn = Conn::new(limits(), Arc::default());
        assert_phase(&conn, Phase::Head, Some((head, before, Instant::now())));
        let first = conn.request_started(false);
        assert_phase(&conn, Phase::Busy, None);
        let before = Instant::now();
        drop(first);
        assert_phase(&conn, Phase::Idle, Some((idle, before, Instant::now())));
        let before = Instant::now();
        conn.saw_bytes();
        let after = Instant::now();
        assert_phase(&conn, Phase::Head, Some((head, before, after)));
        // A second byte does not move the head's deadline.
        let deadline = phase(&conn).1;
        tokio::time::sleep(Duration::from_millis(5)).await;
        conn.saw_bytes();
        assert_eq!(phase(&conn).1, deadline);
        let upgrade = conn.request_started(false);
        conn.upgraded();
        drop(upgrade);
        assert_phase(&conn, Phase::Upgraded, None);
    }

    #[tokio::test]
    async fn http2_bytes_between_requests_do_not_start_a_head_and_draining_ends_waits() {
        let conn = Conn::new(limits(), Arc::default());
        drop(conn.request_started(true));
        let idle = phase(&conn);
        assert_eq!(idle.0, Phase::Idle);
        conn.saw_bytes();
        assert_eq!(phase(&conn), idle);
        let before = Instant::now();
        conn.drain();
        assert_phase(
            &conn,
            Phase::Idle,
            Some((Duration::ZERO, before, Instant::now())),
        );
        // A request in flight while draining keeps its time, and ends the wait at once.
        let busy = Conn::new(limits(), Arc::default());
        let req = busy.request_started(false);
        busy.drain();
        assert_phase(&busy, Phase::Busy, None);
        let before = Instant::now();
        drop(req);
        assert_phase(
            &busy,
            Phase::Idle,
            Some((Duration::ZERO, before, Instant::now())),
        );
    }
}
