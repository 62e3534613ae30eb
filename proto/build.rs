//! Generates `keepalive.v1` with protox (pure Rust: no protoc binary to install).
//! `build_transport(false)` keeps the generated client free of tonic's native transport,
//! so the same crate builds for wasm32 (the browser client) and for native.

use std::{env, path::PathBuf};

const PROTOS: [&str; 2] = ["keepalive/v1/session.proto", "keepalive/v1/resume.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed=proto/{proto}");
    }
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("keepalive_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_transport(false)
        .type_attribute(".", "#[allow(clippy::all, clippy::pedantic)]")
        .compile_fds(fds)?;
    Ok(())
}
