//! Command line and environment: every setting is a flag with an environment variable of
//! the same meaning. A bad value stops the program at start-up with a message that names
//! the setting (clap's error names the flag and the variable's name).
//!
//! Each role takes the flags it uses, grouped under help headings (`config/args.rs`):
//! `system grpc --help` shows no queue settings, and `system gateway --nats-url ..` is a
//! usage error. Without a role, every role runs in one process and every flag is taken;
//! flags go after the role, never before it. A role's [`Settings`] hold the defaults in the
//! groups it does not take. Environment variables are read (and checked) whatever the
//! role, so one environment can serve every role of a deployment.

mod args;
mod loaded;
pub mod names;

use std::{net::IpAddr, path::PathBuf, sync::Arc, time::Duration};

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

pub use self::args::{
    AccessArgs, ClientArgs, CommonArgs, GatewayArgs, GrpcArgs, HopArgs, IngestAccessArgs, NatsArgs,
    ProcessorArgs, QueueArgs, ServerTlsArgs,
};
pub use self::loaded::{LoadError, Loaded};
use crate::{
    domain::budget::Budget,
    domain::queue::{NatsAuth, NatsAuthSettings, NatsConfig},
    serve::auth::{self, Scope, Secret, TokenError, Tokens},
    serve::clients::{ClientLimits, Clients},
    serve::server::HttpLimits,
    serve::tls::{Tls, TlsError, TlsFiles},
};

/// The command line of the `system` binary: the role to run (all of them when omitted) and
/// its settings.
#[derive(Debug)]
pub struct Cli {
    /// Which role to run; all of them when `None`.
    pub role: Option<Role>,
    /// The settings: those the role takes, defaults for the rest.
    pub settings: Settings,
}

/// A role of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The processor: `/enqueue`, the queue and the worker pool.
    Processor,
    /// The HTTP gateway (HTTP/1.1 and h2c), forwarding to `PROCESSOR_URL`.
    Gateway,
    /// The gRPC ingest server, forwarding to `PROCESSOR_URL`.
    Grpc,
}

/// Every setting, in its groups, each with its environment variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// What every role uses.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The gateway's address, port and body limit.
    #[command(flatten)]
    pub gateway_role: GatewayArgs,
    /// The gRPC server's address and ports.
    #[command(flatten)]
    pub grpc_role: GrpcArgs,
    /// The processor's address, port and workers.
    #[command(flatten)]
    pub processor_role: ProcessorArgs,
    /// The processor's queue.
    #[command(flatten)]
    pub queue: QueueArgs,
    /// The NATS queue.
    #[command(flatten)]
    pub nats_queue: NatsArgs,
    /// The front doors' client of the processor.
    #[command(flatten)]
    pub hop: HopArgs,
    /// The servers' certificate.
    #[command(flatten)]
    pub server_tls: ServerTlsArgs,
    /// The processor's and the debug endpoint's tokens.
    #[command(flatten)]
    pub access: AccessArgs,
    /// The front doors' ingest token.
    #[command(flatten)]
    pub ingest_access: IngestAccessArgs,
    /// What one client of the front doors may hold.
    #[command(flatten)]
    pub client_limits: ClientArgs,
}

/// The command line as clap sees it; [`Cli`] is what it means.
#[derive(Debug, Parser)]
#[command(
    name = "system",
    version,
    about = "Ingest system: gateway, gRPC ingest and processor",
    args_conflicts_with_subcommands = true
)]
struct Line {
    #[command(subcommand)]
    role: Option<RoleLine>,
    #[command(flatten)]
    all: Settings,
}

#[derive(Debug, Subcommand)]
enum RoleLine {
    /// The processor: `/enqueue`, the queue and the worker pool.
    Processor(ProcessorLine),
    /// The HTTP gateway (HTTP/1.1 and h2c), forwarding to `PROCESSOR_URL`.
    Gateway(GatewayLine),
    /// The gRPC ingest server, forwarding to `PROCESSOR_URL`.
    Grpc(GrpcLine),
}

#[derive(Debug, Args)]
struct ProcessorLine {
    #[command(flatten)]
    processor_role: ProcessorArgs,
    #[command(flatten)]
    queue: QueueArgs,
    #[command(flatten)]
    nats_queue: NatsArgs,
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    server_tls: ServerTlsArgs,
    #[command(flatten)]
    access: AccessArgs,
}

