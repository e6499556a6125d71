//! What the `/platform` socket must do with each frame (SPEC §1b and
//! `crates/gateway/src/platform.rs`), and a client that sends frames one at a
//! time and checks the answers: shared by the proptest run (`properties.rs`)
//! and the cargo-fuzz target (`fuzz/fuzz_targets/platform_frame.rs`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use authgate_gateway::platform::MAX_FRAME_BYTES;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(10);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A frame sent to the socket.
#[derive(Debug, Clone)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

/// What the SDK protocol says a frame gets (SPEC §1b, `platform.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// One answer frame, of one of these names.
    Answer(&'static [&'static str]),
    /// A pong.
    Pong,
    /// Nothing: an unknown name is ignored.
    Nothing,
    /// The socket is closed with this code.
    Close(CloseCode),
}

const LOGIN_ANSWERS: &[&str] = &["loginFailed", "loginSuccessful"];
const REFRESH_ANSWERS: &[&str] = &["refreshOauthTokenFailed", "refreshOauthTokenSuccessful"];

pub fn expect(frame: &Frame) -> Expect {
    let text = match frame {
        Frame::Binary(_) => return Expect::Close(CloseCode::Unsupported),
        Frame::Text(t) => t,
    };
    if text.len() > MAX_FRAME_BYTES {
        return Expect::Close(CloseCode::Size);
    }
    let malformed = Expect::Close(CloseCode::Invalid);
    let Ok(Value::Object(o)) = serde_json::from_str::<Value>(text) else {
        return malformed;
    };
    let Some(Value::String(name)) = o.get("name") else {
        return malformed;
    };
    if !matches!(
        o.get("params"),
        None | Some(Value::Null) | Some(Value::Array(_))
    ) {
        return malformed;
    }
    match name.as_str() {
        "__ping" => Expect::Pong,
        "loginGenerateOneTimeKey" | "loginUsingOneTimeKey" | "login" => {
            Expect::Answer(LOGIN_ANSWERS)
        }
        "refreshOauthToken" => Expect::Answer(REFRESH_ANSWERS),
        _ => Expect::Nothing,
    }
}

/// One SDK connection at a time, replaced when the gateway closes it and
/// after a few frames (the socket takes at most 50 frames a second).
pub struct Client {
    addr: std::net::SocketAddr,
    ws: Option<Ws>,
    cases: usize,
    /// How many frames got each kind of outcome: an answer, a pong, nothing,
    /// a close.
    pub seen: [usize; 4],
}

pub const CASES_PER_SOCKET: usize = 20;

impl Client {
    /// A client of the gateway at `addr`; it connects on its first case.
    pub fn new(addr: std::net::SocketAddr) -> Self {
        Self {
            addr,
            ws: None,
            cases: 0,
            seen: [0; 4],
        }
    }

    async fn socket(&mut self) -> Result<&mut Ws, String> {
        if self.cases >= CASES_PER_SOCKET {
            if let Some(mut ws) = self.ws.take() {
                let _ = timeout(WAIT, ws.close(None)).await;
                while let Ok(Some(Ok(_))) = timeout(WAIT, ws.next()).await {}
            }
        }
        if self.ws.is_none() {
            let url = format!("ws://{}/platform?version=3&client=chrome", self.addr);
            let (mut ws, _) = timeout(WAIT, tokio_tungstenite::connect_async(url))
                .await
                .map_err(|_| "connect timed out".to_owned())?
                .map_err(|e| format!("connect: {e}"))?;
            let greeting = next_text(&mut ws).await?;
            if greeting["name"] != "__connectionSuccessful" {
                return Err(format!("greeting: {greeting}"));
            }
            self.ws = Some(ws);
            self.cases = 0;
        }
        self.cases += 1;
        Ok(self.ws.as_mut().expect("just opened"))
    }

    /// Sends `frame` (then a ping, unless the frame must close the socket) and
    /// checks that the gateway does what the protocol says. After a failure the
    /// next case starts on a new socket.
    pub async fn case(&mut self, frame: &Frame) -> Result<(), String> {
        let result = self.try_case(frame).await;
        if result.is_err() {
            self.ws = None;
        }
        result
    }

    async fn try_case(&mut self, frame: &Frame) -> Result<(), String> {
        let want = expect(frame);
        self.seen[match want {
            Expect::Answer(_) => 0,
            Expect::Pong => 1,
            Expect::Nothing => 2,
            Expect::Close(_) => 3,
        }] += 1;
        let ws = self.socket().await?;
        let msg = match frame {
            Frame::Text(t) => Message::text(t.clone()),
            Frame::Binary(b) => Message::binary(b.clone()),
        };
        send(ws, msg).await?;
        if let Expect::Close(code) = want {
            let got = closed(ws).await;
            self.ws = None;
            return match got {
                Some(c) if c == code => Ok(()),
                other => Err(format!("wanted a {code:?} close, got {other:?}")),
            };
        }
        send(ws, Message::text(r#"{"name":"__ping","params":[]}"#)).await?;
        // A ping frame gets its pong before the sentinel's; a login or refresh
        // its answer, before or after the sentinel's pong (pings are answered at
        // once, even while a login runs).
        let mut answers = Vec::new();
        let mut pongs = 0;
        let pongs_needed = if want == Expect::Pong { 2 } else { 1 };
        let needed = usize::from(matches!(want, Expect::Answer(_)));
        while pongs < pongs_needed || answers.len() < needed {
            let frame = next_text(ws).await?;
            if frame == serde_json::json!({"name": "__pong", "params": []}) {
                pongs += 1;
            } else {
                answers.push(frame);
            }
            if pongs > pongs_needed {
                return Err(format!("{pongs} pongs, wanted {pongs_needed}"));
            }
        }
        match want {
            Expect::Answer(names) => {
                let a = &answers[0];
                let name = a["name"].as_str().unwrap_or_default();
                if answers.len() != 1 || !names.contains(&name) || !a["params"].is_array() {
                    return Err(format!("wanted one of {names:?}, got {answers:?}"));
                }
            }
            _ if !answers.is_empty() => return Err(format!("wanted no answer, got {answers:?}")),
            _ => {}
        }
        Ok(())
    }
}

async fn send(ws: &mut Ws, msg: Message) -> Result<(), String> {
    timeout(WAIT, ws.send(msg))
        .await
        .map_err(|_| "send timed out".to_owned())?
        .map_err(|e| format!("send: {e}"))
}

/// The next text frame, parsed; an error when the socket ends instead.
async fn next_text(ws: &mut Ws) -> Result<Value, String> {
    loop {
        match timeout(WAIT, ws.next()).await {
            Err(_) => return Err("no frame in time".into()),
            Ok(Some(Ok(Message::Text(t)))) => {
                return serde_json::from_str(&t).map_err(|e| format!("{e}: {t}"))
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => return Err(format!("the socket ended: {other:?}")),
        }
    }
}

/// The close code the gateway sent, or `None` when the socket just dropped.
async fn closed(ws: &mut Ws) -> Option<CloseCode> {
    let mut code = None;
    loop {
        match timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => code = Some(f.code),
            Ok(Some(Ok(Message::Close(None)))) => return code,
            Ok(Some(Ok(_))) => continue,
            // The end after the close handshake.
            Ok(None) | Ok(Some(Err(_))) | Err(_) => return code,
        }
    }
}
