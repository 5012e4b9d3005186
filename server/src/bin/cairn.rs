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
    if let Err(e) = cairn_server::logging::init(&cfg) {
        eprintln!("cairn: {e}");
        std::process::exit(1);
    }
    // A panic anywhere (the raft loop above all) leaves the member unable to make
    // progress: stop the process, as etcd's would, rather than serve half a member.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        eprintln!("cairn: panic: the member stops");
        std::process::exit(2);
    }));
    log_effective_config(&cfg);
    for w in &parsed.warnings {
        tracing::warn!("{w}");
    }
    if !cfg.data_dir.join("member").exists() {
        if let Err(e) = cfg.verify_bootstrap() {
            // Logging is set up: the error is a log line like the others (etcd's
            // "discovery failed"/"failed to start" lines carry it in `error`).
            tracing::error!(error = %e, "failed to start");
            std::process::exit(e.exit_code());
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
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

/// etcd's first lines (`embed.StartEtcd`): the listeners, then "starting an etcd server"
/// with the effective configuration as fields.
fn log_effective_config(cfg: &config::Config) {
    let list = |u: &[config::Url]| {
        u.iter()
            .map(|u| u.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let initial_cluster = cfg
        .initial_cluster
        .iter()
        .map(|(n, u)| format!("{n}={u}"))
        .collect::<Vec<_>>()
        .join(",");
    tracing::info!(
        "listen-peer-urls" = %list(&cfg.listen_peer_urls),
        "configuring peer listeners"
    );
    tracing::info!(
        "listen-client-urls" = %list(&cfg.listen_client_urls),
        "configuring client listeners"
    );
    tracing::info!(
        "cairn-version" = env!("CARGO_PKG_VERSION"),
        "max-cpu-available" = std::thread::available_parallelism().map_or(0, |n| n.get() as u64),
        "member-initialized" = cfg.data_dir.join("member").exists(),
        name = %cfg.name,
        "data-dir" = %cfg.data_dir.display(),
        "member-dir" = %cfg.data_dir.join("member").display(),
        "heartbeat-interval" = ?cfg.heartbeat_interval,
        "election-timeout" = ?cfg.election_timeout,
        "snapshot-count" = cfg.snapshot_count,
        "initial-advertise-peer-urls" = %list(&cfg.initial_advertise_peer_urls),
        "listen-peer-urls" = %list(&cfg.listen_peer_urls),
        "advertise-client-urls" = %list(&cfg.advertise_client_urls),
        "listen-client-urls" = %list(&cfg.listen_client_urls),
        "initial-cluster" = %initial_cluster,
        "initial-cluster-state" = match cfg.initial_cluster_state {
            config::ClusterState::New => "new",
            config::ClusterState::Existing => "existing",
        },
        "initial-cluster-token" = %cfg.initial_cluster_token,
        "quota-size-bytes" = cfg.quota_backend_bytes().map_or(-1, |q| q as i64),
        "max-request-bytes" = cfg.max_request_bytes,
        "max-txn-ops" = cfg.max_txn_ops,
        "auto-compaction" = ?cfg.auto_compaction,
        "initial-corrupt-check" = cfg.initial_corrupt_check,
        "log-level" = %format!("{:?}", cfg.log_level).to_lowercase(),
        "log-outputs" = %cfg.log_outputs.join(","),
        "starting an etcd server"
    );
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