#[derive(Debug, Args)]
struct GatewayLine {
    #[command(flatten)]
    gateway_role: GatewayArgs,
    #[command(flatten)]
    hop: HopArgs,
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    server_tls: ServerTlsArgs,
    #[command(flatten)]
    access: AccessArgs,
    #[command(flatten)]
    ingest_access: IngestAccessArgs,
    #[command(flatten)]
    client_limits: ClientArgs,
}

#[derive(Debug, Args)]
struct GrpcLine {
    #[command(flatten)]
    grpc_role: GrpcArgs,
    #[command(flatten)]
    hop: HopArgs,
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    server_tls: ServerTlsArgs,
    #[command(flatten)]
    access: AccessArgs,
    #[command(flatten)]
    ingest_access: IngestAccessArgs,
    #[command(flatten)]
    client_limits: ClientArgs,
}

impl From<Line> for Cli {
    fn from(line: Line) -> Cli {
        let (role, settings) = match line.role {
            None => (None, line.all),
            Some(RoleLine::Processor(taken)) => (
                Some(Role::Processor),
                Settings {
                    common: taken.common,
                    server_tls: taken.server_tls,
                    access: taken.access,
                    processor_role: taken.processor_role,
                    queue: taken.queue,
                    nats_queue: taken.nats_queue,
                    ..Settings::default()
                },
            ),
            Some(RoleLine::Gateway(taken)) => (
                Some(Role::Gateway),
                Settings {
                    common: taken.common,
                    server_tls: taken.server_tls,
                    access: taken.access,
                    ingest_access: taken.ingest_access,
                    client_limits: taken.client_limits,
                    hop: taken.hop,
                    gateway_role: taken.gateway_role,
                    ..Settings::default()
                },
            ),
            Some(RoleLine::Grpc(taken)) => (
                Some(Role::Grpc),
                Settings {
                    common: taken.common,
                    server_tls: taken.server_tls,
                    access: taken.access,
                    ingest_access: taken.ingest_access,
                    client_limits: taken.client_limits,
                    hop: taken.hop,
                    grpc_role: taken.grpc_role,
                    ..Settings::default()
                },
            ),
        };
        Cli { role, settings }
    }
}

impl CommandFactory for Cli {
    fn command() -> clap::Command {
        Line::command()
    }

    fn command_for_update() -> clap::Command {
        Line::command_for_update()
    }
}

impl FromArgMatches for Cli {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Line::from_arg_matches(matches).map(Cli::from)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Cli::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Parser for Cli {}

/// The settings as the command line defines them when nothing is given, the environment
/// included: each its default, or unset.
impl Default for Settings {
    fn default() -> Self {
        let command = Settings::augment_args(clap::Command::new("defaults"))
            .mut_args(|arg| arg.env(None::<&'static str>));
        let parsed = command
            .try_get_matches_from(["defaults"])
            .and_then(|matches| Settings::from_arg_matches(&matches));
        // No setting is required and every default passes its own parser (the tests parse
        // them), so an empty command line always parses; nothing outside the code reaches it.
        parsed.expect("an empty command line parses")
    }
}

impl Settings {
    /// The address `role` listens on: its own, or `BIND_ADDR`.
    pub fn bind_addr_for(&self, role: Role) -> IpAddr {
        let own = match role {
            Role::Gateway => self.gateway_role.gateway_bind_addr,
            Role::Grpc => self.grpc_role.grpc_bind_addr,
            Role::Processor => self.processor_role.processor_bind_addr,
        };
        own.unwrap_or(self.common.bind_addr)
    }

    /// The access tokens, each read from its value or its file and checked, and the
    /// credentials for NATS; an error names the setting (and never holds a secret).
    pub fn tokens(&self) -> Result<Tokens, TokenError> {
        let load = |scope, value: &Option<Secret>, file: &Option<PathBuf>| {
            auth::load(scope, value.as_ref(), file.as_deref())
        };
        Ok(Tokens {
            ingest: auth::load_clients(
                self.ingest_access.ingest_token.as_ref(),
                self.ingest_access.ingest_token_file.as_deref(),
            )?,
            processor: load(
                Scope::Processor,
                &self.access.processor_token,
                &self.access.processor_token_file,
            )?,
            debug: load(
                Scope::Debug,
                &self.access.debug_token,
                &self.access.debug_token_file,
            )?,
            nats: NatsAuth::load(&NatsAuthSettings {
                url: &self.nats_queue.nats_url,
                creds_file: self.nats_queue.nats_creds_file.as_deref(),
                user: self.nats_queue.nats_user.as_deref(),
                password_file: self.nats_queue.nats_password_file.as_deref(),
                token_file: self.nats_queue.nats_token_file.as_deref(),
            })?,
        })
    }

    /// The TLS files the settings name.
    pub(crate) fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.server_tls.tls_cert.clone(),
            key: self.server_tls.tls_key.clone(),
            self_signed: self.server_tls.tls_self_signed.clone(),
            client_ca: self.processor_role.tls_client_ca.clone(),
            processor_ca: self.hop.processor_ca.clone(),
            hop_cert: self.hop.hop_client_cert.clone(),
            hop_key: self.hop.hop_client_key.clone(),
            processor_name: self.hop.processor_tls_name.clone(),
        }
    }

