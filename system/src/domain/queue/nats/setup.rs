//! How the broker side is laid out: the settings of the NATS queue, and the creation of
//! the work-queue stream, the dead-letter stream and the shared durable consumer.
//!
//! Setting up is idempotent (get or create), so every processor runs it at start-up and
//! again after a reconnect; the first one to run it fixes the objects' settings.

use std::{fmt, time::Duration};

use async_nats::jetstream::{
    Context,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
    context::{CreateStreamError, CreateStreamErrorKind},
    stream::{self, ConsumerErrorKind, DiscardPolicy, RetentionPolicy, StorageType},
};

use super::auth::{self, NatsAuth};
use crate::domain::redact;

/// Where the NATS server listens unless told otherwise (`NATS_URL`).
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
/// The shared stream's name unless told otherwise (`NATS_STREAM`).
pub const DEFAULT_NATS_STREAM: &str = "INGEST";
/// The shared durable consumer's name unless told otherwise (`NATS_CONSUMER`).
pub const DEFAULT_NATS_CONSUMER: &str = "processors";
/// Most publishes waiting for confirmation unless told otherwise (`NATS_MAX_PENDING`).
pub const DEFAULT_NATS_MAX_PENDING: usize = 1024;
/// How long a broker call may wait for an answer unless told otherwise
/// (`NATS_TIMEOUT_MS`).
pub const DEFAULT_NATS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a delivery may stay unacknowledged unless told otherwise (`NATS_ACK_WAIT_MS`).
pub const DEFAULT_NATS_ACK_WAIT: Duration = Duration::from_secs(30);
/// Deliveries of one message before it is dead-lettered unless told otherwise
/// (`NATS_MAX_DELIVER`).
pub const DEFAULT_NATS_MAX_DELIVER: u32 = 5;
/// Copies of the streams JetStream keeps unless told otherwise (`NATS_REPLICAS`): one,
/// which a single server can hold.
pub const DEFAULT_NATS_REPLICAS: usize = 1;

/// How to reach NATS and how the shared stream and consumer are set up. The first
/// processor to start creates the stream and the consumer; later ones use them as they
/// find them. Its `Debug` hides the secrets: the userinfo of `url`, and `auth`.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Where the NATS server listens, e.g. `nats://127.0.0.1:4222`, or a comma-separated
    /// list of the servers of a cluster (the client fails over between them). A server may
    /// carry a user and password, or a token (`nats://user:password@host:4222`), used
    /// when `auth` is [`NatsAuth::None`].
    pub url: String,
    /// How the processor authenticates to NATS.
    pub auth: NatsAuth,
    /// Name of the work-queue stream (letters, digits, `-`, `_`).
    pub stream: String,
    /// Name of the durable pull consumer all processors share.
    pub consumer: String,
    /// Most messages the stream holds; a publish beyond that is refused as full.
    /// `processor::serve` sets it from the processor's queue size.
    pub capacity: usize,
    /// Most publishes waiting for JetStream's confirmation at once.
    pub max_pending_publishes: usize,
    /// How long a publish (and any other call to the broker) may wait for an answer.
    pub request_timeout: Duration,
    /// How long a delivered message may stay unacknowledged before it is delivered again.
    pub ack_wait: Duration,
    /// Deliveries of one message before it is dead-lettered instead.
    pub max_deliver: u32,
    /// Messages one processor asks for at a time. `processor::serve` sets it from the
    /// number of workers, so a processor that dies holds few messages.
    pub fetch_batch: usize,
    /// Copies JetStream keeps of the stream and the dead-letter stream (and so of the
    /// consumer) when this processor creates them. A stream found with another number is
    /// an error: it was set up for another deployment.
    pub replicas: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: DEFAULT_NATS_URL.to_owned(),
            auth: NatsAuth::None,
            stream: DEFAULT_NATS_STREAM.to_owned(),
            consumer: DEFAULT_NATS_CONSUMER.to_owned(),
            capacity: 1000,
            max_pending_publishes: DEFAULT_NATS_MAX_PENDING,
            request_timeout: DEFAULT_NATS_TIMEOUT,
            ack_wait: DEFAULT_NATS_ACK_WAIT,
            max_deliver: DEFAULT_NATS_MAX_DELIVER,
            fetch_batch: 8,
            replicas: DEFAULT_NATS_REPLICAS,
        }
    }
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &redact::userinfo(&self.url))
            .field("auth", &self.auth)
            .field("stream", &self.stream)
            .field("consumer", &self.consumer)
            .field("capacity", &self.capacity)
            .field("max_pending_publishes", &self.max_pending_publishes)
            .field("request_timeout", &self.request_timeout)
            .field("ack_wait", &self.ack_wait)
            .field("max_deliver", &self.max_deliver)
            .field("fetch_batch", &self.fetch_batch)
            .field("replicas", &self.replicas)
            .finish()
    }
}

impl NatsConfig {
    /// The servers of [`NatsConfig::url`], one per comma-separated entry.
    pub fn servers(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|server| !server.is_empty())
            .collect()
    }

    /// [`NatsConfig::url`] as it may be shown: its userinfo hidden.
    pub(crate) fn shown_url(&self) -> String {
        redact::userinfo(&self.url).into_owned()
    }

    /// The servers without their userinfo, as the client is given them, and how to
    /// authenticate: `auth`, else the userinfo of the URL.
    pub(super) fn connect_to(&self) -> Result<(Vec<String>, NatsAuth), &'static str> {
        let servers = self
            .servers()
            .into_iter()
            .map(|server| auth::split_userinfo(server).0)
            .collect();
        let auth = match &self.auth {
            NatsAuth::None => auth::in_url(&self.url)?.unwrap_or_default(),
            given => given.clone(),
        };
        Ok((servers, auth))
    }

    /// The subject messages are published on.
    pub fn subject(&self) -> String {
        format!("{}.messages", self.stream)
    }

    /// The stream dead letters are moved to.
    pub fn dead_letter_stream(&self) -> String {
        format!("{}_DEAD", self.stream)
    }

    /// The subject dead letters are published on.
    pub(crate) fn dead_letter_subject(&self) -> String {
        format!("{}.dead", self.stream)
    }
}

