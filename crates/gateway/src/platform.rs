//! Scheme A over the platform's Web SDK protocol: the `/platform` WebSocket.
//!
//! The web phone SDK (`voximplant-websdk`) opens `wss://host/platform?...` and
//! exchanges text frames `{"name": "<fn>", "params": [...]}` (SPEC §1b). This
//! module only translates: each login frame becomes one call of the same
//! [`KeyScheme`] methods the REST endpoints use (same store, limits, decoy keys,
//! tokens and funnel metrics), and each outcome one answer frame.
//!
//! Per socket, frames are answered in order, one scheme call at a time (pings are
//! answered at once, even while a login runs). A socket is closed with a close
//! frame, without touching any other socket, when it sends malformed JSON (1007),
//! a binary frame (1003), a frame over [`MAX_FRAME_BYTES`] (1009), more than
//! [`MAX_FRAMES_PER_SECOND`] frames in a second or more than [`MAX_PENDING`]
//! unanswered requests (1008), nothing for [`IDLE_TIMEOUT`] (1000), or frames
//! that break the WebSocket protocol (1002). A socket beyond
//! [`Options::per_address`] open ones from the same client address is closed at
//! once (1008), and every socket is closed when the gateway shuts down (1001).
//!
//! The upgrade is done here rather than by poem's `WebSocket`, for one reason: a
//! frame so large that the transport refuses it unread (over four times
//! [`MAX_FRAME_BYTES`]) leaves its payload unread in the connection, and closing a
//! connection with unread input resets it, taking the 1009 close frame with it
//! (browsers report 1006). With the transport in hand, such a socket sends its
//! close frame, ends its side of the stream and reads the rest away (for at most
//! the close grace) before it closes, so the client reads the 1009.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authgate_core::tokens::IssuedTokens;
use authgate_onetimekey::{Failure, KeyScheme, LoggedIn};
use futures::future::{BoxFuture, OptionFuture};
use futures::{SinkExt, StreamExt};
use poem::error::WebSocketError;
use poem::http::header::{self, HeaderValue};
use poem::http::{Method, StatusCode};
use poem::{Endpoint, Request, Response, Upgraded};
use poem_openapi::OperationId;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep_until, Instant, Sleep};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::api::webphone::LoginTokens;
use crate::errors::WebPhoneFailure;
use crate::server::Stopping;
use crate::state::AppState;

/// One socket's transport.
type Socket = WebSocketStream<Upgraded>;

/// The largest text frame answered (bytes); a larger one closes the socket (1009).
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
/// Frames accepted per second on one socket; more close it (1008). The SDK pings
/// once a second and sends a login now and then.
pub const MAX_FRAMES_PER_SECOND: u32 = 50;
/// A socket that sends nothing for this long is closed (1000).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Requests waiting for their answer on one socket; more close it (1008).
pub const MAX_PENDING: usize = 16;
/// The operation under which upgrades appear in `authgate_http_requests_total`.
pub const OPERATION_ID: &str = "platformWebSocket";

/// How long a close handshake may take before the connection is just dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The transport refuses frames beyond this outright; frames between
/// [`MAX_FRAME_BYTES`] and it get a clean 1009 close.
const TRANSPORT_LIMIT: usize = 4 * MAX_FRAME_BYTES;
/// Parameter limits, the same as the REST bodies' validators.
const MAX_USERNAME: usize = 512;
const MAX_HASH: usize = 64;
const MAX_PASSWORD: usize = 1024;
const MAX_TOKEN: usize = 256;

/// What the endpoint needs besides the shared state.
#[derive(Debug, Clone)]
pub struct Options {
    /// Open sockets per client address; one more is closed at once with 1008.
    pub per_address: usize,
    /// Turns to a deadline when the gateway shuts down: every socket then closes with 1001.
    pub stopping: Stopping,
}