    /// Reads the TLS files (once, at start-up); a bad one is an error naming its setting.
    /// A self-signed certificate also names the addresses the roles listen on.
    pub fn tls(&self) -> Result<Tls, TlsError> {
        let hosts =
            [Role::Gateway, Role::Grpc, Role::Processor].map(|role| self.bind_addr_for(role));
        self.tls_files().load(&hosts)
    }

    /// The shutdown drain timeout.
    pub(crate) fn drain_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.common.shutdown_timeout))
    }

    /// The limits and the shutdown drain of the front doors' HTTP servers.
    pub(crate) fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            drain_timeout: self.drain_timeout(),
            ..HttpLimits::default()
        }
    }

    /// The budget of bytes in flight that every role of the process shares.
    pub fn budget(&self) -> Arc<Budget> {
        Budget::new("MEMORY_BUDGET", self.common.memory_budget as usize)
    }

    /// The clients of the front doors, each with its share of `budget`.
    pub fn clients(&self, budget: &Arc<Budget>) -> Arc<Clients> {
        let defaults = ClientLimits::within(budget.limit());
        let memory = self.client_limits.memory_per_client;
        Clients::new(
            budget,
            ClientLimits {
                connections: self.client_limits.max_connections_per_client as usize,
                memory: memory.map_or(defaults.memory, |bytes| bytes as usize),
            },
        )
    }

    /// Where and how the NATS queue lives; its credentials are loaded with the tokens
    /// ([`Settings::tokens`]).
    pub fn nats(&self) -> NatsConfig {
        NatsConfig {
            url: self.nats_queue.nats_url.clone(),
            stream: self.nats_queue.nats_stream.clone(),
            consumer: self.nats_queue.nats_consumer.clone(),
            max_pending_publishes: self.nats_queue.nats_max_pending as usize,
            request_timeout: Duration::from_millis(u64::from(self.nats_queue.nats_timeout_ms)),
            ack_wait: Duration::from_millis(u64::from(self.nats_queue.nats_ack_wait_ms)),
            max_deliver: self.nats_queue.nats_max_deliver,
            replicas: usize::from(self.nats_queue.nats_replicas),
            ..NatsConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Uri;

    use crate::{
        hop::client::{self, ForwarderConfig},
        roles::{
            gateway::{self, GatewayConfig},
            grpc::{self, GrpcConfig},
            processor::{self, ProcessorConfig},
        },
        serve::{
            clients::Clients,
            server::{DEFAULT_BIND_ADDR, HttpLimits},
        },
    };

    fn shown(value: impl std::fmt::Debug) -> String {
        format!("{value:?}")
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Each setting's default is the one its component has on its own: what an empty
    /// command line gives is what the component's `Default` (or `new`) gives.
    #[test]
    fn an_empty_command_line_gives_the_components_defaults() {
        let loaded = Loaded::load(Settings::default()).unwrap();
        let settings = &loaded.settings;
        let budget = Budget::process_default();
        assert_eq!(shown(settings.budget()), shown(&budget));
        assert_eq!(shown(settings.http_limits()), shown(HttpLimits::default()));

        let url: Uri = client::DEFAULT_PROCESSOR_URL.parse().unwrap();
        assert_eq!(settings.hop.processor_url, url);
        // TLS is off; the hop still has its client side, used only for an `https` URL.
        let forwarder = || ForwarderConfig {
            tls: Some(loaded.tls.hop.clone()),
            ..ForwarderConfig::new(url.clone())
        };
        assert_eq!(shown(loaded.forwarder(url.clone())), shown(forwarder()));
        let clients = settings.clients(&budget);
        assert_eq!(shown(&clients), shown(Clients::within(&budget)));
        assert_eq!(
            shown(loaded.gateway(url.clone(), None)),
            shown(GatewayConfig::new(forwarder()))
        );
        assert_eq!(
            shown(loaded.grpc(url.clone(), None)),
            shown(GrpcConfig::new(forwarder()))
        );

        let ours = loaded.processor();
        let theirs = ProcessorConfig::default();
        assert_eq!(shown(&ours), shown(&theirs));
        assert_eq!(ours.nats, theirs.nats);
        assert_eq!(shown(ours.limits), shown(theirs.limits));
        assert_eq!(ours.profile_endpoint, theirs.profile_endpoint);
        assert_eq!(ours.dedup_ids, theirs.dedup_ids);
        assert_eq!(ours.dedup_window, theirs.dedup_window);
        assert_eq!(ours.queue_bytes, theirs.queue_bytes);
        assert_eq!(shown(&ours.budget), shown(&theirs.budget));

        // The ports have no component `Default`; the front doors' default processor is the
        // processor's default port on the default address.
        assert_eq!(settings.gateway_role.api_port, gateway::DEFAULT_PORT);
        assert_eq!(settings.grpc_role.grpc_port, grpc::DEFAULT_PORT);
        assert_eq!(
            settings.processor_role.processor_port,
            processor::DEFAULT_PORT
        );
        assert_eq!(url.port_u16(), Some(processor::DEFAULT_PORT));
        assert_eq!(url.host(), Some(DEFAULT_BIND_ADDR.to_string().as_str()));
        for role in [Role::Gateway, Role::Grpc, Role::Processor] {
            assert_eq!(settings.bind_addr_for(role), DEFAULT_BIND_ADDR);
        }
    }

    /// A role's settings are the flags it takes, and defaults for those it does not.
    #[test]
    fn a_role_takes_its_own_flags_and_defaults_the_rest() {
        let cli = Cli::try_parse_from(["system", "processor", "--queue-size", "7"]).unwrap();
        assert_eq!(cli.role, Some(Role::Processor));
        assert_eq!(cli.settings.queue.queue_size, 7);
        let cli = Cli::try_parse_from(["system", "grpc", "--hop-batch", "3"]).unwrap();
        assert_eq!(cli.role, Some(Role::Grpc));
        assert_eq!(cli.settings.hop.hop_batch, 3);
        let cli = Cli::try_parse_from(["system", "--hop-batch", "3", "--queue-size", "7"]).unwrap();
        assert_eq!(cli.role, None);
        assert_eq!(
            (cli.settings.hop.hop_batch, cli.settings.queue.queue_size),
            (3, 7)
        );
        for line in [
            &["system", "gateway", "--queue-size", "7"][..],
            &["system", "processor", "--hop-batch", "3"],
            &["system", "--hop-batch", "3", "grpc"],
        ] {
            assert!(Cli::try_parse_from(line).is_err(), "{line:?} was taken");
        }
    }

    /// `NATS_URL` takes one server or a comma-separated list of them (the client fails
    /// over between them); `NATS_REPLICAS` is 1, 3 or 5. Anything else is refused at once.
    #[test]
    fn nats_takes_a_list_of_servers_and_an_odd_number_of_replicas() {
        let parse = |flags: &[&str]| {
            let mut line = vec!["system", "processor"];
            line.extend_from_slice(flags);
            Cli::try_parse_from(line).map(|cli| cli.settings.nats())
        };
        let nats = parse(&[
            "--nats-url",
            "nats://10.0.0.1:4222, nats://10.0.0.2:4222,nats://10.0.0.3:4222",
            "--nats-replicas",
            "3",
        ])
        .unwrap();
        assert_eq!(
            nats.servers(),
            [
                "nats://10.0.0.1:4222",
                "nats://10.0.0.2:4222",
                "nats://10.0.0.3:4222"
            ]
        );
        assert_eq!(nats.replicas, 3);
        assert_eq!(parse(&[]).unwrap().replicas, 1);
        assert_eq!(
            parse(&[]).unwrap().servers(),
            [crate::domain::queue::DEFAULT_NATS_URL]
        );
        for bad in [
            &["--nats-url", "nats://a:4222,,nats://b:4222"][..],
            &["--nats-url", "nats://a:4222,http://b:4222"],
            &["--nats-url", ","],
            &["--nats-replicas", "2"],
            &["--nats-replicas", "0"],
            &["--nats-replicas", "7"],
        ] {
            let err = parse(bad).expect_err(&format!("{bad:?} was taken"));
            assert!(err.to_string().contains("nats-"), "{err}");
        }
    }
}
