//! Compares the io_uring and pwritev backends side by side, alternating rounds so that
//! background load on the machine hits both alike.
//!
//!     cargo run --release -p cairn-wal --example backend_probe -- [appenders] [rounds]

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cairn_wal::{BackendChoice, Entry, Options, Record, Wal};

fn main() {
    let mut args = std::env::args().skip(1);
    let appenders: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(512);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let per_appender = 20_000usize.div_ceil(appenders).max(20);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for round in 0..rounds {
        for (name, backend) in [
            ("io_uring", BackendChoice::IoUring),
            ("pwritev", BackendChoice::Pwritev),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = Wal::open(
                dir.path(),
                Options {
                    backend,
                    ..Options::default()
                },
            )
            .unwrap();
            let wal = Arc::new(wal);
            let record = Record::Entry(Entry {
                index: 1,
                term: 1,
                kind: 0,
                data: Bytes::from(vec![1u8; 256]),
            });
            let started = Instant::now();
            runtime.block_on(async {
                let tasks: Vec<_> = (0..appenders)
                    .map(|_| {
                        let (wal, record) = (Arc::clone(&wal), record.clone());
                        tokio::spawn(async move {
                            for _ in 0..per_appender {
                                wal.append(vec![record.clone()]).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            });
            let elapsed = started.elapsed();
            let stats = wal.stats();
            println!(
                "round {round} {name:>8}: {:>9.0} appends/s, {:.1} records/fdatasync, {:.2} ms/batch",
                stats.records as f64 / elapsed.as_secs_f64(),
                stats.records as f64 / stats.fsyncs as f64,
                elapsed.as_secs_f64() * 1000.0 / stats.fsyncs as f64
            );
            wal.close().unwrap();
        }
    }
}
