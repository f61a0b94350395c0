//! A front door's readiness, which is its hop's: ready while it is not shutting down and
//! its processor answers `/health` within [`PROBE_TIMEOUT`]; the gRPC health service
//! follows the same rule (see [`crate::serve::ready`] for the answers).
//!
//! The processor is probed by one background task per front door, once per
//! [`PROBE_INTERVAL`], so however often readiness is asked the processor sees one small
//! request a second. The task starts with the first question: a front door that nobody
//! asks sends nothing, and the request paths the study measures stay exactly as they were.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex as StdMutex},
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, routing::get};
use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::sync::{Mutex, watch};
use tonic::server::NamedService;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    hop::client::{ForwarderConfig, connector::CountingConnector},
    serve::ready::{Draining, Verdict, answer},
};

/// How often a front door asks its processor's `/health`, once readiness was asked.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long the processor has to answer a probe before it counts as unreachable.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Most bytes of a probe's answer that are read (the answer is `{"status":"ok"}`); reading
/// it lets the connection be used again for the next probe.
const PROBE_ANSWER_LIMIT: usize = 4096;

/// The readiness of a front door: not shutting down, and its processor reachable.
#[derive(Debug, Clone)]
pub(crate) struct FrontDoor {
    /// How the reasons name this server.
    name: &'static str,
    probe: ProcessorProbe,
    draining: Draining,
}

impl FrontDoor {
    /// The readiness of the front door called `name` whose processor `forwarder` reaches
    /// (its URL, and its TLS when the URL is `https`).
    pub(crate) fn new(name: &'static str, forwarder: &ForwarderConfig) -> FrontDoor {
        FrontDoor {
            name,
            probe: ProcessorProbe::new(forwarder),
            draining: Draining::default(),
        }
    }

    /// Ready, or why not. The first call starts the probing and waits for its first answer.
    pub(crate) async fn verdict(&self) -> Verdict {
        if self.draining.has_begun() {
            return Err(format!("the {} is shutting down", self.name));
        }
        self.probe.verdict().await
    }

    /// `GET /ready`.
    pub(crate) fn routes<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let front = self.clone();
        Router::new().route(
            "/ready",
            get(move || {
                let front = front.clone();
                async move { answer(front.verdict().await) }
            }),
        )
    }

    /// Waits for `shutdown`, then ends readiness: pass this to the server in place of
    /// `shutdown`.
    pub(crate) async fn until(self, shutdown: impl Future<Output = ()>) {
        self.draining.after(shutdown).await;
    }
}

/// Whether the processor answers its `/health`, asked by a background task.
#[derive(Debug, Clone)]
pub(crate) struct ProcessorProbe {
    shared: Arc<ProbeShared>,
}

#[derive(Debug)]
struct ProbeShared {
    health_url: Uri,
    connector: CountingConnector,
    /// The last verdict; `None` before the first probe has answered.
    verdicts: watch::Receiver<Option<Verdict>>,
    /// The sending side, until the first question starts the task that takes it. The task
    /// ends when every receiver is gone, that is with the last clone of the probe.
    idle: StdMutex<Option<watch::Sender<Option<Verdict>>>>,
}

impl ProcessorProbe {
    /// A probe of the processor `forwarder` reaches; it sends nothing until asked.
    pub(crate) fn new(forwarder: &ForwarderConfig) -> ProcessorProbe {
        let (sender, verdicts) = watch::channel(None);
        ProcessorProbe {
            shared: Arc::new(ProbeShared {
                health_url: health_url(&forwarder.processor_url),
                connector: forwarder.connector(Arc::default(), None),
                verdicts,
                idle: StdMutex::new(Some(sender)),
            }),
        }
    }

    /// The last verdict. The first call starts the probing and waits for its first answer.
    pub(crate) async fn verdict(&self) -> Verdict {
        self.start();
        let mut verdicts = self.shared.verdicts.clone();
        match verdicts.wait_for(Option::is_some).await {
            Ok(verdict) => verdict
                .clone()
                .unwrap_or_else(|| Err("the processor has not been probed yet".to_owned())),
            Err(_) => Err("the processor is no longer probed".to_owned()),
        }
    }

    fn start(&self) {
        let sender = self
            .shared
            .idle
            .lock()
            .ok()
            .and_then(|mut idle| idle.take());
        if let Some(sender) = sender {
            let client = Client::builder(TokioExecutor::new()).build(self.shared.connector.clone());
            tokio::spawn(probe(client, self.shared.health_url.clone(), sender));
        }
    }
}

/// `url` with the path `/health`.
fn health_url(url: &Uri) -> Uri {
    let mut parts = url.clone().into_parts();
    parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/health"));
    Uri::from_parts(parts).unwrap_or_else(|_| url.clone())
}

