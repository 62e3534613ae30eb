//! Compiles `prices.proto` like any tonic project, with keepalive-proto's directory on the
//! include path (for `import "keepalive/v1/resume.proto"`) and its types for the
//! `keepalive.v1` package.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/prices/v1/prices.proto");
    let fds = protox::compile(
        ["prices/v1/prices.proto"],
        ["proto", keepalive_proto::INCLUDE_DIR],
    )?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("prices_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    let (package, rust_path) = keepalive_proto::EXTERN_PATH;
    tonic_prost_build::configure()
        .build_transport(false)
        .extern_path(package, rust_path)
        .compile_fds(fds)?;
    Ok(())
}
