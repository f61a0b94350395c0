//! Types generated from `proto/diplom/v1/*.proto`: prost messages, tonic stubs, and serde
//! impls that follow the proto3 canonical JSON mapping (camelCase names, bytes as base64,
//! 64-bit integers as strings; both spellings of a name accepted on input).
#![allow(missing_docs, unreachable_pub, clippy::all, rust_2018_idioms)]

include!(concat!(env!("OUT_DIR"), "/diplom.v1.rs"));
include!(concat!(env!("OUT_DIR"), "/diplom.v1.serde.rs"));

/// The encoded descriptor set of the contract, served by gRPC reflection.
pub(crate) const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/diplom_descriptor.bin"));