/// The `/platform` endpoint: upgrades to a WebSocket and serves the SDK's protocol.
pub fn endpoint(state: Arc<AppState>, options: Options) -> impl Endpoint {
    Platform {
        state,
        sockets: Arc::new(Sockets {
            per_address: options.per_address.max(1),
            open: Mutex::default(),
        }),
        stopping: options.stopping,
    }
}

struct Platform {
    state: Arc<AppState>,
    sockets: Arc<Sockets>,
    stopping: Stopping,
}

/// Open sockets per client address.
struct Sockets {
    per_address: usize,
    open: Mutex<HashMap<String, usize>>,
}

impl Sockets {
    /// A place for one more socket from `ip`, or `None` when it has its share.
    fn admit(self: &Arc<Self>, ip: &str) -> Option<Place> {
        let mut open = self.open.lock().ok()?;
        let n = open.entry(ip.to_owned()).or_insert(0);
        if *n >= self.per_address {
            return None;
        }
        *n += 1;
        Some(Place {
            sockets: self.clone(),
            ip: ip.to_owned(),
        })
    }
}

/// One socket's place among its address's; given back when dropped.
struct Place {
    sockets: Arc<Sockets>,
    ip: String,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Ok(mut open) = self.sockets.open.lock() {
            if let Some(n) = open.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&self.ip);
                }
            }
        }
    }
}

/// The handshake's key, when `req` is a WebSocket upgrade (RFC 6455 §4.2.1).
fn handshake_key(req: &Request) -> Option<HeaderValue> {
    let headers = req.headers();
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let upgrade = req.method() == Method::GET
        && has(header::UPGRADE, "websocket")
        && has(header::CONNECTION, "upgrade")
        && headers.get(header::SEC_WEBSOCKET_VERSION) == Some(&HeaderValue::from_static("13"));
    upgrade
        .then(|| headers.get(header::SEC_WEBSOCKET_KEY).cloned())
        .flatten()
}

impl Endpoint for Platform {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let key = handshake_key(&req).ok_or(WebSocketError::InvalidProtocol)?;
        let on_upgrade = req.take_upgrade().map_err(WebSocketError::from)?;
        // The address is taken from the upgrade request: a socket keeps it.
        let ip = self.state.client_ip(&req);
        let place = self.sockets.admit(&ip);
        let scheme = self.state.key_scheme.clone();
        let metrics = self.state.metrics.clone();
        let stopping = self.stopping.clone();
        let config = WebSocketConfig::default()
            .max_message_size(Some(TRANSPORT_LIMIT))
            .max_frame_size(Some(TRANSPORT_LIMIT));
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let socket =
                WebSocketStream::from_raw_socket(upgraded, Role::Server, Some(config)).await;
            match place {
                Some(place) => serve(socket, scheme, ip, metrics, stopping, place).await,
                None => {
                    tracing::debug!(target: "authgate::platform", %ip, "too many sockets from one address");
                    close(socket, Closing::Crowded, &ip).await;
                }
            }
        });
        let mut resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(
                header::SEC_WEBSOCKET_ACCEPT,
                derive_accept_key(key.as_bytes()),
            )
            .finish();
        resp.set_data(OperationId(OPERATION_ID));
        Ok(resp)
    }
}

/// Why a socket was closed by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    Malformed,
    Binary,
    TooLarge,
    Flood,
    Backlog,
    Idle,
    /// Too many sockets from the same address.
    Crowded,
    /// The gateway is shutting down.
    GoingAway,
    /// The transport refused what it read (too large, not UTF-8, not WebSocket):
    /// the rest of the input is unread, and must be read away before closing.
    Refused(Refusal),
}

/// What the transport refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    TooLarge,
    Malformed,
    Protocol,
}

