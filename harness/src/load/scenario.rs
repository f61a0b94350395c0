//! Scenarios: what a load run does, read from a TOML file (`harness/scenarios/*.toml`) and
//! adjusted by command-line overrides. A scenario is checked once, by [`Scenario::validate`],
//! before anything runs: every count and duration has a bound, so no run is unbounded.

use std::{collections::BTreeMap, fs, path::Path, time::Duration};

use serde::{Deserialize, Serialize};

/// The longest run a scenario may ask for; longer measurements are several runs.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// The most connections one run opens.
pub const MAX_CONNECTIONS: u32 = 10_000;
/// The most requests in flight on one connection (HTTP/2 streams, HTTP/1.1 pipeline depth).
pub const MAX_IN_FLIGHT: u32 = 1_000;
/// The most messages in one client-streaming call.
pub const MAX_MESSAGES_PER_STREAM: u32 = 100_000;

/// One load scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in reports.
    pub name: String,
    /// What the scenario is for, for a person.
    #[serde(default)]
    pub description: String,
    /// Which protocol to speak.
    pub protocol: Protocol,
    /// `host:port` of the server; must be a loopback address.
    #[serde(default = "default_target")]
    pub target: String,
    /// Request path; the protocol's ingest path when absent.
    #[serde(default)]
    pub path: Option<String>,
    /// Closed loop (a fixed number in flight) or open loop (a fixed rate).
    #[serde(default)]
    pub mode: Mode,
    /// Open loop: requests (calls) per second over all connections.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Connections opened at the start (and reopened after a failure).
    #[serde(default = "one")]
    pub connections: u32,
    /// Requests in flight per connection: HTTP/2 streams, or the HTTP/1.1 pipeline depth.
    /// In the open loop it is the most that may be in flight; a request that finds no free
    /// slot waits, and its latency still counts from when it should have been sent.
    #[serde(default = "one")]
    pub in_flight: u32,
    /// Load-generator threads, each with its own single-threaded runtime.
    #[serde(default = "one")]
    pub threads: u32,
    /// Seconds measured, after the warm-up.
    pub duration_secs: f64,
    /// Seconds of load before measuring starts; nothing from them is recorded.
    #[serde(default)]
    pub warmup_secs: f64,
    /// A request without an answer after this long counts as a timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Open loop: send each request on time to the microsecond by polling the clock for
    /// the last 2 ms before it is due, instead of up to 1-2 ms late on tokio's millisecond
    /// timer. Costs generator CPU; use it when the generator has a core of its own.
    #[serde(default)]
    pub precise_timing: bool,
    /// Microseconds a connection waiting for an answer polls (spinning on its runtime)
    /// before it sleeps in the kernel. A sleeping generator must be woken for each answer,
    /// at the server's expense; a short spin catches most answers awake. 0 sleeps at once;
    /// a spin as long as the run is busy polling, which costs a whole generator core.
    #[serde(default = "default_spin_us")]
    pub spin_us: u64,
    /// What each request carries.
    #[serde(default)]
    pub payload: Payload,
}

/// The protocol a scenario speaks: the study's, so that its one spelling
/// ([`Protocol::as_str`]) is the same in scenarios, on the command line and in result files.
pub use study::protocol::Protocol;

/// The parser of a `--protocol` value: exactly the names of [`Protocol::ALL`], each listed
/// with its description in `--help`.
pub fn protocol_parser() -> impl clap::builder::TypedValueParser<Value = Protocol> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
    let names = Protocol::ALL.map(|p| PossibleValue::new(p.as_str()).help(p.description()));
    PossibleValuesParser::new(names).try_map(|name| name.parse::<Protocol>())
}

/// Closed or open loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Each slot sends its next request when the previous answer arrives.
    #[default]
    Closed,
    /// Requests are due at a fixed rate; latency counts from when each was due, so a slow
    /// server cannot hide its stalls by slowing the generator down (coordinated omission).
    Open,
}

/// The body of each request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// `source` of each message.
    #[serde(default = "default_source")]
    pub source: String,
    /// Size of `data` in bytes (filled with a repeating letter pattern).
    #[serde(default = "default_data_bytes")]
    pub data_bytes: usize,
    /// `metadata` of each message.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Messages per call of `grpc_stream`.
    #[serde(default = "default_messages_per_stream")]
    pub messages_per_stream: u32,
}

impl Default for Payload {
    fn default() -> Self {
        Payload {
            source: default_source(),
            data_bytes: default_data_bytes(),
            metadata: BTreeMap::new(),
            messages_per_stream: default_messages_per_stream(),
        }
    }
}