/// Why the queue could not be set up. A URL in it has its userinfo hidden.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The server could not be reached.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The URL tried.
        url: String,
        /// What failed.
        source: async_nats::ConnectError,
    },
    /// The server refused the credentials.
    #[error(
        "NATS at {url} refused the credentials (NATS_CREDS_FILE, NATS_USER with \
         NATS_PASSWORD_FILE, NATS_TOKEN_FILE, or the userinfo of NATS_URL): {source}"
    )]
    Refused {
        /// The URL tried.
        url: String,
        /// What the server said.
        source: async_nats::ConnectError,
    },
    /// The credentials cannot be given to the client.
    #[error("cannot authenticate to NATS at {url}: {problem}")]
    Credentials {
        /// The URL.
        url: String,
        /// What is wrong with them.
        problem: String,
    },
    /// A stream exists with another number of replicas than this processor asks for.
    #[error(
        "JetStream stream {stream} has {found} replica(s) but NATS_REPLICAS is {wanted}: \
         set NATS_REPLICAS={found}, or remove the stream so that it is created again"
    )]
    Replicas {
        /// The stream.
        stream: String,
        /// Its replicas.
        found: usize,
        /// The replicas asked for.
        wanted: usize,
    },
    /// The stream or the consumer could not be created or read.
    #[error("cannot set up JetStream {what}: {message}")]
    Setup {
        /// Which object.
        what: String,
        /// What failed.
        message: String,
        /// Whether the broker may well answer if asked again: it timed out, or JetStream
        /// was not available yet (a cluster electing a leader), rather than refused.
        transient: bool,
    },
}

impl NatsError {
    /// Whether setting up again may succeed (see [`NatsError::Setup`]'s `transient`).
    pub(crate) fn is_transient(&self) -> bool {
        matches!(
            self,
            NatsError::Setup {
                transient: true,
                ..
            }
        )
    }

    /// An error of `what` from a failed broker call.
    pub(super) fn setup(what: String, err: &dyn std::fmt::Display, transient: bool) -> NatsError {
        NatsError::Setup {
            what,
            message: err.to_string(),
            transient,
        }
    }
}

/// JetStream answers 503 while it cannot serve the request yet (no leader, no quorum).
fn unavailable(err: &async_nats::jetstream::Error) -> bool {
    err.code() == 503
}

/// Creates the work-queue stream, the dead-letter stream and the shared consumer unless
/// they exist.
pub(super) async fn setup(
    jetstream: &Context,
    config: &NatsConfig,
) -> Result<PullConsumer, NatsError> {
    let stream_error = |name: &str, err: &CreateStreamError| {
        let transient = match err.kind() {
            CreateStreamErrorKind::TimedOut | CreateStreamErrorKind::JetStreamUnavailable => true,
            CreateStreamErrorKind::JetStream(err) => unavailable(&err),
            _ => false,
        };
        NatsError::setup(format!("stream {name}"), err, transient)
    };
    let work = jetstream
        .get_or_create_stream(stream::Config {
            name: config.stream.clone(),
            subjects: vec![config.subject()],
            retention: RetentionPolicy::WorkQueue,
            max_messages: i64::try_from(config.capacity).unwrap_or(i64::MAX),
            discard: DiscardPolicy::New,
            storage: StorageType::File,
            num_replicas: config.replicas,
            ..stream::Config::default()
        })
        .await
        .map_err(|err| stream_error(&config.stream, &err))?;
    same_replicas(&work, config)?;
    let dead = jetstream
        .get_or_create_stream(stream::Config {
            name: config.dead_letter_stream(),
            subjects: vec![config.dead_letter_subject()],
            retention: RetentionPolicy::Limits,
            // Dead letters are kept for a person to look at; the oldest make room.
            max_messages: i64::try_from(config.capacity).unwrap_or(i64::MAX),
            discard: DiscardPolicy::Old,
            storage: StorageType::File,
            num_replicas: config.replicas,
            ..stream::Config::default()
        })
        .await
        .map_err(|err| stream_error(&config.dead_letter_stream(), &err))?;
    same_replicas(&dead, config)?;
    work.get_or_create_consumer(
        &config.consumer,
        pull::Config {
            durable_name: Some(config.consumer.clone()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: config.ack_wait,
            max_deliver: i64::from(config.max_deliver),
            ..pull::Config::default()
        },
    )
    .await
    .map_err(|err| {
        let transient = match err.kind() {
            ConsumerErrorKind::TimedOut | ConsumerErrorKind::Request => true,
            ConsumerErrorKind::JetStream(err) => unavailable(&err),
            _ => false,
        };
        NatsError::setup(format!("consumer {}", config.consumer), &err, transient)
    })
}

/// Whether `stream` keeps as many copies as `config` asks for; get-or-create returns an
/// existing stream as it is, so without this check a processor asking for three copies
/// would run on one and believe itself safe.
fn same_replicas(stream: &stream::Stream, config: &NatsConfig) -> Result<(), NatsError> {
    let info = stream.cached_info();
    // A stream created without a number has one copy.
    let found = info.config.num_replicas.max(1);
    if found == config.replicas {
        return Ok(());
    }
    Err(NatsError::Replicas {
        stream: info.config.name.clone(),
        found,
        wanted: config.replicas,
    })
}
