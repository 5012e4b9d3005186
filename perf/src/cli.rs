//! Command line: etcd `benchmark`'s global flags and subcommands, with its flag
//! names and defaults, plus `txn-cas` (a Kubernetes-style compare-and-swap) and
//! `compare` (the side-by-side report).

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::compare::CompareArgs;

#[derive(Parser, Debug)]
#[command(
    name = "cairn-bench",
    version,
    about = "A low-level load tool for etcd v3 servers (Cairn or etcd), with etcd benchmark's workloads"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub cmd: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// gRPC endpoints (comma separated)
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
    /// Total number of gRPC connections
    #[arg(long, global = true, default_value_t = 1)]
    pub conns: usize,
    /// Total number of gRPC clients
    #[arg(long, global = true, default_value_t = 1)]
    pub clients: usize,
    /// Use full floating point precision
    #[arg(long, global = true)]
    pub precise: bool,
    /// Connect only to the leader node
    #[arg(long = "target-leader", global = true)]
    pub target_leader: bool,
    /// Provide username:password for authentication
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// Identify HTTPS client using this SSL certificate file
    #[arg(long, global = true)]
    pub cert: Option<String>,
    /// Identify HTTPS client using this SSL key file
    #[arg(long, global = true)]
    pub key: Option<String>,
    /// Verify certificates of HTTPS-enabled servers using this CA bundle
    #[arg(long, global = true)]
    pub cacert: Option<String>,
    /// Dial timeout for client connections (e.g. 2s, 500ms; 0 = none)
    #[arg(long = "dial-timeout", global = true, value_parser = parse_duration, default_value = "0s")]
    pub dial_timeout: Duration,
    /// Output format for results: "json" (default: etcd benchmark's text summary)
    #[arg(long, global = true)]
    pub output: Option<OutputFormat>,
    /// Same as --output json
    #[arg(long, global = true)]
    pub json: bool,
}

impl GlobalOpts {
    pub fn json(&self) -> bool {
        self.json || matches!(self.output, Some(OutputFormat::Json))
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Benchmark put
    Put(PutArgs),
    /// Benchmark range
    Range(RangeArgs),
    /// Benchmark txn-put
    #[command(name = "txn-put")]
    TxnPut(TxnPutArgs),
    /// Benchmark a mixed load of txn-put & txn-range
    #[command(name = "txn-mixed")]
    TxnMixed(TxnMixedArgs),
    /// Benchmark a Kubernetes-style compare-and-swap: Txn(mod_revision == r) then put, else get
    #[command(name = "txn-cas")]
    TxnCas(TxnCasArgs),
    /// Benchmark watch
    Watch(WatchArgs),
    /// Benchmark watch latency
    #[command(name = "watch-latency")]
    WatchLatency(WatchLatencyArgs),
    /// Benchmark lease keepalive
    #[command(name = "lease-keepalive")]
    LeaseKeepalive(LeaseArgs),
    /// Benchmark new connections: each request dials a new connection (TCP, TLS
    /// handshake for https, HTTP/2), sends one serializable Range and closes it
    #[command(name = "conn-rate")]
    ConnRate(ConnRateArgs),
    /// Start etcd and Cairn side by side, run the workload matrix, write perf/reports/<date>.md
    Compare(CompareArgs),
}

#[derive(Args, Debug, Clone)]
pub struct PutArgs {
    /// Key size of put request
    #[arg(long = "key-size", default_value_t = 8)]
    pub key_size: usize,
    /// Value size of put request
    #[arg(long = "val-size", default_value_t = 8)]
    pub val_size: usize,
    /// Maximum puts per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Total number of put requests
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
    /// Maximum possible keys
    #[arg(long = "key-space-size", default_value_t = 1)]
    pub key_space_size: u64,
    /// Use sequential keys
    #[arg(long = "sequential-keys")]
    pub sequential_keys: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Linearizable
    L,
    /// Serializable
    S,
}

#[derive(Args, Debug, Clone)]
pub struct RangeArgs {
    /// Key (or prefix with --prefix)
    #[arg(id = "range_key", value_name = "KEY")]
    pub key: Option<String>,
    /// End of the range (exclusive)
    #[arg(id = "range_end", value_name = "END")]
    pub end: Option<String>,
    /// Maximum range requests per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Total number of range requests
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
    /// Linearizable(l) or Serializable(s)
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,
    /// Maximum number of results to return from range request (0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Only returns the count of keys
    #[arg(long = "count-only")]
    pub count_only: bool,
    /// Only returns the keys
    #[arg(long = "keys-only")]
    pub keys_only: bool,
    /// Range over all keys with the given key as prefix
    #[arg(long)]
    pub prefix: bool,
}

#[derive(Args, Debug, Clone)]
pub struct TxnPutArgs {
    /// Key size of txn put
    #[arg(long = "key-size", default_value_t = 8)]
    pub key_size: usize,
    /// Value size of txn put
    #[arg(long = "val-size", default_value_t = 8)]
    pub val_size: usize,
    /// Number of puts per txn
    #[arg(long = "txn-ops", default_value_t = 1)]
    pub txn_ops: usize,
    /// Maximum txns per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Total number of txn requests
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
    /// Maximum possible keys
    #[arg(long = "key-space-size", default_value_t = 1)]
    pub key_space_size: u64,
}

#[derive(Args, Debug, Clone)]
pub struct TxnMixedArgs {
    /// Start of the read range (default: every key)
    #[arg(id = "range_key", value_name = "KEY")]
    pub key: Option<String>,
    /// End of the read range
    #[arg(id = "range_end", value_name = "END")]
    pub end: Option<String>,
    /// Key size of mixed txn
    #[arg(long = "key-size", default_value_t = 8)]
    pub key_size: usize,
    /// Value size of mixed txn
    #[arg(long = "val-size", default_value_t = 8)]
    pub val_size: usize,
    /// Maximum txns per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Total number of txn requests
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
    /// Read operation range result limit
    #[arg(long, default_value_t = 1000)]
    pub limit: i64,
    /// Maximum possible keys
    #[arg(long = "key-space-size", default_value_t = 1)]
    pub key_space_size: u64,
    /// Linearizable(l) or Serializable(s)
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,
    /// Read/write ops ratio
    #[arg(long = "rw-ratio", default_value_t = 1.0)]
    pub rw_ratio: f64,
}

#[derive(Args, Debug, Clone)]
pub struct TxnCasArgs {
    /// Key size (a key prefix is added to keep the keys apart from others)
    #[arg(long = "key-size", default_value_t = 8)]
    pub key_size: usize,
    /// Value size
    #[arg(long = "val-size", default_value_t = 256)]
    pub val_size: usize,
    /// Maximum txns per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Total number of successful compare-and-swaps
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
    /// Number of objects updated
    #[arg(long = "key-space-size", default_value_t = 1000)]
    pub key_space_size: u64,
}

#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// Total watch streams
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Total watchers per stream
    #[arg(long = "watch-per-stream", default_value_t = 100)]
    pub watch_per_stream: usize,
    /// Total number of keys to be watched
    #[arg(long = "watched-key-total", default_value_t = 1)]
    pub watched_key_total: usize,
    /// Number of keys to put per second (0 is no limit)
    #[arg(long = "put-rate", default_value_t = 0)]
    pub put_rate: u64,
    /// Number of put requests
    #[arg(long = "put-total", default_value_t = 1000)]
    pub put_total: u64,
    /// Key size of watch request
    #[arg(long = "key-size", default_value_t = 32)]
    pub key_size: usize,
}

