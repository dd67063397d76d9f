//! Generates vaka.centre.v1 (messages, server and client) from proto/centre.proto with protoc,
//! plus a descriptor set for the reflection service.
//!
//! The output goes to a subdirectory of OUT_DIR named after this package's directory: cargo gives
//! the same OUT_DIR to every checkout of the workspace that shares a target dir (path packages
//! hash relative to the workspace), so several worktrees building into one target dir would
//! otherwise read each other's generated code.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not with env!(): the compiled build script is shared by every checkout
    // that uses this target dir, so a path baked in at compile time may name another checkout.
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest.join("../../proto");
    let file = root.join("centre.proto");
    // Relative to the package root, so the check follows whichever checkout is being built.
    println!("cargo:rerun-if-changed=../../proto/centre.proto");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var("OUT_DIR")?)
        .join(manifest.to_string_lossy().trim_start_matches('/'));
    std::fs::create_dir_all(&out)?;
    tonic_prost_build::configure()
        .out_dir(&out)
        .file_descriptor_set_path(out.join("centre_descriptor.bin"))
        .compile_protos(&[file], &[root])?;
    Ok(())
}
