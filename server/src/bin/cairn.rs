//! `cairn`: an etcd v3 member, configured with etcd's flags, `ETCD_*` variables and
//! `--config-file`.

use cairn_server::config::{self, Invocation};
use std::time::Duration;

use cairn_server::config::Config;
use cairn_server::{AutoCompaction, Server, ServerOptions};

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
    let opts = match options_from_config(&cfg) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cairn: {e}");
            std::process::exit(1);
        }
    };
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
        let server = match Server::start(opts).await {
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

/// Server options from etcd's configuration (flags, environment, config file).
// Every field is set today; the struct update keeps options added later at their defaults.
#[allow(clippy::needless_update)]
fn options_from_config(cfg: &Config) -> Result<ServerOptions, String> {
    use cairn_server::config::{AutoCompaction as C, Scheme};
    let mut listen = Vec::new();
    for u in &cfg.listen_client_urls {
        if u.scheme == Scheme::Https {
            return Err(format!(
                "--listen-client-urls {u}: TLS is not supported by cairn yet"
            ));
        }
        listen.push(
            u.bind_addr()
                .map_err(|e| format!("--listen-client-urls: {e}"))?,
        );
    }
    let mut peers = Vec::new();
    for u in &cfg.listen_peer_urls {
        if u.scheme == Scheme::Https {
            return Err(format!(
                "--listen-peer-urls {u}: TLS is not supported by cairn yet"
            ));
        }
        peers.push(
            u.bind_addr()
                .map_err(|e| format!("--listen-peer-urls: {e}"))?,
        );
    }
    Ok(ServerOptions {
        name: cfg.name.clone(),
        listen_peer_addrs: peers,
        initial_cluster: cfg
            .initial_cluster
            .iter()
            .map(|(n, u)| (n.clone(), u.to_string()))
            .collect(),
        initial_cluster_existing: cfg.initial_cluster_state
            == cairn_server::config::ClusterState::Existing,
        data_dir: cfg.data_dir.clone(),
        listen_client_addrs: listen,
        advertise_client_urls: cfg
            .advertise_client_urls
            .iter()
            .map(|u| u.to_string())
            .collect(),
        initial_advertise_peer_urls: cfg
            .initial_advertise_peer_urls
            .iter()
            .map(|u| u.to_string())
            .collect(),
        initial_cluster_token: cfg.initial_cluster_token.clone(),
        snapshot_count: cfg.snapshot_count,
        heartbeat_interval: cfg.heartbeat_interval,
        election_timeout: cfg.election_timeout,
        quota_backend_bytes: cfg.quota_backend_bytes(),
        max_request_bytes: cfg.max_request_bytes as usize,
        max_txn_ops: cfg.max_txn_ops as usize,
        auto_compaction: match cfg.auto_compaction {
            C::Off => AutoCompaction::Off,
            C::Periodic(d) => AutoCompaction::Periodic(d),
            C::Revision(n) => AutoCompaction::Revision(n),
        },
        auto_compaction_check_interval: Duration::from_secs(300),
        watch_progress_notify_interval: cfg.watch_progress_notify_interval,
        lease_checkpoint_interval: cfg.lease_checkpoint_interval,
        ..ServerOptions::default()
    })
}