impl Closing {
    fn frame(self) -> (CloseCode, &'static str) {
        match self {
            Closing::Malformed | Closing::Refused(Refusal::Malformed) => {
                (CloseCode::Invalid, "malformed frame")
            }
            Closing::Binary => (CloseCode::Unsupported, "text frames only"),
            Closing::TooLarge | Closing::Refused(Refusal::TooLarge) => {
                (CloseCode::Size, "frame too large")
            }
            Closing::Flood => (CloseCode::Policy, "too many frames"),
            Closing::Backlog => (CloseCode::Policy, "too many unanswered requests"),
            Closing::Idle => (CloseCode::Normal, "idle timeout"),
            Closing::Refused(Refusal::Protocol) => (CloseCode::Protocol, "protocol error"),
            Closing::Crowded => (CloseCode::Policy, "too many sockets from this address"),
            Closing::GoingAway => (CloseCode::Away, "the server is shutting down"),
        }
    }
}

/// A request that needs the scheme, answered by one frame.
#[derive(Debug)]
enum Work {
    RequestKey {
        username: String,
    },
    KeyLogin {
        username: String,
        hash: String,
    },
    PasswordLogin {
        username: String,
        password: String,
    },
    TokenLogin {
        username: String,
        access_token: String,
    },
    Refresh {
        username: String,
        refresh_token: String,
    },
    /// A login frame whose parameters make no sense: answered `loginFailed [400]`.
    BadLogin(&'static str),
    /// A refresh frame whose parameters make no sense: `refreshOauthTokenFailed [400]`.
    BadRefresh(&'static str),
}

impl Work {
    /// The frame's name in the request metrics.
    fn operation(&self) -> &'static str {
        match self {
            Work::RequestKey { .. } => "platform.loginGenerateOneTimeKey",
            Work::KeyLogin { .. } => "platform.loginUsingOneTimeKey",
            Work::PasswordLogin { .. } | Work::BadLogin(_) => "platform.login",
            Work::TokenLogin { .. } => "platform.loginWithToken",
            Work::Refresh { .. } | Work::BadRefresh(_) => "platform.refreshOauthToken",
        }
    }
}

/// What a well-formed frame asks for.
#[derive(Debug)]
enum Frame {
    Ping,
    Work(Work),
    Unknown(String),
}

/// Counts frames in one-second windows.
struct FloodGate {
    window_start: Instant,
    count: u32,
}

impl FloodGate {
    fn new() -> Self {
        Self {
            window_start: Instant::now(),
            count: 0,
        }
    }

