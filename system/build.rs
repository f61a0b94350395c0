//! Compiles the wire contract in `proto/` with protox (a protobuf compiler written in Rust),
//! so building needs no `protoc`. Generates prost messages, tonic stubs, serde impls that
//! follow the proto3 canonical JSON mapping, and the descriptor set served by gRPC reflection.

use std::{env, fs, path::PathBuf};

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    let files = [
        proto_root.join("diplom/v1/messages.proto"),
        proto_root.join("diplom/v1/service.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let descriptors = protox::compile(&files, [&proto_root])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_bytes = descriptors.encode_to_vec();
    fs::write(out_dir.join("diplom_descriptor.bin"), &descriptor_bytes)?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;

    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .build(&[".diplom.v1"])?;
    Ok(())
}