/// Why a scenario cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not a valid scenario.
    #[error("invalid scenario {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// What went wrong.
        source: Box<toml::de::Error>,
    },
    /// A value is out of its bounds.
    #[error("scenario {name}: {reason}")]
    Invalid {
        /// The scenario.
        name: String,
        /// Which value, and why.
        reason: String,
    },
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let scenario: Scenario = toml::from_str(&text).map_err(|source| ScenarioError::Parse {
            path: path.display().to_string(),
            source: Box::new(source),
        })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Parses a scenario from TOML text (without validating it).
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        toml::from_str(text).map_err(|source| ScenarioError::Parse {
            path: "<text>".to_owned(),
            source: Box::new(source),
        })
    }

    /// A closed-loop scenario of `protocol` against `target` with the defaults, for code
    /// that builds scenarios rather than reading them.
    pub fn closed(name: &str, protocol: Protocol, target: &str) -> Scenario {
        Scenario {
            name: name.to_owned(),
            description: String::new(),
            protocol,
            target: target.to_owned(),
            path: None,
            mode: Mode::Closed,
            rate: None,
            connections: 1,
            in_flight: 1,
            threads: 1,
            duration_secs: 1.0,
            warmup_secs: 0.0,
            timeout_ms: default_timeout_ms(),
            precise_timing: false,
            spin_us: default_spin_us(),
            payload: Payload::default(),
        }
    }

    /// The path requests go to.
    pub fn path(&self) -> &str {
        self.path
            .as_deref()
            .unwrap_or_else(|| self.protocol.default_path())
    }

    /// The measured duration.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_secs)
    }

    /// The warm-up.
    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_secs)
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Checks every bound; a scenario that passes cannot make an unbounded run.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let fail = |reason: String| {
            Err(ScenarioError::Invalid {
                name: self.name.clone(),
                reason,
            })
        };
        let max = MAX_DURATION.as_secs_f64();
        if !(self.duration_secs > 0.0 && self.duration_secs <= max) {
            return fail(format!("duration_secs must be in (0, {max}]"));
        }
        if !(self.warmup_secs >= 0.0 && self.warmup_secs <= max) {
            return fail(format!("warmup_secs must be in [0, {max}]"));
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) {
            return fail(format!("connections must be in 1..={MAX_CONNECTIONS}"));
        }
        if !(1..=MAX_IN_FLIGHT).contains(&self.in_flight) {
            return fail(format!("in_flight must be in 1..={MAX_IN_FLIGHT}"));
        }
        if self.threads == 0 || self.threads > self.connections {
            return fail("threads must be in 1..=connections".to_owned());
        }
        if self.spin_us > 1_000_000 {
            return fail("spin_us must be at most 1000000".to_owned());
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return fail("timeout_ms must be in 1..=60000".to_owned());
        }
        if !(1..=MAX_MESSAGES_PER_STREAM).contains(&self.payload.messages_per_stream) {
            return fail(format!(
                "payload.messages_per_stream must be in 1..={MAX_MESSAGES_PER_STREAM}"
            ));
        }
        if self.payload.data_bytes > 1 << 20 {
            return fail("payload.data_bytes must be at most 1 MiB".to_owned());
        }
        match (self.mode, self.rate) {
            (Mode::Open, Some(rate)) if rate > 0.0 && rate <= 10_000_000.0 => {}
            (Mode::Open, _) => return fail("open loop needs a rate in (0, 1e7]".to_owned()),
            (Mode::Closed, Some(_)) => {
                return fail("a rate only applies to mode = \"open\"".to_owned());
            }
            (Mode::Closed, None) => {}
        }
        if !is_loopback(&self.target) {
            return fail(format!(
                "target {} is not a loopback address (load is only ever sent to this machine)",
                self.target
            ));
        }
        if !self.path().starts_with('/') {
            return fail("path must start with '/'".to_owned());
        }
        Ok(())
    }
}

/// Whether `target` (`host:port`) names this machine: `127.0.0.0/8`, `[::1]` or `localhost`.
pub fn is_loopback(target: &str) -> bool {
    let Some((host, port)) = target.rsplit_once(':') else {
        return false;
    };
    if port.parse::<u16>().is_err() {
        return false;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn default_target() -> String {
    "127.0.0.1:8080".to_owned()
}

fn default_source() -> String {
    "load".to_owned()
}

fn default_data_bytes() -> usize {
    64
}

fn default_messages_per_stream() -> u32 {
    100
}

fn default_spin_us() -> u64 {
    // Long enough for the answers to a batch of requests on loopback, short enough that a
    // generator waiting on a slow server soon sleeps.
    20
}

fn default_timeout_ms() -> u64 {
    5_000
}

fn one() -> u32 {
    1
}

#[cfg(test)]
mod tests {
    use clap::builder::TypedValueParser as _;

    use super::*;

    #[test]
    fn the_command_line_spells_each_protocol_as_files_do() {
        let parser = protocol_parser();
        let names: Vec<String> = parser
            .possible_values()
            .expect("listed")
            .map(|v| v.get_name().to_owned())
            .collect();
        let spelled: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(names, spelled);
        let scenario: Scenario =
            toml::from_str("name = \"s\"\nprotocol = \"grpc_stream\"\nduration_secs = 1.0\n")
                .expect("a scenario");
        assert_eq!(scenario.protocol, Protocol::GrpcStream);
    }
}
