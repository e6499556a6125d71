//! Building and running one gateway instance.
//!
//! [`Application::build`] connects the store, bootstraps shared values and binds the
//! listener (port 0 picks a free port, which [`Application::port`] reports), and the
//! metrics listener when `AUTHGATE_METRICS_BIND` is set;
//! [`Application::run_until`] serves until the caller's shutdown future resolves,
//! then shuts down gracefully (see there). Nothing is global, so a test can run as
//! many instances as it likes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use authgate_core::directory::DirectoryError;
use authgate_core::store::StoreError;
use authgate_delivery::Worker;
use futures::StreamExt;
use poem::endpoint::BoxEndpoint;
use poem::http::header::{self, HeaderValue};
use poem::http::{Method, StatusCode};
use poem::listener::{
    Acceptor, AcceptorExt, BoxAcceptor, Listener, RustlsCertificate, RustlsConfig, TcpListener,
};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Route};
use secrecy::ExposeSecret;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::api;
use crate::api::document::Routes;
use crate::config::Config;
use crate::cors::{cors, CorsPolicy};
use crate::errors::{dialect_body, dialect_errors};
use crate::server::{self, Limits, Stats, Stopping};
use crate::state::{AppState, Generated};

/// A bound, ready-to-run gateway.
///
/// The listener is bound first. When the store cannot be reached yet, the
/// gateway still starts: it answers 503 (with `Retry-After`) to everything but
/// `/health/live` while it keeps trying, with backoff, and serves by itself once
/// the store answers.
pub struct Application {
    acceptor: BoxAcceptor,
    addr: SocketAddr,
    tls: bool,
    /// The metrics address's listener, when `AUTHGATE_METRICS_BIND` is set.
    metrics: Option<(BoxAcceptor, SocketAddr)>,
    config: Config,
    /// The served app once the store answered; 503s until then.
    served: Arc<OnceLock<Served>>,
    seed_demo: bool,
    /// Set to the shutdown's deadline when shutdown begins; the servers and the
    /// `/platform` sockets watch it.
    stop: watch::Sender<Option<Instant>>,
    /// The public listener's connection counters.
    stats: Arc<Stats>,
}

/// What serves once the store answered.
struct Served {
    state: Arc<AppState>,
    app: BoxEndpoint<'static>,
    /// `/metrics`: the request and funnel metrics, and the connection counters.
    scrape: Arc<BoxEndpoint<'static>>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("metrics_addr", &self.metrics.as_ref().map(|(_, a)| a))
            .field("ready", &self.served.get().is_some())
            .finish_non_exhaustive()
    }
}

/// Whether `e` says only that the store could not be reached (worth waiting
/// for), rather than that something is misconfigured (worth exiting for).
fn store_unreachable(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<StoreError>(),
            Some(StoreError::Unavailable(_))
        ) || matches!(
            cause.downcast_ref::<DirectoryError>(),
            Some(DirectoryError::Store(StoreError::Unavailable(_)))
        )
    })
}

/// How long a client should wait before trying again, on every 503.
const RETRY_AFTER_SECS: &str = "1";