    /// Counts a frame; false once the window holds too many.
    fn admit(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count <= MAX_FRAMES_PER_SECOND
    }
}

async fn serve(
    mut socket: Socket,
    scheme: KeyScheme,
    ip: String,
    metrics: Arc<crate::metrics::Metrics>,
    mut stopping: Stopping,
    place: Place,
) {
    let _place = place;
    tracing::debug!(target: "authgate::platform", %ip, "web phone socket opened");
    if socket
        .send(Message::text(out("__connectionSuccessful", json!([]))))
        .await
        .is_err()
    {
        return;
    }
    let mut pending: VecDeque<Work> = VecDeque::new();
    let mut running: Option<BoxFuture<'static, String>> = None;
    let mut idle: Pin<Box<Sleep>> = Box::pin(sleep_until(Instant::now() + IDLE_TIMEOUT));
    let mut flood = FloodGate::new();
    let closing = loop {
        if running.is_none() {
            if let Some(work) = pending.pop_front() {
                let (scheme, ip, metrics) = (scheme.clone(), ip.clone(), metrics.clone());
                running = Some(Box::pin(async move {
                    let started = Instant::now();
                    let operation = work.operation();
                    let (reply, status) = answer(&scheme, &ip, work).await;
                    metrics.request(operation, status, started.elapsed());
                    reply
                }));
            }
        }
        tokio::select! {
            Some(reply) = OptionFuture::from(running.as_mut()), if running.is_some() => {
                running = None;
                if socket.send(Message::text(reply)).await.is_err() {
                    break None;
                }
            }
            () = idle.as_mut() => break Some(Closing::Idle),
            // A dropped sender means the server is gone without a shutdown: the same.
            _ = crate::server::stopped(&mut stopping) => break Some(Closing::GoingAway),
            frame = socket.next() => {
                let msg = match frame {
                    None => break None,
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => {
                        // The transport's own limit, or a broken connection.
                        tracing::debug!(target: "authgate::platform", %ip, error = %e, "web phone socket read failed");
                        break read_failure(&e);
                    }
                };
                let now = Instant::now();
                idle.as_mut().reset(now + IDLE_TIMEOUT);
                if !flood.admit(now) {
                    break Some(Closing::Flood);
                }
                let text = match msg {
                    Message::Text(text) => text,
                    Message::Binary(_) => break Some(Closing::Binary),
                    Message::Close(_) => break None,
                    // The transport answers pings itself.
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                };
                if text.len() > MAX_FRAME_BYTES {
                    break Some(Closing::TooLarge);
                }
                match parse(text.as_str()) {
                    None => break Some(Closing::Malformed),
                    Some(Frame::Ping) => {
                        if socket.send(Message::text(out("__pong", json!([])))).await.is_err() {
                            break None;
                        }
                    }
                    Some(Frame::Unknown(name)) => {
                        let name: String = name.chars().take(64).collect();
                        tracing::debug!(target: "authgate::platform", %ip, ?name, "ignored an unknown web phone frame");
                    }
                    Some(Frame::Work(work)) => {
                        if pending.len() >= MAX_PENDING {
                            break Some(Closing::Backlog);
                        }
                        pending.push_back(work);
                    }
                }
            }
        }
    };
    match closing {
        Some(why) => close(socket, why, &ip).await,
        None => {
            let _ = tokio::time::timeout(CLOSE_GRACE, socket.close(None)).await;
        }
    }
    tracing::debug!(target: "authgate::platform", %ip, "web phone socket closed");
}

/// Closes `socket` with the close frame `why` stands for, within [`CLOSE_GRACE`].
///
/// After a frame the transport read whole, it waits for the client's close frame,
/// as the protocol has it. After one it refused, the rest of the input is not
/// frames: it sends its close frame, ends its side of the stream, and reads and
/// drops whatever comes until the client closes too, so that the connection is
/// closed with nothing unread (which would reset it, the close frame with it).
async fn close(mut socket: Socket, why: Closing, ip: &str) {
    let (code, reason) = why.frame();
    tracing::debug!(target: "authgate::platform", %ip, ?why, "closing a web phone socket");
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let sent = socket.send(frame).await;
        if let Closing::Refused(_) = why {
            // The transport may have queued a close of its own instead of ours.
            let _ = socket.flush().await;
            let io = socket.get_mut();
            io.shutdown().await?;
            let mut sink = vec![0u8; 16 * 1024];
            while io.read(&mut sink).await? > 0 {}
        } else if sent.is_ok() {
            // Read until the client's close answer, so the TCP close is clean.
            while let Some(Ok(msg)) = socket.next().await {
                if msg.is_close() {
                    break;
                }
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Whether and how to close after a failed read.
fn read_failure(e: &WsError) -> Option<Closing> {
    match e {
        WsError::Capacity(_) => Some(Closing::Refused(Refusal::TooLarge)),
        WsError::Utf8(_) => Some(Closing::Refused(Refusal::Malformed)),
        WsError::Protocol(_) | WsError::AttackAttempt => Some(Closing::Refused(Refusal::Protocol)),
        // The connection is gone: nobody to tell.
        _ => None,
    }
}

/// An outgoing frame.
fn out(name: &str, params: Value) -> String {
    json!({"name": name, "params": params}).to_string()
}

/// Reads a frame: `None` when it is not `{"name": string, "params": array}`.
fn parse(text: &str) -> Option<Frame> {
    let mut value: Value = serde_json::from_str(text).ok()?;
    let obj = value.as_object_mut()?;
    let name = obj.get("name")?.as_str()?.to_owned();
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(params)) => params,
        Some(_) => return None,
    };
    Some(match name.as_str() {
        "__ping" => Frame::Ping,
        "loginGenerateOneTimeKey" => Frame::Work(login_params(&params, |u, _, _| {
            Ok(Work::RequestKey { username: u })
        })),
        "loginUsingOneTimeKey" => Frame::Work(login_params(&params, |username, hash, _| {
            let hash = text_param(hash, MAX_HASH).ok_or("hash must be a string")?;
            Ok(Work::KeyLogin { username, hash })
        })),
        "login" => Frame::Work(login_params(&params, |username, secret, options| {
            let password = text_param(secret, MAX_PASSWORD).ok_or("password must be a string")?;
            let token = options.and_then(|o| o.get("accessToken"));
            match token {
                // loginWithToken sends an empty password and the token in the options.
                Some(t) if password.is_empty() => Ok(Work::TokenLogin {
                    username,
                    access_token: text_param(Some(t), MAX_TOKEN)
                        .ok_or("accessToken must be a string")?,
                }),
                _ => Ok(Work::PasswordLogin { username, password }),
            }
        })),
        "refreshOauthToken" => Frame::Work(refresh_params(&params)),
        _ => Frame::Unknown(name),
    })
}

/// A string parameter of at most `max` bytes.
fn text_param(v: Option<&Value>, max: usize) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| s.len() <= max)
        .map(str::to_owned)
}

