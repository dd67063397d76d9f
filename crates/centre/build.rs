//! Generates vaka.centre.v1 (messages, server and client) from proto/centre.proto with protoc,
//! plus a descriptor set for the reflection service.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("centre.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("centre_descriptor.bin"))
        .compile_protos(&[file], &[root])?;
    Ok(())
}
