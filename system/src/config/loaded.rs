//! The one loaded configuration of a process: its [`Settings`] with everything read from
//! them at start-up (tokens, TLS material, the memory budget and the client table), made
//! once by [`Loaded::load`]. Each role's configuration is built here, in one method per
//! role, TLS included; nothing patches it afterwards.

use std::{sync::Arc, time::Duration};

use http::Uri;

use super::Settings;
use crate::{
    domain::{budget::Budget, queue::NatsConfig, worker::seed_processing},
    hop::client::ForwarderConfig,
    roles::{
        FrontDoorConfig, gateway::GatewayConfig, grpc::GrpcConfig, processor::ProcessorConfig,
    },
    serve::{
        auth::{TokenError, Tokens},
        clients::Clients,
        prometheus::Registry,
        server::HttpLimits,
        tls::{Tls, TlsError},
    },
};

/// Why the settings could not be loaded; the message names the setting.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A token setting cannot be used.
    #[error("{0}")]
    Token(#[from] TokenError),
    /// A TLS setting cannot be used.
    #[error("{0}")]
    Tls(#[from] TlsError),
}

/// The settings and what was read from them, shared by every role of the process.
#[derive(Debug)]
pub struct Loaded {
    /// The settings as given.
    pub settings: Settings,
    /// The tokens and the NATS credentials, read and checked.
    pub tokens: Tokens,
    /// The TLS material of every port and of the hop.
    pub tls: Tls,
    /// The budget of bytes in flight that every role of the process shares.
    pub budget: Arc<Budget>,
    /// The clients of the front doors, each with its share of the budget.
    pub clients: Arc<Clients>,
}

impl Loaded {
    /// Reads the tokens and the TLS files and makes the budget and the client table.
    pub fn load(settings: Settings) -> Result<Loaded, LoadError> {
        let tokens = settings.tokens()?;
        let tls = settings.tls()?;
        let budget = settings.budget();
        let clients = settings.clients(&budget);
        Ok(Loaded {
            settings,
            tokens,
            tls,
            budget,
            clients,
        })
    }

    /// The processor role's configuration.
    pub fn processor(&self) -> ProcessorConfig {
        let settings = &self.settings;
        let defaults = ProcessorConfig::default();
        ProcessorConfig {
            queue_type: settings.queue.queue_type,
            queue_size: settings.queue.queue_size as usize,
            workers: usize::from(settings.processor_role.processor_workers),
            worker_mode: settings.processor_role.worker_mode,
            profile_endpoint: settings.common.profile_endpoint,
            body_limit: settings.common.processor_body_limit as usize,
            max_connections: settings.common.max_connections as usize,
            limits: HttpLimits {
                drain_timeout: settings.drain_timeout(),
                ..defaults.limits
            },
            process: Arc::new(seed_processing),
            nats: NatsConfig {
                auth: self.tokens.nats.clone(),
                ..settings.nats()
            },
            dedup_ids: settings.queue.dedup_ids as usize,
            dedup_window: Duration::from_secs(u64::from(settings.queue.dedup_window_secs)),
            budget: Arc::clone(&self.budget),
            queue_bytes: settings.queue.queue_bytes as usize,
            processor_token: self.tokens.processor.clone(),
            debug_token: self.tokens.debug.clone(),
            tls: self.tls.processor.clone(),
            ..defaults
        }
    }

    /// The processor client's configuration, for a processor at `processor_url` (with the
    /// processor token, and the hop's TLS for an `https` URL).
    pub fn forwarder(&self, processor_url: Uri) -> ForwarderConfig {
        let hop = &self.settings.hop;
        ForwarderConfig {
            mode: hop.client_mode,
            protocol: hop.hop_protocol,
            codec: hop.hop_codec,
            batch: usize::from(hop.hop_batch),
            linger: Duration::from_micros(u64::from(hop.hop_linger_us)),
            max_in_flight: usize::from(hop.hop_in_flight),
            batch_unary: hop.hop_batch_http,
            timeout: Duration::from_millis(u64::from(hop.hop_timeout_ms)),
            max_request_bytes: self.settings.common.processor_body_limit as usize,
            processor_token: self.tokens.processor.clone(),
            tls: Some(self.tls.hop.clone()),
            ..ForwarderConfig::new(processor_url)
        }
    }

    /// What both front doors take: the hop to `processor_url`, limits, clients and tokens,
    /// their metric families going to `metrics` (a registry of their own when `None`), TLS
    /// on the port when `tls` is set.
    fn front_door(
        &self,
        processor_url: Uri,
        metrics: Option<Registry>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> FrontDoorConfig {
        let settings = &self.settings;
        FrontDoorConfig {
            forwarder: self.forwarder(processor_url),
            max_connections: settings.common.max_connections as usize,
            limits: settings.http_limits(),
            profile_endpoint: settings.common.profile_endpoint,
            clients: Arc::clone(&self.clients),
            metrics,
            tls,
            ingest_tokens: self.tokens.ingest.clone(),
            debug_token: self.tokens.debug.clone(),
        }
    }

    /// The gateway role's configuration, for the processor at `processor_url`.
    pub fn gateway(&self, processor_url: Uri, metrics: Option<Registry>) -> GatewayConfig {
        GatewayConfig {
            front: self.front_door(processor_url, metrics, self.tls.gateway.clone()),
            body_limit: self.settings.gateway_role.body_limit as usize,
        }
    }

    /// The gRPC role's configuration, for the processor at `processor_url`.
    pub fn grpc(&self, processor_url: Uri, metrics: Option<Registry>) -> GrpcConfig {
        GrpcConfig::from_front(self.front_door(processor_url, metrics, self.tls.grpc.clone()))
    }
}
