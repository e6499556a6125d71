//! Prometheus metrics: requests and latency per operation, and per-scheme funnels
//! (issued, delivered, verified, failed, expired, burnt, throttled).
//!
//! Counters are atomics looked up under a read lock, so recording costs a few
//! nanoseconds on the hot path; the text format is rendered on scrape.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use authgate_core::funnel::{Observer, Stage};
use authgate_core::store::ReadCache;
use poem::{Endpoint, EndpointExt, IntoResponse, Request};
use poem_openapi::OperationId;

/// Latency bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

type Requests = BTreeMap<(&'static str, u16), Arc<AtomicU64>>;

/// The gateway's metrics.
#[derive(Default)]
pub struct Metrics {
    requests: RwLock<Requests>,
    latency: RwLock<BTreeMap<&'static str, Arc<Histogram>>>,
    funnel: RwLock<BTreeMap<(&'static str, Stage), Arc<AtomicU64>>>,
    /// The store's memory of sessions, when it keeps one.
    cache: OnceLock<Arc<ReadCache>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics(..)")
    }
}

fn slot<K: Ord + Copy, V: Default>(map: &RwLock<BTreeMap<K, Arc<V>>>, key: K) -> Arc<V> {
    if let Some(v) = map.read().ok().and_then(|m| m.get(&key).cloned()) {
        return v;
    }
    match map.write() {
        Ok(mut m) => m.entry(key).or_default().clone(),
        Err(_) => Arc::default(),
    }
}

impl Observer for Metrics {
    fn observe(&self, scheme: &'static str, stage: Stage) {
        slot(&self.funnel, (scheme, stage)).fetch_add(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts one answered request of `operation` (an HTTP operation or a WebSocket frame).
    pub fn request(&self, operation: &'static str, status: u16, took: Duration) {
        slot(&self.requests, (operation, status)).fetch_add(1, Ordering::Relaxed);
        slot(&self.latency, operation).observe(took);
    }

    /// Reports on the store's memory of sessions too.
    pub fn watch_cache(&self, cache: Arc<ReadCache>) {
        let _ = self.cache.set(cache);
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP authgate_http_requests_total HTTP requests by operation and status.\n",
        );
        out.push_str("# TYPE authgate_http_requests_total counter\n");
        if let Ok(m) = self.requests.read() {
            for ((op, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "authgate_http_requests_total{{operation=\"{op}\",status=\"{status}\"}} {}",
                    n.load(Ordering::Relaxed)
                );
            }
        }
        out.push_str(
            "# HELP authgate_http_request_duration_seconds Time to answer, by operation.\n",
        );
        out.push_str("# TYPE authgate_http_request_duration_seconds histogram\n");
        if let Ok(m) = self.latency.read() {
            for (op, h) in m.iter() {
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "authgate_http_request_duration_seconds_bucket{{operation=\"{op}\",le=\"{bound}\"}} {}",
                        h.buckets[i].load(Ordering::Relaxed)
                    );
                }
                let count = h.count.load(Ordering::Relaxed);
                let _ = writeln!(out, "authgate_http_request_duration_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {count}");
                let _ = writeln!(
                    out,
                    "authgate_http_request_duration_seconds_sum{{operation=\"{op}\"}} {}",
                    h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
                );
                let _ = writeln!(
                    out,
                    "authgate_http_request_duration_seconds_count{{operation=\"{op}\"}} {count}"
                );
            }
        }
        out.push_str("# HELP authgate_funnel_total Steps of each scheme's funnel.\n");
        out.push_str("# TYPE authgate_funnel_total counter\n");
        if let Ok(m) = self.funnel.read() {
            for ((scheme, stage), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "authgate_funnel_total{{scheme=\"{scheme}\",stage=\"{}\"}} {}",
                    stage.as_str(),
                    n.load(Ordering::Relaxed)
                );
            }
        }
        if let Some(cache) = self.cache.get() {
            let s = cache.stats();
            let _ = write!(
                out,
                "# HELP authgate_verify_cache_live Whether this replica answers token checks from \
                 memory (1), or reads every session from Redis (0: the memory is off while \
                 Redis's change pushes are not known to flow).\n\
                 # TYPE authgate_verify_cache_live gauge\n\
                 authgate_verify_cache_live {}\n\
                 # HELP authgate_verify_cache_entries Sessions held in memory.\n\
                 # TYPE authgate_verify_cache_entries gauge\n\
                 authgate_verify_cache_entries {}\n\
                 # HELP authgate_verify_cache_hits_total Token checks answered from memory.\n\
                 # TYPE authgate_verify_cache_hits_total counter\n\
                 authgate_verify_cache_hits_total {}\n\
                 # HELP authgate_verify_cache_misses_total Token checks that read Redis while the memory was live.\n\
                 # TYPE authgate_verify_cache_misses_total counter\n\
                 authgate_verify_cache_misses_total {}\n\
                 # HELP authgate_verify_cache_invalidations_total Session changes pushed by Redis or made here.\n\
                 # TYPE authgate_verify_cache_invalidations_total counter\n\
                 authgate_verify_cache_invalidations_total {}\n",
                u8::from(s.live),
                s.entries,
                s.hits,
                s.misses,
                s.invalidations
            );
        }
        out
    }
}

/// Records every API operation's status and latency.
pub fn record<E: Endpoint + 'static>(ep: E, metrics: Arc<Metrics>) -> impl Endpoint {
    ep.around(move |ep, req: Request| {
        let metrics = metrics.clone();
        async move {
            let started = Instant::now();
            let result = ep.call(req).await.map(IntoResponse::into_response);
            let (operation, status) = match &result {
                Ok(resp) => (
                    resp.data::<OperationId>().map(|o| o.0),
                    resp.status().as_u16(),
                ),
                Err(err) => (
                    err.data::<OperationId>().map(|o| o.0),
                    err.status().as_u16(),
                ),
            };
            metrics.request(operation.unwrap_or("other"), status, started.elapsed());
            result
        }
    })
}
