//! Liveness and readiness probes.

use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::Tag;
use crate::state::AppState;

/// A probe's answer.
#[derive(Debug, Object)]
pub struct Health {
    /// `ok`, or `unavailable` when the store does not answer.
    pub status: String,
    /// The store in use: `memory` or `redis`.
    #[oai(skip_serializing_if_is_none)]
    pub store: Option<String>,
}

/// A readiness answer.
#[derive(Debug, ApiResponse)]
pub enum ReadyResponse {
    /// Ready to serve.
    #[oai(status = 200)]
    Ready(Json<Health>),
    /// The store does not answer: take this replica out of rotation until it does.
    #[oai(status = 503)]
    NotReady(Json<Health>),
}

/// Probes.
pub struct HealthApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

#[OpenApi(tag = "Tag::Health")]
impl HealthApi {
    /// Liveness
    ///
    /// 200 while the process serves requests; touches nothing else.
    #[oai(path = "/health/live", method = "get", operation_id = "live")]
    async fn live(&self) -> Json<Health> {
        Json(Health {
            status: "ok".to_owned(),
            store: None,
        })
    }

    /// Readiness
    ///
    /// 200 when the store answers a ping, 503 when it does not.
    #[oai(path = "/health/ready", method = "get", operation_id = "ready")]
    async fn ready(&self) -> ReadyResponse {
        let store = Some(self.state.store.kind().to_owned());
        match self.state.store.ping().await {
            Ok(()) => ReadyResponse::Ready(Json(Health {
                status: "ok".to_owned(),
                store,
            })),
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed");
                ReadyResponse::NotReady(Json(Health {
                    status: "unavailable".to_owned(),
                    store,
                }))
            }
        }
    }
}
