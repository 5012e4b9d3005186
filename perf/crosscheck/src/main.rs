//! `cairn-crosscheck ENDPOINT WORKLOAD CLIENTS TOTAL [VAL_SIZE]`: the workloads of
//! `cairn-bench` (put, range-l, range-s, txn-put, watch-latency) driven through the
//! `etcd-client` crate over one connection, printing requests/sec, p50, p99 and
//! this process's CPU per request, for comparison with `cairn-bench --conns 1`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions, Txn, TxnOp};
use hdrhistogram::Histogram;

fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = &s[s.rfind(')').map(|i| i + 1).unwrap_or(0)..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<u64>() as f64 / 100.0
}

fn key8(n: u64) -> Vec<u8> {
    let mut k = n.to_le_bytes().to_vec();
    k.truncate(8);
    k
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 5 {
        eprintln!("usage: cairn-crosscheck ENDPOINT put|range-l|range-s|txn-put|watch-latency CLIENTS TOTAL [VAL_SIZE]");
        std::process::exit(2);
    }
    let (ep, work) = (a[1].clone(), a[2].clone());
    let clients: usize = a[3].parse()?;
    let total: u64 = a[4].parse()?;
    let val_size: usize = a.get(5).map(|v| v.parse()).transpose()?.unwrap_or(256);
    let client = Client::connect([ep.as_str()], None).await?;
    let value = vec![b'v'; val_size];
    let mut kv0 = client.kv_client();
    kv0.put("/crosscheck/range", value.clone(), None).await?;

    let cpu0 = cpu_secs();
    let start = Instant::now();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)?;
    let mut errors = 0u64;
    if work == "watch-latency" {
        // One watcher per client, puts at 100/s; latency from a put's send to each event.
        let mut streams = Vec::new();
        for _ in 0..clients {
            let s = client
                .watch_client()
                .watch("/crosscheck/watch", None)
                .await?;
            streams.push(s);
        }
        let mut kv = client.kv_client();
        for i in 0..total {
            let at = start + Duration::from_millis(10 * i);
            tokio::time::sleep_until(at.into()).await;
            let t = Instant::now();
            kv.put("/crosscheck/watch", i.to_le_bytes().to_vec(), None)
                .await?;
            for s in streams.iter_mut() {
                loop {
                    match tokio::time::timeout(Duration::from_secs(5), s.message()).await {
                        // The "created" answer carries no event.
                        Ok(Ok(Some(r))) if r.events().is_empty() => continue,
                        Ok(Ok(Some(_))) => hist.record(t.elapsed().as_nanos() as u64)?,
                        _ => errors += 1,
                    }
                    break;
                }
            }
        }
    } else {
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (mut kv, next, value, work) = (
                client.kv_client(),
                next.clone(),
                value.clone(),
                work.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
                let mut errs = 0u64;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let t = Instant::now();
                    let r = match work.as_str() {
                        "put" => kv
                            .put(key8(i % 100_000), value.clone(), None)
                            .await
                            .map(|_| ()),
                        "range-l" => kv.get("/crosscheck/range", None).await.map(|_| ()),
                        "range-s" => kv
                            .get(
                                "/crosscheck/range",
                                Some(GetOptions::new().with_serializable()),
                            )
                            .await
                            .map(|_| ()),
                        "txn-put" => kv
                            .txn(Txn::new().and_then(vec![TxnOp::put(
                                key8(i % 100_000),
                                value.clone(),
                                None,
                            )]))
                            .await
                            .map(|_| ()),
                        other => panic!("unknown workload {other}"),
                    };
                    match r {
                        Ok(()) => h.record(t.elapsed().as_nanos() as u64).unwrap(),
                        Err(_) => errs += 1,
                    }
                }
                (h, errs)
            }));
        }
        for t in tasks {
            let (h, e) = t.await?;
            hist.add(&h)?;
            errors += e;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    let n = hist.len();
    println!(
        "etcd-client {work}: clients {clients} total {total} ok {n} errors {errors} | {:.0} req/s | p50 {:.3} ms | p99 {:.3} ms | client CPU {:.1} µs/request",
        n as f64 / secs,
        hist.value_at_quantile(0.5) as f64 / 1e6,
        hist.value_at_quantile(0.99) as f64 / 1e6,
        cpu * 1e6 / (n + errors).max(1) as f64
    );
    Ok(())
}
