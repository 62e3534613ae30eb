//! Generates `keepalive.demo.v1` the way a user's crate generates its own protocol: its
//! `.proto` imports `keepalive/v1/resume.proto` from keepalive-proto's include directory,
//! and the `keepalive.v1` types are keepalive-proto's (extern_path), not generated again.

use std::{env, path::PathBuf};

const PROTO: &str = "keepalive/demo/v1/feed.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/{PROTO}");
    let fds = protox::compile([PROTO], ["proto", keepalive_proto::INCLUDE_DIR])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("demo_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    let (package, rust_path) = keepalive_proto::EXTERN_PATH;
    tonic_prost_build::configure()
        .build_transport(false)
        .extern_path(package, rust_path)
        .type_attribute(".", "#[allow(clippy::all, clippy::pedantic)]")
        .compile_fds(fds)?;
    Ok(())
}