#[derive(Args, Debug, Clone)]
pub struct WatchLatencyArgs {
    /// Total watch streams
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Total watchers per stream
    #[arg(long = "watchers-per-stream", default_value_t = 10)]
    pub watchers_per_stream: usize,
    /// PrevKV enabled on watch requests
    #[arg(long)]
    pub prevkv: bool,
    /// Total number of put requests
    #[arg(long = "put-total", default_value_t = 1000)]
    pub put_total: u64,
    /// Number of keys to put per second
    #[arg(long = "put-rate", default_value_t = 100)]
    pub put_rate: u64,
    /// Key size of watch response
    #[arg(long = "key-size", default_value_t = 32)]
    pub key_size: usize,
    /// Value size of watch response
    #[arg(long = "val-size", default_value_t = 32)]
    pub val_size: usize,
}

#[derive(Args, Debug, Clone)]
pub struct ConnRateArgs {
    /// Total number of connections (each with one Range request)
    #[arg(long, default_value_t = 1000)]
    pub total: u64,
    /// Maximum new connections per second (0 is no limit)
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Key the Range reads (serializable; it need not exist)
    #[arg(long = "range-key", default_value = "/bench/conn-rate")]
    pub range_key: String,
}

#[derive(Args, Debug, Clone)]
pub struct LeaseArgs {
    /// Total number of lease keepalive requests
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
}

