//! Group commit of the write-ahead log against a naive write + fdatasync per record.
//!
//!     cargo bench -p cairn-benches --bench wal
//!
//! `wal/append_256B/{backend}/{appenders}`: `appenders` concurrent tasks (tokio, 2 worker
//! threads) each append one 256-byte entry at a time and wait until it is durable, for
//! `backend` in
//! - `io_uring`: `cairn_wal::Wal` on io_uring (one `Writev` linked to one `Fsync`),
//! - `pwritev`: `cairn_wal::Wal` on `pwritev` + `fdatasync`,
//! - `naive`: a log without group commit: every appender thread takes the log's lock,
//!   writes its record with `pwrite` and calls `fdatasync` before releasing it;
//! - `naive_concurrent`: like `naive` but without the lock: offsets are handed out
//!   atomically and every thread calls `fdatasync` on its own, so the kernel is free to
//!   merge concurrent fdatasyncs (ext4's journal does): the most charitable baseline.
//!
//! Throughput is durable appends per second. After each configuration the records per
//! fdatasync (from `Wal::stats`) are printed. Files live in a temporary directory under
//! `$CAIRN_BENCH_DIR` (default: the system temp dir), which must be on a real disk for the
//! numbers to mean anything (tmpfs makes fdatasync free).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_wal::{BackendChoice, BackendKind, Entry, Options, Record, Wal};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const RECORD_BYTES: usize = 256;
const APPENDERS: [usize; 4] = [1, 8, 64, 512];
/// Size of the naive baseline's preallocated file; offsets wrap around inside it.
const NAIVE_FILE_BYTES: u64 = 16 * 1024 * 1024;

fn bench_directory() -> tempfile::TempDir {
    match std::env::var_os("CAIRN_BENCH_DIR") {
        Some(base) => {
            tempfile::tempdir_in(PathBuf::from(base)).expect("temp dir in CAIRN_BENCH_DIR")
        }
        None => tempfile::tempdir().expect("temp dir"),
    }
}

fn record() -> Record {
    Record::Entry(Entry {
        index: 1,
        term: 1,
        kind: 0,
        data: Bytes::from(vec![0x5a; RECORD_BYTES]),
    })
}

/// Runs about `iterations` appends spread over `appenders` tasks; returns the time scaled
/// to exactly `iterations` appends.
fn run_wal(
    runtime: &tokio::runtime::Runtime,
    wal: &Arc<Wal>,
    appenders: usize,
    iterations: u64,
) -> Duration {
    let per_appender = iterations.div_ceil(appenders as u64).max(1);
    let elapsed = runtime.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..appenders)
            .map(|_| {
                let wal = Arc::clone(wal);
                tokio::spawn(async move {
                    for _ in 0..per_appender {
                        wal.append(vec![record()]).await.expect("append");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("appender task");
        }
        start.elapsed()
    });
    elapsed.mul_f64(iterations as f64 / (per_appender * appenders as u64) as f64)
}

/// The naive baselines: each appender thread writes and fdatasyncs every record itself,
/// holding `lock` across both when it is given.
fn run_naive(
    file: &Arc<File>,
    offset: &Arc<AtomicU64>,
    lock: Option<&Arc<Mutex<()>>>,
    appenders: usize,
    iterations: u64,
) -> Duration {
    let per_appender = iterations.div_ceil(appenders as u64).max(1);
    let start = Instant::now();
    let threads: Vec<_> = (0..appenders)
        .map(|_| {
            let (file, offset, lock) = (Arc::clone(file), Arc::clone(offset), lock.cloned());
            thread::spawn(move || {
                let buffer = vec![0x5a; RECORD_BYTES + 32];
                for _ in 0..per_appender {
                    let _held = lock.as_ref().map(|lock| lock.lock().expect("lock"));
                    let at = offset.fetch_add(buffer.len() as u64, Ordering::Relaxed)
                        % (NAIVE_FILE_BYTES - 4096);
                    file.write_all_at(&buffer, at).expect("pwrite");
                    file.sync_data().expect("fdatasync");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("naive appender");
    }
    start
        .elapsed()
        .mul_f64(iterations as f64 / (per_appender * appenders as u64) as f64)
}

fn naive_file(directory: &tempfile::TempDir) -> File {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(directory.path().join("naive.log"))
        .expect("naive file");
    // Written out (not sparse) so fdatasync does not also pay for block allocation, like
    // the preallocated WAL segments.
    let zeros = vec![0u8; 1024 * 1024];
    for chunk in 0..NAIVE_FILE_BYTES / zeros.len() as u64 {
        file.write_all_at(&zeros, chunk * zeros.len() as u64)
            .expect("fill");
    }
    file.sync_all().expect("sync");
    file
}

fn wal_append(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("wal/append_256B");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(1));
    for appenders in APPENDERS {
        for (name, choice) in [
            ("io_uring", BackendChoice::IoUring),
            ("pwritev", BackendChoice::Pwritev),
        ] {
            let directory = bench_directory();
            let options = Options {
                backend: choice,
                ..Options::default()
            };
            let wal = match Wal::open(directory.path(), options) {
                Ok((wal, _)) => Arc::new(wal),
                Err(error) => {
                    eprintln!("skipping {name}: {error}");
                    continue;
                }
            };
            assert_eq!(
                wal.backend(),
                if name == "io_uring" {
                    BackendKind::IoUring
                } else {
                    BackendKind::Pwritev
                }
            );
            let before = wal.stats();
            group.bench_function(BenchmarkId::new(name, appenders), |b| {
                b.iter_custom(|iterations| run_wal(&runtime, &wal, appenders, iterations))
            });
            let after = wal.stats();
            let (records, fsyncs) = (after.records - before.records, after.fsyncs - before.fsyncs);
            eprintln!(
                "wal/append_256B/{name}/{appenders}: {records} records in {fsyncs} fdatasyncs = {:.1} records per fdatasync",
                records as f64 / fsyncs.max(1) as f64
            );
            wal.close().expect("close");
        }
        let directory = bench_directory();
        let file = Arc::new(naive_file(&directory));
        let offset = Arc::new(AtomicU64::new(0));
        let lock = Arc::new(Mutex::new(()));
        group.bench_function(BenchmarkId::new("naive", appenders), |b| {
            b.iter_custom(|iterations| {
                run_naive(&file, &offset, Some(&lock), appenders, iterations)
            })
        });
        group.bench_function(BenchmarkId::new("naive_concurrent", appenders), |b| {
            b.iter_custom(|iterations| run_naive(&file, &offset, None, appenders, iterations))
        });
    }
    group.finish();
}

criterion_group!(benches, wal_append);
criterion_main!(benches);