/// `[username, secret?, options?]` of a login frame, handed to `build`.
fn login_params(
    params: &[Value],
    build: impl FnOnce(String, Option<&Value>, Option<&Value>) -> Result<Work, &'static str>,
) -> Work {
    let Some(username) = text_param(params.first(), MAX_USERNAME) else {
        return Work::BadLogin("username must be a string");
    };
    build(username, params.get(1), params.get(2)).unwrap_or_else(Work::BadLogin)
}

/// `[username, refreshToken]` or `[username, {refreshToken, deviceToken}]`.
fn refresh_params(params: &[Value]) -> Work {
    let Some(username) = text_param(params.first(), MAX_USERNAME) else {
        return Work::BadRefresh("username must be a string");
    };
    let token = match params.get(1) {
        Some(Value::Object(o)) => o.get("refreshToken"),
        other => other,
    };
    match text_param(token, MAX_TOKEN) {
        Some(refresh_token) => Work::Refresh {
            username,
            refresh_token,
        },
        None => Work::BadRefresh("refreshToken must be a string"),
    }
}

/// Runs one request on the scheme and renders its answer frame, with the code
/// it stands for (200 for success, else the scheme's code).
async fn answer(scheme: &KeyScheme, ip: &str, work: Work) -> (String, u16) {
    match work {
        Work::RequestKey { username } => match scheme.request_key(&username, ip).await {
            // The SDK reads a key as a "failed" login with code 302.
            Ok(key) => (out("loginFailed", json!([302, key])), 200),
            Err(f) => login_failed(f),
        },
        Work::KeyLogin { username, hash } => {
            login_answer(scheme.login_with_key(&username, &hash, ip).await)
        }
        Work::PasswordLogin { username, password } => {
            login_answer(scheme.login_with_password(&username, &password, ip).await)
        }
        Work::TokenLogin {
            username,
            access_token,
        } => login_answer(scheme.login_with_token(&username, &access_token, ip).await),
        Work::Refresh {
            username,
            refresh_token,
        } => match scheme.refresh(&username, &refresh_token, ip).await {
            Ok(tokens) => (
                out(
                    "refreshOauthTokenSuccessful",
                    json!([{ "OAuth": oauth(tokens) }]),
                ),
                200,
            ),
            Err(f) => {
                let c = WebPhoneFailure::from(f).code;
                (out("refreshOauthTokenFailed", json!([c])), c)
            }
        },
        Work::BadLogin(reason) => {
            tracing::debug!(target: "authgate::platform", reason, "malformed login parameters");
            (out("loginFailed", json!([400])), 400)
        }
        Work::BadRefresh(reason) => {
            tracing::debug!(target: "authgate::platform", reason, "malformed refresh parameters");
            (out("refreshOauthTokenFailed", json!([400])), 400)
        }
    }
}