/// Asks `url` every [`PROBE_INTERVAL`] and publishes each verdict that differs from the
/// last, until nobody holds a receiver any more.
async fn probe(
    client: Client<CountingConnector, Empty<Bytes>>,
    url: Uri,
    verdicts: watch::Sender<Option<Verdict>>,
) {
    loop {
        let verdict = check(&client, &url).await;
        verdicts.send_if_modified(|last| {
            let changed = last.as_ref() != Some(&verdict);
            if changed {
                *last = Some(verdict);
            }
            changed
        });
        tokio::select! {
            () = verdicts.closed() => return,
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
    }
}

async fn check(client: &Client<CountingConnector, Empty<Bytes>>, uri: &Uri) -> Verdict {
    // A verdict is shown (`/ready`, gRPC health): the URL with its userinfo hidden.
    let url = crate::domain::redact::userinfo(&uri.to_string()).into_owned();
    let request = http::Request::get(uri.clone())
        .body(Empty::new())
        .map_err(|err| format!("cannot ask the processor at {url}: {err}"))?;
    let asked = async {
        let response = client
            .request(request)
            .await
            .map_err(|err| crate::hop::client::error_chain(&err))?;
        let status = response.status();
        Limited::new(response.into_body(), PROBE_ANSWER_LIMIT)
            .collect()
            .await
            .map_err(|err| crate::hop::client::error_chain(&*err))?;
        Ok::<_, String>(status)
    };
    match tokio::time::timeout(PROBE_TIMEOUT, asked).await {
        Ok(Ok(status)) if status.is_success() => Ok(()),
        Ok(Ok(status)) => Err(format!("the processor at {url} answered {status}")),
        Ok(Err(err)) => Err(format!("the processor at {url} cannot be reached: {err}")),
        Err(_) => Err(format!(
            "the processor at {url} did not answer within {PROBE_TIMEOUT:?}"
        )),
    }
}

/// The gRPC health of a server: the service it names and the server as a whole (`""`)
/// are SERVING while the front door is ready, NOT_SERVING otherwise.
#[derive(Debug, Clone)]
pub(crate) struct GrpcHealth {
    reporter: HealthReporter,
    service: &'static str,
    front: FrontDoor,
    /// The status last given to the reporter. A tokio mutex: it is held while the
    /// reporter is updated, so that two updates cannot interleave.
    applied: Arc<Mutex<Option<ServingStatus>>>,
}

impl GrpcHealth {
    /// Reports through `reporter`: NOT_SERVING until the processor `forwarder` reaches has
    /// answered a probe, then following the probe.
    pub(crate) async fn start(
        reporter: HealthReporter,
        service: &'static str,
        forwarder: &ForwarderConfig,
    ) -> GrpcHealth {
        let health = GrpcHealth {
            reporter,
            service,
            front: FrontDoor::new("gRPC server", forwarder),
            applied: Arc::default(),
        };
        health.apply(ServingStatus::NotServing).await;
        tokio::spawn(health.clone().follow());
        health
    }

    /// `health_service`, brought up to date before it answers each call.
    pub(crate) fn gate<S>(&self, health_service: S) -> HealthGate<S> {
        HealthGate {
            inner: health_service,
            health: self.clone(),
        }
    }

    /// Waits for `shutdown`, then reports NOT_SERVING for good: pass this to the server in
    /// place of `shutdown`, so that watchers learn it before the server drains.
    pub(crate) async fn until(self, shutdown: impl Future<Output = ()>) {
        self.front.draining.clone().after(shutdown).await;
        self.apply(ServingStatus::NotServing).await;
    }

    /// Passes each new verdict of the probe on to watchers, until shutdown begins.
    async fn follow(self) {
        let mut verdicts = self.front.probe.shared.verdicts.clone();
        loop {
            tokio::select! {
                () = self.front.draining.begun() => return,
                changed = verdicts.changed() => if changed.is_err() { return },
            }
            let verdict = verdicts.borrow_and_update().clone();
            if let Some(verdict) = verdict {
                self.apply(status(&verdict)).await;
            }
        }
    }

    async fn refresh(&self) {
        let verdict = self.front.verdict().await;
        self.apply(status(&verdict)).await;
    }

    async fn apply(&self, status: ServingStatus) {
        let mut applied = self.applied.lock().await;
        // Checked under the lock, so that a late SERVING cannot follow the NOT_SERVING
        // of the shutdown.
        let status = if self.front.draining.has_begun() {
            ServingStatus::NotServing
        } else {
            status
        };
        if *applied == Some(status) {
            return;
        }
        for service in ["", self.service] {
            self.reporter.set_service_status(service, status).await;
        }
        *applied = Some(status);
    }
}

fn status(verdict: &Verdict) -> ServingStatus {
    match verdict {
        Ok(()) => ServingStatus::Serving,
        Err(_) => ServingStatus::NotServing,
    }
}

/// The health service, which first brings the reported statuses up to date (starting the
/// probe on the first call).
#[derive(Debug, Clone)]
pub(crate) struct HealthGate<S> {
    inner: S,
    health: GrpcHealth,
}

impl<S: NamedService> NamedService for HealthGate<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, R> tower_service::Service<R> for HealthGate<S>
where
    S: tower_service::Service<R, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        // The clone takes the place of the service that was polled ready, which answers.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let health = self.health.clone();
        Box::pin(async move {
            health.refresh().await;
            inner.call(request).await
        })
    }
}
