use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cairn_perf::cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn-bench: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(cairn_perf::run(cli))
}
