//! Compiles etcd's protos (../proto) with protox (no system protoc) into tonic/prost code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "../proto/etcdserverpb/rpc.proto",
        "../proto/mvccpb/kv.proto",
        "../proto/authpb/auth.proto",
        "../proto/v3lockpb/v3lock.proto",
        "../proto/v3electionpb/v3election.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["../proto"])?;
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    Ok(())
}
