//! Cargo build script, not a module: compiles `src/rpc/proto/*.proto` into Rust with
//! tonic-build, using the protoc binary shipped in the `protoc-bin-vendored` crate, so a
//! fresh machine builds with cargo alone.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let protos = [
        "src/rpc/proto/master.proto",
        "src/rpc/proto/worker.proto",
        "src/rpc/proto/raft.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_build::configure()
        .bytes(["."])
        .compile_protos(&protos, &["src/rpc/proto"])?;
    Ok(())
}
