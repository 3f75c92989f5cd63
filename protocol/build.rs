//! Compiles the protocol's `.proto` files into `OUT_DIR` with prost, using the protoc binary
//! shipped by the `protoc-bin-vendored` crate so the build needs no system package.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/pulsar_api.proto"];
    for proto in &protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    config.compile_protos(&protos, &["proto"])?;
    Ok(())
}
