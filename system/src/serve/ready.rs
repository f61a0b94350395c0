//! Readiness: whether a server should be sent traffic now, where `/health` only says that
//! it is alive (always 200 while the process serves).
//!
//! - A front door (the gateway's `GET /ready`, the gRPC health service) is ready while it
//!   is not shutting down and its processor answers through the hop
//!   ([`crate::hop::ready`]).
//! - The processor's `GET /ready` is ready while its queue is open (not closed for
//!   shutdown) and, with the NATS queue, its client is connected to the server
//!   ([`crate::roles::processor`]).
//!
//! Ready is 200 `{"status": "ready"}`; not ready is 503 with `Retry-After` and the reason
//! as `{"error": ...}`. The gRPC health service reports the ingest service and the server
//! as a whole (`""`) SERVING or NOT_SERVING by the same rule, and NOT_SERVING from the
//! moment shutdown begins, before the server starts draining.

use std::{future::Future, sync::Arc};

use axum::Json;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::domain::http_error::ApiError;

/// Ready, or why not.
pub(crate) type Verdict = Result<(), String>;

/// The answer of a `GET /ready` route to `verdict`.
pub(crate) fn answer(verdict: Verdict) -> Result<Json<Value>, ApiError> {
    verdict
        .map(|()| Json(json!({"status": "ready"})))
        .map_err(ApiError::unavailable)
}

/// Set once shutdown begins; a server is not ready from then on. Clones share the flag.
#[derive(Debug, Clone)]
pub(crate) struct Draining(Arc<watch::Sender<bool>>);

impl Default for Draining {
    fn default() -> Self {
        Draining(Arc::new(watch::Sender::new(false)))
    }
}

impl Draining {
    /// Marks the shutdown as begun.
    pub(crate) fn begin(&self) {
        self.0.send_replace(true);
    }

    /// Whether the shutdown has begun.
    pub(crate) fn has_begun(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits for `shutdown`, then marks the shutdown as begun: pass this to the server in
    /// place of `shutdown`, so readiness ends before the server drains.
    pub(crate) async fn after(self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        self.begin();
    }

    /// Waits until the shutdown has begun.
    pub(crate) async fn begun(&self) {
        let mut begun = self.0.subscribe();
        let _ = begun.wait_for(|begun| *begun).await;
    }
}
