//! Alarm centres over gRPC.
pub mod pb {
    tonic::include_proto!("vaka.centre.v1");
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("centre_descriptor");
}
