//! Compiles etcd's v3 protocol definitions from `../proto` into a gRPC *client*
//! (no server code), with no system `protoc`: protox parses the files in-process.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new("../proto");
    let rpc = "etcdserverpb/rpc.proto";
    println!("cargo:rerun-if-changed=../proto");
    if !root.join(rpc).exists() {
        return Err(format!(
            "cairn-perf needs etcd's protocol files: {} is missing",
            root.join(rpc).display()
        )
        .into());
    }
    let fds = protox::compile([rpc], [root])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