/// Adds `Retry-After` to a 503 that lacks one.
fn retry_after(mut resp: poem::Response) -> poem::Response {
    if resp.status() == StatusCode::SERVICE_UNAVAILABLE
        && !resp.headers().contains_key(header::RETRY_AFTER)
    {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    resp
}

/// Serves the app once there is one, 503s (in the dialect of the path) before.
/// Without `metrics_here`, `/metrics` is not found, before as after.
fn gate(
    served: Arc<OnceLock<Served>>,
    store: &'static str,
    metrics_here: bool,
) -> impl Endpoint<Output = poem::Response> {
    poem::endpoint::make(move |req: Request| {
        let served = served.clone();
        async move {
            if let Some(s) = served.get() {
                let resp = match s.app.call(req).await {
                    Ok(resp) => resp,
                    Err(e) => e.into_response(),
                };
                return Ok::<_, poem::Error>(retry_after(resp));
            }
            let path = req.uri().path();
            let waiting = serde_json::json!({"status": "unavailable", "store": store});
            let resp = match path {
                "/health/live" => poem::Response::builder()
                    .content_type("application/json; charset=utf-8")
                    .body(serde_json::json!({"status": "ok"}).to_string()),
                "/health/ready" => poem::Response::builder()
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .content_type("application/json; charset=utf-8")
                    .body(waiting.to_string()),
                "/metrics" if !metrics_here => {
                    dialect_body(path, StatusCode::NOT_FOUND, "not found")
                }
                _ => dialect_body(
                    path,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the gateway is starting: its store does not answer yet",
                ),
            };
            Ok(retry_after(resp))
        }
    })
}

/// The metrics address's endpoint: `/metrics` and the health probes (answered by
/// the main app, as on the main address); anything else is not found.
fn metrics_gate(
    served: Arc<OnceLock<Served>>,
    public: Arc<BoxEndpoint<'static>>,
    stats: Arc<Stats>,
) -> impl Endpoint<Output = poem::Response> {
    poem::endpoint::make(move |req: Request| {
        let (served, public, stats) = (served.clone(), public.clone(), stats.clone());
        async move {
            let resp = match req.uri().path() {
                "/metrics" if req.method() == Method::GET => match served.get() {
                    Some(s) => s.scrape.get_response(req).await,
                    // Before the store answers there are only the connection counters.
                    None => scrape_text(None, &stats),
                },
                "/health/live" | "/health/ready" => public.get_response(req).await,
                _ => poem::Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .finish(),
            };
            Ok::<_, poem::Error>(resp)
        }
    })
}

/// The Prometheus text: the request and funnel metrics, then the connection counters.
fn scrape_text(metrics: Option<&crate::metrics::Metrics>, stats: &Stats) -> poem::Response {
    let mut text = metrics.map(|m| m.render()).unwrap_or_default();
    stats.render(&mut text);
    poem::Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}

impl Served {
    async fn build(config: &Config, edges: Edges) -> anyhow::Result<(Self, Generated)> {
        let (state, generated) = AppState::build(config).await?;
        let policy = CorsPolicy::new(
            config.cors_allowed_origins.iter().cloned(),
            config.cors_allow_credentials,
        );
        let scrape = {
            let (metrics, stats) = (state.metrics.clone(), edges.stats.clone());
            Arc::new(
                poem::endpoint::make_sync(move |_| scrape_text(Some(&metrics), &stats)).boxed(),
            )
        };
        let options = RouteOptions {
            max_body_bytes: config.max_body_bytes,
            cors: Some(policy),
            platform: crate::platform::Options {
                per_address: config.platform_sockets_per_address,
                stopping: edges.stopping,
            },
            metrics: config.metrics_bind.is_none().then(|| scrape.clone()),
            ui: crate::ui::Options::from_config(config)?,
        };
        let app = routes(state.clone(), options)?.boxed();
        Ok((Self { state, app, scrape }, generated))
    }
}

/// What the routes share with the server: its shutdown signal and counters.
#[derive(Clone)]
struct Edges {
    stopping: Stopping,
    stats: Arc<Stats>,
}

/// How [`routes`] is put together.
pub struct RouteOptions {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// CORS for browser frontends; `None` sends no CORS headers.
    pub cors: Option<CorsPolicy>,
    /// The `/platform` socket's per-address cap and shutdown signal.
    pub platform: crate::platform::Options,
    /// `/metrics`, when served on this address.
    pub metrics: Option<Arc<BoxEndpoint<'static>>>,
    /// The hosted pages under `/ui/`.
    pub ui: crate::ui::Options,
}

/// All routes of the gateway: CORS outermost (so errors carry it too), then the
/// dialects' error shapes, metrics, and the body limit.
pub fn routes(
    state: Arc<AppState>,
    options: RouteOptions,
) -> anyhow::Result<impl Endpoint<Output = poem::Response>> {
    let RouteOptions {
        max_body_bytes,
        cors: cors_policy,
        platform,
        metrics: scrape,
        ui,
    } = options;
    let metrics = state.metrics.clone();
    let api = api::service(state.clone());
    let document = api::document(&api)
        .map_err(|e| anyhow::anyhow!("the OpenAPI document is not valid JSON: {e}"))?;
    let docs = api::explorer::endpoint(&api.swagger_ui_html()).map_err(anyhow::Error::msg)?;
    let get_only: &[Method] = &[Method::GET];
    let mut extra = vec![
        ("/openapi.json", get_only),
        ("/platform", get_only),
        ("/docs", get_only),
        ("/docs/", get_only),
        ("/docs/init.js", get_only),
        ("/docs/swagger-ui.css", get_only),
        ("/docs/swagger-ui-bundle.js", get_only),
    ];
    if scrape.is_some() {
        extra.push(("/metrics", get_only));
    }
    extra.extend_from_slice(crate::ui::ROUTES);
    let table = Arc::new(Routes::from_document(&document, &extra));
    let spec = poem::endpoint::make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json")
            .body(document.clone())
    });
    let mut app = Route::new().at("/openapi.json", poem::get(spec));
    if let Some(scrape) = scrape {
        app = app.at("/metrics", poem::get(scrape));
    }
    let app = app
        .at(
            "/platform",
            crate::platform::endpoint(state.clone(), platform),
        )
        .nest("/ui", crate::ui::endpoint(state, ui))
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
    /// Binds the listener(s) and, when the store answers, bootstraps shared values.
    /// A store that does not answer yet is waited for (see [`Application`]); a
    /// misconfigured one fails here.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
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
        let mut config = config;
        if config.public_url.is_none() {
            // Emailed links need an absolute URL: without one configured, this listener's.
            config.public_url = Some(crate::ui::default_public_url(addr, tls));
        }
        let metrics = match config.metrics_bind {
            Some(bind) => {
                let listener = TcpListener::bind(bind).into_acceptor().await.map_err(|e| {
                    anyhow::anyhow!("cannot listen on AUTHGATE_METRICS_BIND={bind}: {e}")
                })?;
                let addr = listener
                    .local_addr()
                    .first()
                    .and_then(|a| a.as_socket_addr().copied())
                    .ok_or_else(|| anyhow::anyhow!("the metrics listener has no address"))?;
                Some((listener.boxed(), addr))
            }
            None => None,
        };
        let (stop, _) = watch::channel(None);
        let stats = Arc::new(Stats::default());
        let edges = Edges {
            stopping: stop.subscribe(),
            stats: stats.clone(),
        };
        let served = Arc::new(OnceLock::new());
        match Served::build(&config, edges).await {
            Ok((ready, generated)) => {
                announce_generated(&ready.state, &generated);
                let _ = served.set(ready);
            }
            Err(e) if store_unreachable(&e) => {
                tracing::warn!(error = %e, "the store does not answer; starting anyway and answering 503 until it does");
            }
            Err(e) => return Err(e),
        }
        Ok(Self {
            acceptor,
            addr,
            tls,
            metrics,
            config,
            served,
            seed_demo: false,
            stop,
            stats,
        })
    }

    /// Seeds the demo data: now when the store answers, else as soon as it does.
    pub async fn seed_demo_data(&mut self) -> anyhow::Result<()> {
        match self.served.get() {
            Some(ready) => Ok(crate::demo::seed(&ready.state).await?),
            None => {
                self.seed_demo = true;
                Ok(())
            }
        }
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The metrics address actually bound, when `AUTHGATE_METRICS_BIND` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, addr)| *addr)
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The shared state, once the store has answered (for tests).
    pub fn state(&self) -> Option<Arc<AppState>> {
        self.served.get().map(|s| s.state.clone())
    }

    /// Says once where it listens and on which store.
    pub fn announce(&self) {
        let scheme = if self.tls { "https" } else { "http" };
        let store = if self.config.redis_url.is_some() {
            "redis"
        } else {
            "memory"
        };
        tracing::info!(addr = %self.addr, store, ready = self.served.get().is_some(), "authgate listening on {scheme}://{}", self.addr);
        if let Some(addr) = self.metrics_addr() {
            tracing::info!(%addr, "metrics and health probes on http://{addr}");
        }
        if store == "memory" {
            tracing::warn!("running on the embedded in-memory store: every user, key and session is gone at exit; set AUTHGATE_REDIS_URL for real use");
        }
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully within
    /// `AUTHGATE_SHUTDOWN_GRACE_SECS`: it stops accepting at once, closes idle
    /// connections and `/platform` sockets (1001), lets requests in flight finish,
    /// then stops the delivery worker, which finishes the deliveries it has under
    /// way and leaves the rest pending in the outbox, for this replica's next start
    /// or any other replica to claim (nothing accepted is lost). Whatever still runs
    /// at the deadline is dropped; the worker gets at least a second.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let Self {
            acceptor,
            tls,
            metrics,
            config,
            served,
            seed_demo,
            stop,
            stats,
            ..
        } = self;
        let (stop_worker, worker_stopped) = watch::channel(false);
        let store = if config.redis_url.is_some() {
            "redis"
        } else {
            "memory"
        };
        let limits = Limits::from_config(&config);
        let grace = config.shutdown_grace;
        let public = Arc::new(gate(served.clone(), store, metrics.is_none()).boxed());
        let mut background = tokio::spawn(background(
            served.clone(),
            config,
            seed_demo,
            Edges {
                stopping: stop.subscribe(),
                stats: stats.clone(),
            },
            worker_stopped,
        ));
        let servers = async {
            let main = server::serve(
                acceptor,
                tls,
                public.clone(),
                limits,
                stats.clone(),
                stop.subscribe(),
            );
            match metrics {
                Some((acceptor, _)) => {
                    let ep = Arc::new(
                        metrics_gate(served.clone(), public.clone(), stats.clone()).boxed(),
                    );
                    let limits = Limits {
                        max_connections: limits.max_connections.min(METRICS_CONNECTIONS),
                        ..limits
                    };
                    let other = server::serve(
                        acceptor,
                        false,
                        ep,
                        limits,
                        Arc::default(),
                        stop.subscribe(),
                    );
                    futures::future::join(main, other).await;
                }
                None => main.await,
            }
        };
        let signal = async {
            shutdown.await;
            let deadline = Instant::now() + grace;
            tracing::info!(
                grace_secs = grace.as_secs(),
                "shutting down: no new connections; finishing requests in flight"
            );
            stop.send_replace(Some(deadline));
            deadline
        };
        let (deadline, ()) = futures::future::join(signal, servers).await;
        let _ = stop_worker.send(true);
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        if tokio::time::timeout(left, &mut background).await.is_err() {
            tracing::warn!("the delivery worker did not finish in time; its unfinished deliveries stay pending for the next worker to claim");
            background.abort();
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The metrics address's own cap on connections.
const METRICS_CONNECTIONS: usize = 256;

/// Says once what the operator must know of generated secrets.
fn announce_generated(state: &AppState, generated: &Generated) {
    if generated.token_secret && state.store.kind() != "memory" {
        tracing::warn!("generated a token secret and stored it in the store for the other replicas; set AUTHGATE_TOKEN_SECRET to choose your own (then a dump of the store cannot open sealed HA1s)");
    }
    if let Some(secret) = &generated.client_secret {
        // Shown once, on standard error rather than in the log stream: only its digest is kept.
        eprintln!(
            "\n  authgate API client (shown once; only its digest is stored):\n    client_id:     {}\n    client_secret: {}\n  Set AUTHGATE_CLIENT_SECRET to choose your own.\n",
            state.client_id,
            secret.expose_secret()
        );
    }
}

/// Waits for the store when it did not answer at start-up (backing off from a
/// fifth of a second to five seconds), then seeds the demo when asked and runs
/// the delivery worker until `stopped`.
async fn background(
    served: Arc<OnceLock<Served>>,
    config: Config,
    seed_demo: bool,
    edges: Edges,
    mut stopped: watch::Receiver<bool>,
) {
    let mut wait = Duration::from_millis(200);
    let mut attempt = 0u32;
    while served.get().is_none() {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => return,
        }
        attempt += 1;
        match Served::build(&config, edges.clone()).await {
            Ok((ready, generated)) => {
                tracing::info!(attempt, "the store answers; serving");
                announce_generated(&ready.state, &generated);
                let _ = served.set(ready);
            }
            Err(e) if store_unreachable(&e) => {
                tracing::warn!(error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "the store still does not answer");
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                // Reachable but refusing (a wrong secret, a bad certificate):
                // waiting will not help, and the readiness probe stays red.
                tracing::error!(error = %e, "the store answered, but the gateway cannot start on it");
                return;
            }
        }
    }
    let Some(ready) = served.get() else { return };
    let s = &ready.state;
    if seed_demo {
        if let Err(e) = crate::demo::seed(s).await {
            tracing::error!(error = %e, "could not seed the demo data");
        }
    }
    if config.delivery_worker {
        let worker = Worker::new(
            s.outbox.clone(),
            s.otp.clone(),
            s.integrations.clone(),
            s.senders.clone(),
            s.delivery.clone(),
        )
        .with_observer(s.metrics.clone());
        worker.run(stopped).await;
    }
}
