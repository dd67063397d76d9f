//! Generates the vaka/1 types from proto/device.proto with protoc (Debian: protobuf-compiler;
//! override with the PROTOC environment variable).
// CARGO_MANIFEST_DIR is read at run time: the compiled build script is shared by every checkout
// that uses this target dir.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let file = root.join("device.proto");
    // Relative to the package root, so the check follows whichever checkout is being built.
    println!("cargo:rerun-if-changed=../../proto/device.proto");
    println!("cargo:rerun-if-changed=build.rs");
    prost_build::Config::new().compile_protos(&[file], &[root])?;
    Ok(())
}