fn login_answer(outcome: Result<LoggedIn, Failure>) -> (String, u16) {
    match outcome {
        Ok(l) => (
            out(
                "loginSuccessful",
                json!([l.display_name, {
                    "OAuth": oauth(l.tokens),
                    // No media relays here; the SDK needs the field to be present.
                    "iceConfig": {"iceServers": []},
                }]),
            ),
            200,
        ),
        Err(f) => login_failed(f),
    }
}

fn login_failed(f: Failure) -> (String, u16) {
    let c = WebPhoneFailure::from(f).code;
    (out("loginFailed", json!([c])), c)
}

/// The SDK's `OAuth` object: the REST `LoginTokens`, field for field.
fn oauth(tokens: IssuedTokens) -> Value {
    let t = LoginTokens::from(tokens);
    json!({
        "accessToken": t.access_token,
        "accessExpire": t.access_expire,
        "refreshToken": t.refresh_token,
        "refreshExpire": t.refresh_expire,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn work(text: &str) -> Work {
        match parse(text) {
            Some(Frame::Work(w)) => w,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn frames_that_are_not_a_name_and_a_params_array_are_malformed() {
        for text in [
            "",
            "{",
            "[]",
            "42",
            r#"{"params": []}"#,
            r#"{"name": 7, "params": []}"#,
            r#"{"name": "__ping", "params": {}}"#,
        ] {
            assert!(parse(text).is_none(), "{text}");
        }
    }

    #[test]
    fn the_sdk_frames_map_to_the_scheme_calls() {
        assert!(matches!(
            parse(r#"{"name":"__ping","params":[[]]}"#),
            Some(Frame::Ping)
        ));
        assert!(matches!(
            work(r#"{"name":"loginGenerateOneTimeKey","params":["u@a.b"]}"#),
            Work::RequestKey { .. }
        ));
        assert!(matches!(
            work(r#"{"name":"loginUsingOneTimeKey","params":["u@a.b","00",{}]}"#),
            Work::KeyLogin { .. }
        ));
        assert!(matches!(
            work(r#"{"name":"login","params":["u@a.b","pw",{}]}"#),
            Work::PasswordLogin { .. }
        ));
        match work(r#"{"name":"login","params":["u@a.b","",{"accessToken":"t"}]}"#) {
            Work::TokenLogin { access_token, .. } => assert_eq!(access_token, "t"),
            other => panic!("{other:?}"),
        }
        for params in [
            r#"["u@a.b","r"]"#,
            r#"["u@a.b",{"refreshToken":"r","deviceToken":"d"}]"#,
        ] {
            match work(&format!(
                r#"{{"name":"refreshOauthToken","params":{params}}}"#
            )) {
                Work::Refresh { refresh_token, .. } => assert_eq!(refresh_token, "r"),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            parse(r#"{"name":"setOperatorACDStatus","params":["READY"]}"#),
            Some(Frame::Unknown(n)) if n == "setOperatorACDStatus"
        ));
    }

    #[test]
    fn login_frames_with_wrong_parameters_are_still_answered() {
        assert!(matches!(
            work(r#"{"name":"login","params":[]}"#),
            Work::BadLogin(_)
        ));
        assert!(matches!(
            work(r#"{"name":"loginUsingOneTimeKey","params":["u@a.b", 5]}"#),
            Work::BadLogin(_)
        ));
        assert!(matches!(
            work(r#"{"name":"refreshOauthToken","params":["u@a.b", {}]}"#),
            Work::BadRefresh(_)
        ));
    }

    #[test]
    fn the_flood_gate_admits_the_limit_per_second() {
        let mut gate = FloodGate::new();
        let t0 = gate.window_start;
        for _ in 0..MAX_FRAMES_PER_SECOND {
            assert!(gate.admit(t0));
        }
        assert!(!gate.admit(t0 + Duration::from_millis(999)));
        assert!(gate.admit(t0 + Duration::from_secs(1)));
    }
}