/// Parses Go-style durations as etcd's flags take them: "500ms", "2s", "1m", "1.5s", "0".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("invalid duration {s:?}: missing unit (ns, us, ms, s, m, h)"))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: {num:?} is not a number"))?;
    let scale = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("invalid duration {s:?}: unknown unit {unit:?}")),
    };
    if !(n >= 0.0 && n.is_finite()) {
        return Err(format!("invalid duration {s:?}: must not be negative"));
    }
    Ok(Duration::from_secs_f64(n * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cairn-bench").chain(args.iter().copied()))
    }

    #[test]
    fn put_defaults_match_etcd_benchmark() {
        let cli = parse(&["put"]).unwrap();
        assert_eq!(cli.global.endpoints, vec!["127.0.0.1:2379"]);
        assert_eq!((cli.global.conns, cli.global.clients), (1, 1));
        let Command::Put(p) = cli.cmd else {
            panic!("not put")
        };
        assert_eq!((p.key_size, p.val_size, p.total), (8, 8, 10000));
        assert_eq!((p.key_space_size, p.rate, p.sequential_keys), (1, 0, false));
    }

    #[test]
    fn global_flags_before_and_after_the_subcommand() {
        let cli = parse(&[
            "--endpoints=127.0.0.1:1,127.0.0.1:2",
            "--conns",
            "4",
            "put",
            "--clients",
            "100",
            "--key-size=16",
            "--val-size",
            "256",
            "--total=500",
            "--key-space-size",
            "1000",
            "--sequential-keys",
            "--rate",
            "50",
            "--output",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.global.endpoints, vec!["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!((cli.global.conns, cli.global.clients), (4, 100));
        assert!(cli.global.json());
        let Command::Put(p) = cli.cmd else {
            panic!("not put")
        };
        assert_eq!((p.key_size, p.val_size, p.total), (16, 256, 500));
        assert_eq!(
            (p.key_space_size, p.rate, p.sequential_keys),
            (1000, 50, true)
        );
    }

    #[test]
    fn range_takes_key_end_and_etcds_options() {
        let cli = parse(&[
            "range",
            "foo",
            "fop",
            "--consistency",
            "s",
            "--limit",
            "500",
            "--keys-only",
            "--count-only",
        ])
        .unwrap();
        let Command::Range(r) = cli.cmd else {
            panic!("not range")
        };
        assert_eq!(r.key.as_deref(), Some("foo"));
        assert_eq!(r.end.as_deref(), Some("fop"));
        assert_eq!(r.consistency, Consistency::S);
        assert_eq!(r.limit, 500);
        assert!(r.keys_only && r.count_only);
        assert!(parse(&["range", "foo", "--consistency", "x"]).is_err());
        // The positional KEY is not the global --key (TLS key file).
        assert!(parse(&["range", "foo"]).unwrap().global.key.is_none());
    }

    #[test]
    fn watch_and_watch_latency_flags() {
        let cli = parse(&[
            "watch-latency",
            "--streams",
            "2",
            "--watchers-per-stream",
            "3",
        ])
        .unwrap();
        let Command::WatchLatency(w) = cli.cmd else {
            panic!("not watch-latency")
        };
        assert_eq!((w.streams, w.watchers_per_stream), (2, 3));
        assert_eq!(
            (w.put_total, w.put_rate, w.key_size, w.val_size),
            (1000, 100, 32, 32)
        );
        let cli = parse(&["watch", "--watch-per-stream", "7", "--put-total", "9"]).unwrap();
        let Command::Watch(w) = cli.cmd else {
            panic!("not watch")
        };
        assert_eq!((w.streams, w.watch_per_stream, w.put_total), (10, 7, 9));
        assert_eq!((w.watched_key_total, w.put_rate), (1, 0));
    }

    #[test]
    fn txn_and_lease_flags() {
        let cli = parse(&["txn-put", "--txn-ops", "4", "--key-space-size", "8"]).unwrap();
        let Command::TxnPut(t) = cli.cmd else {
            panic!("not txn-put")
        };
        assert_eq!((t.txn_ops, t.key_space_size), (4, 8));
        let cli = parse(&["txn-mixed", "--rw-ratio", "4", "--limit", "10"]).unwrap();
        let Command::TxnMixed(t) = cli.cmd else {
            panic!("not txn-mixed")
        };
        assert_eq!((t.rw_ratio, t.limit), (4.0, 10));
        let cli = parse(&["lease-keepalive", "--total", "3"]).unwrap();
        assert!(matches!(
            cli.cmd,
            Command::LeaseKeepalive(LeaseArgs { total: 3 })
        ));
    }

    #[test]
    fn conn_rate_and_tls_flags() {
        let cli = parse(&[
            "--cacert=ca.pem",
            "conn-rate",
            "--total",
            "5",
            "--cert",
            "c.pem",
            "--key=k.pem",
        ])
        .unwrap();
        assert_eq!(cli.global.cacert.as_deref(), Some("ca.pem"));
        assert_eq!(cli.global.cert.as_deref(), Some("c.pem"));
        assert_eq!(cli.global.key.as_deref(), Some("k.pem"));
        let Command::ConnRate(c) = cli.cmd else {
            panic!("not conn-rate")
        };
        assert_eq!(
            (c.total, c.rate, c.range_key.as_str()),
            (5, 0, "/bench/conn-rate")
        );
    }

    #[test]
    fn unknown_flags_are_rejected() {
        assert!(parse(&["put", "--no-such-flag"]).is_err());
        assert!(parse(&["put", "--total", "ten"]).is_err());
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
