//! `cairn`: an etcd v3 member, configured with etcd's flags, `ETCD_*` variables and
//! `--config-file`.

use cairn_server::config::{self, Invocation};
use cairn_server::Server;

// mimalloc instead of glibc's malloc: about a tenth of a member's CPU under load went to
// glibc's malloc/free (consolidation included) in profiles of many small requests.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let parsed = match config::from_process() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cairn: {e}");
            std::process::exit(e.exit_code());
        }
    };
    let cfg = match parsed.invocation {
        Invocation::PrintVersion => {
            print!("{}", config::version_text());
            return;
        }
        Invocation::PrintHelp => {
            print!("{}", config::help_text());
            return;
        }
        Invocation::Run(cfg) => cfg,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cfg.log_level.as_filter()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // A panic anywhere (the raft loop above all) leaves the member unable to make
    // progress: stop the process, as etcd's would, rather than serve half a member.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        eprintln!("cairn: panic: the member stops");
        std::process::exit(2);
    }));
    for w in &parsed.warnings {
        tracing::warn!("{w}");
    }
    if !cfg.data_dir.join("member").exists() {
        if let Err(e) = cfg.verify_bootstrap() {
            eprintln!("cairn: {e}");
            std::process::exit(e.exit_code());
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(async move {
        let server = match Server::start(*cfg).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                return 1;
            }
        };
        let code = tokio::select! {
            _ = wait_for_signal() => {
                tracing::info!("shutting down");
                0
            }
            r = server.terminated() => match r {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!(error = %e, "member stopped");
                    1
                }
            },
        };
        server.stop().await;
        code
    });
    std::process::exit(code);
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
