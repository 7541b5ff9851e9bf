//! Generates the SkyWalking v3 segment protocol (prost messages, tonic server and client,
//! proto3-JSON serde impls) from `proto/` without `protoc`: protox parses the .proto files.
use prost::Message;

const PROTO_ROOT: &str = "../../proto";
const PROTO_FILES: [&str; 1] = ["skywalking/v3/tracing.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = PROTO_FILES.map(|file| format!("{PROTO_ROOT}/{file}"));
    let descriptors = protox::compile(&files, [PROTO_ROOT])?;
    let descriptor_bytes = descriptors.encode_to_vec();
    // The client is only used by the crate's own gRPC tests; generating it costs nothing at run
    // time and keeps the tests on the same types as the server.
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_bytes)?
        .ignore_unknown_fields()
        .build(&[".skywalking.v3"])?;
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    Ok(())
}
