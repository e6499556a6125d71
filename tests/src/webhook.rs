//! A real HTTP webhook receiver on loopback that records what it is sent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{handler, post, EndpointExt, Request, Response, Route, Server};
use serde_json::Value;
use tokio::sync::{oneshot, Notify};

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Headers, names lowercase.
    pub headers: HashMap<String, String>,
    /// The raw body.
    pub raw: Vec<u8>,
    /// The body as JSON.
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Clone)]
struct Shared {
    received: Arc<Mutex<Vec<Delivery>>>,
    notify: Arc<Notify>,
    status: Arc<AtomicU16>,
}

/// A receiver listening on a loopback port.
pub struct Receiver {
    /// Where to send deliveries.
    pub url: String,
    /// The port (kept across [`Receiver::stop`] and [`Receiver::start_on`]).
    pub port: u16,
    shared: Shared,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[handler]
async fn receive(req: &Request, body: Vec<u8>, shared: Data<&Shared>) -> Response {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let parsed = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let status = shared.status.load(Ordering::SeqCst);
    if (200..300).contains(&status) {
        shared.received.lock().unwrap().push(Delivery {
            headers,
            raw: body,
            body: parsed,
            at: Instant::now(),
        });
        shared.notify.notify_waiters();
    }
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .body(if (200..300).contains(&status) {
            "thanks"
        } else {
            "not now"
        })
}

impl Receiver {
    /// A receiver on a free port answering 200.
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// A receiver on `port` (0 for a free one).
    pub async fn start_on(port: u16) -> Self {
        let shared = Shared {
            received: Arc::default(),
            notify: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
        };
        let acceptor = TcpListener::bind(format!("127.0.0.1:{port}"))
            .into_acceptor()
            .await
            .expect("bind receiver");
        let port = acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("socket")
            .port();
        let app = Route::new().at("/hook", post(receive)).data(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    app,
                    async {
                        let _ = rx.await;
                    },
                    Some(Duration::from_millis(100)),
                )
                .await;
        });
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            port,
            shared,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Answers `status` from now on (non-2xx deliveries are not recorded).
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Delivery> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until `n` deliveries have arrived, at most `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + within;
        loop {
            let notified = self.shared.notify.notified();
            let got = self.received();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            let _ = tokio::time::timeout(
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100)),
                notified,
            )
            .await;
        }
    }

    /// Stops listening (the port is closed: deliveries fail to connect).
    pub async fn stop(mut self) -> u16 {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.port
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
