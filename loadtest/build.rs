//! Generates the vaka.centre.v1 client from a snapshot of the centre branch's proto (see the
//! header of proto/centre.proto: at the merge this goes, and `vaka_centre::pb` is used).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let file = root.join("centre.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&[file], &[root])?;
    Ok(())
}
