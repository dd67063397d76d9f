//! Generates the vaka/1 types from proto/device.proto with protoc (Debian: protobuf-compiler;
//! override with the PROTOC environment variable).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("device.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    prost_build::Config::new().compile_protos(&[file], &[root])?;
    Ok(())
}
