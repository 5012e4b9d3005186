//! A small load generator in the spirit of `bbolt bench`: writes `--count` keys in
//! etcd's revision-key format (8-byte big-endian main revision, `_`, 8-byte big-endian
//! sub revision) with `--value-size`-byte values into bucket `key`, `--batch-size` puts
//! per commit, then reads them all back (point gets, then a cursor scan) and prints the
//! throughput. The file is left in place for other tools (bbolt, etcdutl) to inspect.
//!
//! ```text
//! cargo run --release -p cairn-engine --example bench -- \
//!     --path /tmp/bench.db --count 100000 --batch-size 1000 --value-size 256 [--write-mode rnd] [--no-sync] [--skip-write]
//! ```

use std::time::{Duration, Instant};

use cairn_engine::{Db, Options};

struct Args {
    path: String,
    count: u64,
    batch: u64,
    value_size: usize,
    random: bool,
    no_sync: bool,
    skip_write: bool,
    skip_read: bool,
    no_freelist_sync: bool,
    start: u64,
}

fn usage(msg: &str) -> ! {
    eprintln!("bench: {msg}");
    eprintln!(
        "usage: bench [--path FILE] [--count N] [--batch-size B] [--value-size V] \
         [--write-mode seq|rnd] [--start-rev R] [--no-sync] [--skip-write] [--skip-read] [--no-freelist-sync]"
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut a = Args {
        path: "bench.db".into(),
        count: 100_000,
        batch: 1000,
        value_size: 256,
        random: false,
        no_sync: false,
        skip_write: false,
        skip_read: false,
        no_freelist_sync: false,
        start: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let flag = flag.trim_start_matches('-').to_string();
        if flag == "no-sync" {
            a.no_sync = true;
            continue;
        }
        if flag == "no-freelist-sync" {
            a.no_freelist_sync = true;
            continue;
        }
        if flag == "skip-read" {
            a.skip_read = true;
            continue;
        }
        if flag == "skip-write" {
            a.skip_write = true;
            continue;
        }
        let Some(val) = it.next() else {
            usage(&format!("--{flag} needs a value"))
        };
        let num = || {
            val.parse::<u64>()
                .unwrap_or_else(|_| usage(&format!("bad number for --{flag}: {val}")))
        };
        match flag.as_str() {
            "path" => a.path = val.clone(),
            "count" => a.count = num(),
            "batch-size" => a.batch = num().max(1),
            "value-size" => a.value_size = num() as usize,
            "start-rev" => a.start = num(),
            "write-mode" => match val.as_str() {
                "seq" => a.random = false,
                "rnd" => a.random = true,
                other => usage(&format!("unknown write mode {other}")),
            },
            other => usage(&format!("unknown flag --{other}")),
        }
    }
    a
}

fn rev_key(main: u64, sub: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..8].copy_from_slice(&main.to_be_bytes());
    k[8] = b'_';
    k[9..].copy_from_slice(&sub.to_be_bytes());
    k
}

/// A fixed permutation of 0..n (multiplicative step coprime with n).
fn permute(i: u64, n: u64) -> u64 {
    let mut step = 0x9E37_79B9_7F4A_7C15 % n.max(1);
    while gcd(step, n) != 1 {
        step += 1;
    }
    ((u128::from(i) * u128::from(step)) % u128::from(n.max(1))) as u64
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn rate(n: u64, d: Duration) -> String {
    let s = d.as_secs_f64();
    format!(
        "{:.0} ops/s ({:.3} µs/op, {:.3}s total)",
        n as f64 / s,
        s * 1e6 / n as f64,
        s
    )
}

fn main() {
    let a = parse();
    let db = Db::open(
        &a.path,
        Options {
            no_sync: a.no_sync,
            ..Options::default()
        },
    )
    .unwrap_or_else(|e| usage(&format!("open {}: {e}", a.path)));
    let value = vec![0x61u8; a.value_size];

    let t = Instant::now();
    let mut written = 0u64;
    if a.skip_write {
        written = a.count;
    }
    while written < a.count {
        let mut tx = db.begin_write().expect("begin_write");
        let mut b = tx.create_bucket_if_not_exists(b"key").expect("bucket");
        let end = (written + a.batch).min(a.count);
        for i in written..end {
            let n = if a.random { permute(i, a.count) } else { i };
            b.put(&rev_key(a.start + n, 0), &value).expect("put");
        }
        tx.commit().expect("commit");
        written = end;
    }
    let wdur = t.elapsed();
    println!(
        "write: {} keys, batch {}, value {} B: {}",
        a.count,
        a.batch,
        a.value_size,
        rate(a.count, wdur)
    );

    if a.skip_read {
        println!("stats: {:?}", db.stats());
        return;
    }
    let rtx = db.begin_read().expect("begin_read");
    let b = rtx.bucket(b"key").expect("bucket key");
    let t = Instant::now();
    let mut found = 0u64;
    for i in 0..a.count {
        let n = permute(i, a.count);
        if b.get(&rev_key(a.start + n, 0))
            .is_some_and(|v| v.len() == a.value_size)
        {
            found += 1;
        }
    }
    let gdur = t.elapsed();
    assert_eq!(found, a.count, "every written key reads back");
    println!(
        "get:   {} random point reads: {}",
        a.count,
        rate(a.count, gdur)
    );

    let t = Instant::now();
    let mut c = b.cursor();
    let mut n = 0u64;
    let mut item = c.first();
    while let Some((_, v)) = item {
        n += v.len() as u64 / a.value_size.max(1) as u64;
        item = c.next();
    }
    let sdur = t.elapsed();
    println!("scan:  {} entries: {}", n, rate(n.max(1), sdur));
    println!("stats: {:?}", db.stats());
    println!("file left at {}", a.path);
}
