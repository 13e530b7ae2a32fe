//! Compiles the protos with protox (pure Rust, no system `protoc`) and
//! generates the tonic code. The descriptor set is kept for server reflection.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/carewatch/v1/types.proto",
    "proto/carewatch/v1/ingest.proto",
    "proto/carewatch/v1/dashboard.proto",
    "proto/carewatch/v1/admin.proto",
    "proto/carewatch/v1/notifications.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("carewatch_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
