//! The names the `system` crate gives its own settings are the study's variant names: a
//! suite that writes `QueueType::as_str()` or a setting's command-line value as a case's
//! variant writes a name the catalogue knows, with the spelling of `study::variant`.

use clap::ValueEnum;
use study::variant::Variant;
use system::{
    client::{ClientMode, HopProtocol},
    codec::Codec,
    queue::QueueType,
    worker::WorkerMode,
};

/// The variant each setting is, by an exhaustive match: a new value of a setting does not
/// compile until it is given its variant here.
fn queue(kind: QueueType) -> Variant {
    match kind {
        QueueType::Memory => Variant::Memory,
        QueueType::Pooled => Variant::Pooled,
        QueueType::Nats => Variant::Nats,
    }
}

fn codec(codec: Codec) -> Variant {
    match codec {
        Codec::Json => Variant::Json,
        Codec::Protobuf => Variant::Protobuf,
    }
}

fn worker_mode(mode: WorkerMode) -> Variant {
    match mode {
        WorkerMode::Baseline => Variant::Baseline,
        WorkerMode::Batched => Variant::Batched,
    }
}

fn client_mode(mode: ClientMode) -> Variant {
    match mode {
        ClientMode::Baseline => Variant::Baseline,
        ClientMode::Pooled => Variant::Pooled,
    }
}

fn hop_protocol(protocol: HopProtocol) -> Variant {
    match protocol {
        HopProtocol::Http1 => Variant::Http1,
        HopProtocol::H2c => Variant::H2c,
    }
}

/// `name` parses into `expected`, or the assertion says which spelling drifted.
fn parses_into(name: &str, expected: Variant) {
    assert_eq!(
        name.parse::<Variant>(),
        Ok(expected),
        "the system's `{name}` is not the variant `{expected}`"
    );
}

/// The command-line name of a clap value, as `CLIENT_MODE` and `HOP_PROTOCOL` read it.
fn value_name<T: ValueEnum>(value: &T) -> String {
    let possible = value.to_possible_value().expect("a named value");
    possible.get_name().to_owned()
}

#[test]
fn each_queue_codec_and_worker_mode_name_is_the_variant_of_the_same_meaning() {
    for kind in [QueueType::Memory, QueueType::Pooled, QueueType::Nats] {
        parses_into(kind.as_str(), queue(kind));
    }
    for c in [Codec::Json, Codec::Protobuf] {
        parses_into(c.as_str(), codec(c));
    }
    for mode in [WorkerMode::Baseline, WorkerMode::Batched] {
        parses_into(mode.as_str(), worker_mode(mode));
    }
}

#[test]
fn each_client_mode_and_hop_protocol_value_is_the_variant_of_the_same_meaning() {
    for mode in ClientMode::value_variants() {
        parses_into(&value_name(mode), client_mode(*mode));
    }
    for protocol in HopProtocol::value_variants() {
        parses_into(&value_name(protocol), hop_protocol(*protocol));
    }
}
