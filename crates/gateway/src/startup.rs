//! Building and running one gateway instance.
//!
//! [`Application::build`] connects the store, bootstraps shared values and binds the
//! listener (port 0 picks a free port, which [`Application::port`] reports);
//! [`Application::run_until`] serves until the caller's shutdown future resolves.
//! Nothing is global, so a test can run as many instances as it likes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use authgate_delivery::Worker;
use futures::StreamExt;
use poem::endpoint::BoxEndpoint;
use poem::http::{Method, StatusCode};
use poem::listener::{
    Acceptor, AcceptorExt, BoxAcceptor, Listener, RustlsCertificate, RustlsConfig, TcpListener,
};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Route, Server};
use secrecy::ExposeSecret;
use tokio::io::AsyncReadExt;

use crate::api;
use crate::api::document::Routes;
use crate::config::Config;
use crate::cors::{cors, CorsPolicy};
use crate::errors::dialect_errors;
use crate::state::{AppState, Generated};

/// A bound, ready-to-run gateway.
pub struct Application {
    acceptor: BoxAcceptor,
    addr: SocketAddr,
    tls: bool,
    state: Arc<AppState>,
    app: BoxEndpoint<'static>,
    generated: Generated,
    delivery_worker: bool,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// All routes of the gateway: CORS outermost (so errors carry it too), then the
/// dialects' error shapes, metrics, and the body limit.
pub fn routes(
    state: Arc<AppState>,
    max_body_bytes: usize,
    cors_policy: Option<CorsPolicy>,
) -> anyhow::Result<impl Endpoint<Output = poem::Response>> {
    let metrics = state.metrics.clone();
    let scrape = {
        let metrics = metrics.clone();
        poem::endpoint::make_sync(move |_| {
            poem::Response::builder()
                .content_type("text/plain; version=0.0.4")
                .body(metrics.render())
        })
    };
    let api = api::service(state.clone());
    let document = api::document(&api)
        .map_err(|e| anyhow::anyhow!("the OpenAPI document is not valid JSON: {e}"))?;
    let docs = api::explorer::endpoint(&api.swagger_ui_html()).map_err(anyhow::Error::msg)?;
    let get_only: &[Method] = &[Method::GET];
    let table = Arc::new(Routes::from_document(
        &document,
        &[
            ("/openapi.json", get_only),
            ("/metrics", get_only),
            ("/platform", get_only),
            ("/docs", get_only),
            ("/docs/", get_only),
            ("/docs/init.js", get_only),
            ("/docs/swagger-ui.css", get_only),
            ("/docs/swagger-ui-bundle.js", get_only),
        ],
    ));
    let spec = poem::endpoint::make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json")
            .body(document.clone())
    });
    let app = Route::new()
        .at("/openapi.json", poem::get(spec))
        .at("/metrics", poem::get(scrape))
        .at("/platform", crate::platform::endpoint(state))
        .nest("/docs", docs)
        .nest("/", api);
    Ok(cors(
        dialect_errors(
            crate::metrics::record(limit_body(app, max_body_bytes), metrics),
            table.clone(),
        ),
        cors_policy,
        table,
    ))
}

/// Refuses bodies over `max` bytes with 413: by their declared length, or, for
/// chunked bodies, by reading at most one byte more than allowed.
fn limit_body<E: Endpoint + 'static>(ep: E, max: usize) -> impl Endpoint {
    ep.around(move |ep, mut req: Request| async move {
        let too_large =
            || poem::Error::from_string("request body too large", StatusCode::PAYLOAD_TOO_LARGE);
        let declared = req
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        match declared {
            Some(len) if len > max as u64 => return Err(too_large()),
            Some(_) => {}
            None if req.header("transfer-encoding").is_some() => {
                let mut buf = Vec::new();
                req.take_body()
                    .into_async_read()
                    .take(max as u64 + 1)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| {
                        poem::Error::from_string(e.to_string(), StatusCode::BAD_REQUEST)
                    })?;
                if buf.len() > max {
                    return Err(too_large());
                }
                req.set_body(buf);
            }
            None => {}
        }
        ep.call(req).await.map(IntoResponse::into_response)
    })
}

impl Application {
    /// Connects the store, bootstraps shared values and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let (state, generated) = AppState::build(&config).await?;
        let listener = TcpListener::bind(config.bind).into_acceptor().await?;
        let addr = listener
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .ok_or_else(|| anyhow::anyhow!("the listener has no socket address"))?;
        let (acceptor, tls) = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                let cert = std::fs::read(cert)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", cert.display()))?;
                let key = std::fs::read(key)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", key.display()))?;
                let tls =
                    RustlsConfig::new().fallback(RustlsCertificate::new().cert(cert).key(key));
                let configs = futures::stream::iter([tls]).chain(futures::stream::pending());
                (listener.rustls(configs).boxed(), true)
            }
            _ => (listener.boxed(), false),
        };
        let policy = CorsPolicy::new(
            config.cors_allowed_origins.iter().cloned(),
            config.cors_allow_credentials,
        );
        let app = routes(state.clone(), config.max_body_bytes, Some(policy))?.boxed();
        Ok(Self {
            acceptor,
            addr,
            tls,
            state,
            app,
            generated,
            delivery_worker: config.delivery_worker,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The shared state (for seeding and tests).
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Says once what the operator must know: the store, generated secrets, the address.
    pub fn announce(&self) {
        let scheme = if self.tls { "https" } else { "http" };
        tracing::info!(addr = %self.addr, store = self.state.store.kind(), "authgate listening on {scheme}://{}", self.addr);
        if self.state.store.kind() == "memory" {
            tracing::warn!("running on the embedded in-memory store: every user, key and session is gone at exit; set AUTHGATE_REDIS_URL for real use");
        }
        if self.generated.token_secret && self.state.store.kind() != "memory" {
            tracing::warn!("generated a token secret and stored it in the store for the other replicas; set AUTHGATE_TOKEN_SECRET to choose your own (then a dump of the store cannot open sealed HA1s)");
        }
        if let Some(secret) = &self.generated.client_secret {
            // Shown once, on standard error rather than in the log stream: only its digest is kept.
            eprintln!(
                "\n  authgate API client (shown once; only its digest is stored):\n    client_id:     {}\n    client_secret: {}\n  Set AUTHGATE_CLIENT_SECRET to choose your own.\n",
                self.state.client_id,
                secret.expose_secret()
            );
        }
    }

    /// Serves until `shutdown` resolves, then drains for up to five seconds.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let worker = self.delivery_worker.then(|| {
            let s = &self.state;
            let worker = Worker::new(
                s.outbox.clone(),
                s.otp.clone(),
                s.integrations.clone(),
                s.senders.clone(),
                s.delivery.clone(),
            )
            .with_observer(s.metrics.clone());
            tokio::spawn(worker.run(stopped))
        });
        let served = Server::new_with_acceptor(self.acceptor)
            .idle_timeout(Duration::from_secs(120))
            .run_with_graceful_shutdown(self.app, shutdown, Some(Duration::from_secs(5)))
            .await;
        let _ = stop.send(true);
        if let Some(w) = worker {
            let _ = tokio::time::timeout(Duration::from_secs(12), w).await;
        }
        served
    }
}
