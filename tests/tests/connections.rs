//! Connection hygiene, black box over real sockets: read timeouts for heads and
//! bodies, the idle keep-alive timeout, the cap on open connections, the
//! `/platform` socket's per-address cap and its close codes (1008, 1009, 1001),
//! graceful shutdown, and `/metrics` on an address of its own.
//!
//! Every gateway here runs on the memory store; the timeouts are set short, and
//! every wait is bounded by them plus a margin for a busy machine.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use authgate_tests::{spawn_app_with, TestApp};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What a busy, shared machine may add to any deadline.
const MARGIN: Duration = Duration::from_secs(3);
/// The longest any other single wait may take.
const WAIT: Duration = Duration::from_secs(10);

/// How a raw connection ended, as its client saw it.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The server closed it (FIN, or a reset), after sending these bytes.
    Closed(String),
    /// Still open when the wait was over, after sending these bytes.
    Open(String),
}

async fn connect(addr: SocketAddr) -> TcpStream {
    timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Reads until the server closes the connection or `within` has passed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> End {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return End::Open(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return End::Closed(String::from_utf8_lossy(&got).into_owned())
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one whole response (head and `content-length` body) off a keep-alive
/// connection; its head and body.
async fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_owned();
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&got[end + 4..end + 4 + length]).into_owned();
                return (head, body);
            }
        }
        let n = timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(n > 0, "closed before a whole response: {text:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

const LIVE: &[u8] = b"GET /health/live HTTP/1.1\r\nHost: gateway\r\n\r\n";

/// `/health/live` on a new connection answers 200 (the gateway still serves).
async fn serves(addr: SocketAddr) -> bool {
    let Ok(Ok(mut stream)) = timeout(WAIT, TcpStream::connect(addr)).await else {
        return false;
    };
    if stream.write_all(LIVE).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(
        timeout(WAIT, stream.read(&mut buf)).await,
        Ok(Ok(n)) if n > 0 && buf[..n].starts_with(b"HTTP/1.1 200")
    )
}

#[tokio::test]
async fn a_head_that_does_not_arrive_whole_in_time_is_cut_off() {
    let limit = Duration::from_millis(800);
    let app = spawn_app_with(None, |c| c.header_read_timeout = limit).await;
    let started = Instant::now();
    // Half a header line; nothing at all; and a head sent a byte at a time, each
    // byte well within the timeout, the whole not.
    let mut half = connect(app.addr).await;
    half.write_all(b"GET /health/live HTTP/1.1\r\nHost: gat")
        .await
        .unwrap();
    let mut silent = connect(app.addr).await;
    let trickle = connect(app.addr).await;
    let (mut trickle_read, mut trickle_write) = trickle.into_split();
    let trickler = tokio::spawn(async move {
        for byte in b"GET /health/live HTTP/1.1\r\nHost: gateway\r\nAccept: */*\r\n\r\n" {
            if trickle_write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    for (name, stream) in [("half a line", &mut half), ("nothing", &mut silent)] {
        let end = read_until_closed(stream, limit + MARGIN).await;
        assert_eq!(end, End::Closed(String::new()), "{name}");
    }
    let mut buf = Vec::new();
    let trickled = timeout(limit + MARGIN, trickle_read.read_to_end(&mut buf)).await;
    assert!(
        matches!(trickled, Ok(Ok(_)) | Ok(Err(_))),
        "the trickling head is still open"
    );
    assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));
    let took = started.elapsed();
    assert!(
        took >= limit - Duration::from_millis(100),
        "closed after {took:?}, before the timeout"
    );
    trickler.abort();
    // Whole heads are served as ever, on new connections and on kept-alive ones.
    let mut kept = connect(app.addr).await;
    for _ in 0..2 {
        kept.write_all(LIVE).await.unwrap();
        let (head, _) = read_response(&mut kept).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    // A later request's head on a kept-alive connection is held to it too.
    kept.write_all(b"GET /health/live HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let end = read_until_closed(&mut kept, limit + MARGIN).await;
    assert_eq!(end, End::Closed(String::new()));
}

#[tokio::test]
async fn a_body_that_does_not_arrive_whole_in_time_gets_408_and_the_connection_closes() {
    let limit = Duration::from_millis(800);
    let app = spawn_app_with(None, |c| c.body_read_timeout = limit).await;
    let mut stream = connect(app.addr).await;
    let started = Instant::now();
    stream
        .write_all(
            b"POST /v1/login/one-time-key/request HTTP/1.1\r\nHost: gateway\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\": ",
        )
        .await
        .unwrap();
    let end = read_until_closed(&mut stream, limit + MARGIN).await;
    let took = started.elapsed();
    let End::Closed(text) = end else {
        panic!("still open after {took:?}: {end:?}")
    };
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    // In the dialect of the path: the web phone's.
    let body: Value = serde_json::from_str(&text[text.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["code"], 408, "{body}");
    assert!(took >= limit - Duration::from_millis(100), "{took:?}");
    // A body that arrives in time is read as ever.
    let body = json!({"username": "u@app.acct.voximplant.com"});
    let (status, answer) = app.post("/v1/login/one-time-key/request", &body).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_keep_alive_connection_waiting_too_long_for_its_next_request_is_closed() {
    let app = spawn_app_with(None, |c| c.idle_timeout = Duration::from_secs(1)).await;
    let mut stream = connect(app.addr).await;
    for _ in 0..2 {
        stream.write_all(LIVE).await.unwrap();
        let (head, body) = read_response(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body.contains("ok"), "{body}");
    }
    let idle_since = Instant::now();
    let end = read_until_closed(&mut stream, Duration::from_secs(1) + MARGIN).await;
    assert_eq!(end, End::Closed(String::new()));
    let took = idle_since.elapsed();
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
}

#[tokio::test]
async fn connections_over_the_cap_are_answered_503_at_once_until_one_closes() {
    let app = spawn_app_with(None, |c| c.max_connections = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(app.addr).await);
    }
    // Let the gateway accept them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let mut over = connect(app.addr).await;
        over.write_all(LIVE).await.unwrap();
        let started = Instant::now();
        let end = read_until_closed(&mut over, MARGIN).await;
        let End::Closed(text) = end else {
            panic!("over the cap, still open: {end:?}")
        };
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("retry-after: 1"),
            "{text}"
        );
        assert!(started.elapsed() < MARGIN);
    }
    // The ones under the cap are served.
    held[0].write_all(LIVE).await.unwrap();
    let (head, _) = read_response(&mut held[0]).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // One closes: a new one is served.
    drop(held.pop());
    let deadline = Instant::now() + MARGIN;
    while !serves(app.addr).await {
        assert!(Instant::now() < deadline, "no place freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn platform_url(app: &TestApp) -> String {
    format!("ws://{}/platform?version=3&client=chrome", app.addr)
}

/// Opens a `/platform` socket, with `forwarded` as `X-Forwarded-For` if any.
async fn open_socket(app: &TestApp, forwarded: Option<&str>) -> Ws {
    let mut req = platform_url(app).into_client_request().unwrap();
    if let Some(f) = forwarded {
        req.headers_mut()
            .insert("x-forwarded-for", f.parse().unwrap());
    }
    let (ws, resp) = timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("upgrade in time")
        .expect("the upgrade succeeds");
    assert_eq!(resp.status(), 101);
    ws
}

/// How a socket went on.
#[derive(Debug, PartialEq)]
enum Next {
    /// A text frame.
    Text(Value),
    /// A close frame with this code.
    Closed(CloseCode),
    /// The connection ended without a close frame (a reset, or just a FIN).
    Dropped(String),
}

async fn next(ws: &mut Ws) -> Next {
    loop {
        match timeout(WAIT, ws.next()).await.expect("a frame in time") {
            Some(Ok(Message::Text(t))) => return Next::Text(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(Some(frame)))) => return Next::Closed(frame.code),
            Some(Ok(Message::Close(None))) => return Next::Dropped("close without code".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Next::Dropped(e.to_string()),
            None => return Next::Dropped("end of stream".into()),
        }
    }
}

fn greeting() -> Next {
    Next::Text(json!({"name": "__connectionSuccessful", "params": []}))
}

#[tokio::test]
async fn an_oversized_frame_ends_with_a_1009_close_the_client_reads() {
    let app = spawn_app_with(None, |_| {}).await;
    // Far over the transport's limit (refused unread), just over it, and between it
    // and the frame limit. As a browser does, the client sends its frame whole
    // before it reads: a connection reset while it sends (the gateway closing with
    // the frame unread) would end the socket there, with 1006.
    for size in [32 << 20, 8 << 20, 1 << 20, 300 << 10, 40 << 10] {
        let mut ws = open_socket(&app, None).await;
        assert_eq!(next(&mut ws).await, greeting());
        let sent = timeout(WAIT, ws.send(Message::text("y".repeat(size))))
            .await
            .expect("sent in time");
        assert!(sent.is_ok(), "{size}: {sent:?}");
        assert_eq!(next(&mut ws).await, Next::Closed(CloseCode::Size), "{size}");
    }
    // The gateway serves on.
    let mut ws = open_socket(&app, None).await;
    assert_eq!(next(&mut ws).await, greeting());
}

#[tokio::test]
async fn sockets_beyond_the_per_address_cap_are_closed_with_1008() {
    let app = spawn_app_with(None, |c| c.platform_sockets_per_address = 2).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut ws = open_socket(&app, None).await;
        assert_eq!(next(&mut ws).await, greeting());
        open.push(ws);
    }
    for _ in 0..2 {
        let mut over = open_socket(&app, None).await;
        assert_eq!(next(&mut over).await, Next::Closed(CloseCode::Policy));
    }
    // The two still answer.
    for ws in &mut open {
        ws.send(Message::text(r#"{"name":"__ping","params":[[]]}"#))
            .await
            .unwrap();
        assert_eq!(
            next(ws).await,
            Next::Text(json!({"name": "__pong", "params": []}))
        );
    }
    // One closes: its place is free again.
    let mut gone = open.pop().unwrap();
    gone.close(None).await.unwrap();
    while let Ok(Some(_)) = timeout(WAIT, gone.next()).await {}
    let deadline = Instant::now() + MARGIN;
    loop {
        let mut ws = open_socket(&app, None).await;
        match next(&mut ws).await {
            n if n == greeting() => break,
            n => {
                assert!(Instant::now() < deadline, "no place freed: {n:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test]
async fn the_per_address_cap_counts_the_client_address_behind_a_trusted_proxy() {
    let app = spawn_app_with(None, |c| {
        c.platform_sockets_per_address = 1;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let mut first = open_socket(&app, Some("203.0.113.7")).await;
    assert_eq!(next(&mut first).await, greeting());
    let mut same = open_socket(&app, Some("198.51.100.1, 203.0.113.7")).await;
    assert_eq!(next(&mut same).await, Next::Closed(CloseCode::Policy));
    let mut other = open_socket(&app, Some("203.0.113.8")).await;
    assert_eq!(next(&mut other).await, greeting());
}

#[tokio::test]
async fn shutdown_closes_open_sockets_with_1001() {
    let mut app = spawn_app_with(None, |_| {}).await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut ws = open_socket(&app, None).await;
        assert_eq!(next(&mut ws).await, greeting());
        sockets.push(ws);
    }
    let started = Instant::now();
    app.shut_down();
    for ws in &mut sockets {
        assert_eq!(next(ws).await, Next::Closed(CloseCode::Away));
    }
    assert!(app.stopped(WAIT).await, "the gateway did not stop");
    assert!(started.elapsed() < MARGIN, "{:?}", started.elapsed());
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_refuses_new_connections() {
    let mut app = spawn_app_with(None, |c| c.shutdown_grace = Duration::from_secs(10)).await;
    // A request in flight: its head is in, its body half.
    let mut in_flight = connect(app.addr).await;
    let body = br#"{"username": "u@app.acct.voximplant.com"}"#;
    let head = format!(
        "POST /v1/login/one-time-key/request HTTP/1.1\r\nHost: gateway\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(&body[..10]).await.unwrap();
    // A kept-alive connection between requests, and one still sending its head.
    let mut idle = connect(app.addr).await;
    idle.write_all(LIVE).await.unwrap();
    read_response(&mut idle).await;
    let mut heading = connect(app.addr).await;
    heading.write_all(b"GET /health/li").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    app.shut_down();
    // The idle and the unfinished head are closed at once, with nothing sent.
    for stream in [&mut idle, &mut heading] {
        assert_eq!(
            read_until_closed(stream, MARGIN).await,
            End::Closed(String::new())
        );
    }
    // No new connection is accepted.
    let refused = timeout(WAIT, TcpStream::connect(app.addr)).await.unwrap();
    assert!(
        refused.is_err(),
        "a connection was accepted while shutting down"
    );
    // The request in flight is answered whole, and its connection closed after.
    in_flight.write_all(&body[10..]).await.unwrap();
    let End::Closed(text) = read_until_closed(&mut in_flight, WAIT).await else {
        panic!("the request in flight was not answered and closed");
    };
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let answer: Value = serde_json::from_str(&text[text.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(answer["code"], 302, "{answer}");
    assert!(app.stopped(WAIT).await, "the gateway did not stop");
    assert!(started.elapsed() < MARGIN, "{:?}", started.elapsed());
}

#[tokio::test]
async fn the_metrics_address_serves_metrics_and_probes_and_the_main_one_no_metrics() {
    let app = spawn_app_with(None, |c| {
        c.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let metrics = app.metrics_addr.expect("a metrics address");
    assert_ne!(metrics, app.addr);
    assert_eq!(app.get_raw("/health/live").await.status(), 200);
    let get = |path: &str| {
        let url = format!("http://{metrics}{path}");
        let http = app.http.clone();
        async move { http.get(url).send().await.expect("request") }
    };
    let scrape = get("/metrics").await;
    assert_eq!(scrape.status(), 200);
    let text = scrape.text().await.unwrap();
    assert!(text.contains("authgate_http_requests_total"), "{text}");
    assert!(text.contains("authgate_connections_open"), "{text}");
    assert_eq!(get("/health/live").await.status(), 200);
    assert_eq!(get("/health/ready").await.status(), 200);
    for path in ["/v1/auth/verify", "/openapi.json", "/platform", "/"] {
        assert_eq!(get(path).await.status(), 404, "{path}");
    }
    let public = app.get_raw("/metrics").await;
    assert_eq!(public.status(), 404);
    // Unset, /metrics stays where it was.
    let plain = spawn_app_with(None, |_| {}).await;
    assert!(plain.metrics_addr.is_none());
    let scrape = plain.get_raw("/metrics").await;
    assert_eq!(scrape.status(), 200);
    let text = scrape.text().await.unwrap();
    assert!(text.contains("authgate_connections_open 1"), "{text}");
}
