//! The request loop shared by the workloads: `--clients` tasks take request
//! numbers from one counter until `--total` is reached, paced by `--rate`, and
//! record each outcome in their own recorder (merged at the end, so recording
//! never contends). Ctrl-C (the cancel token) stops the loop; what was measured
//! so far is still summarised.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::procstat;
use crate::report::{Recorder, Summary};

/// A progress bar on stderr, only when stderr is a terminal.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub(crate) fn new(total: u64, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(total);
            if let Ok(style) =
                ProgressStyle::with_template("{pos}/{len} {wide_bar} {percent}% {elapsed}")
            {
                b.set_style(style);
            }
            b
        });
        Progress { bar }
    }

    fn spawn_ticker(&self, done: Arc<AtomicU64>) -> Option<tokio::task::JoinHandle<()>> {
        let bar = self.bar.clone()?;
        Some(tokio::spawn(async move {
            loop {
                bar.set_position(done.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }))
    }

    pub(crate) fn set(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.set_position(n);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Settings of one request loop.
pub(crate) struct Loop<'a> {
    pub(crate) name: &'a str,
    pub(crate) total: u64,
    /// Requests per second over all clients; 0 is no limit.
    pub(crate) rate: u64,
    pub(crate) cancel: &'a CancellationToken,
    pub(crate) quiet: bool,
}

/// Runs `op(client, i)` for i in 0..total over `clients`, one task per client.
/// `op` returns the class of the request (an index into `class_names`; e.g.
/// read and write of txn-mixed) and its result. One summary per class.
pub(crate) async fn drive_classes<C, F, Fut>(
    l: Loop<'_>,
    class_names: &[&str],
    clients: Vec<C>,
    op: F,
) -> Vec<Summary>
where
    C: Clone + Send + 'static,
    F: Fn(C, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (usize, Result<(), tonic::Status>)> + Send,
{
    let classes = class_names.len();
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let op = Arc::new(op);
    let progress = Progress::new(l.total, l.quiet);
    let ticker = progress.spawn_ticker(done.clone());
    let cpu0 = procstat::cpu_time(None).unwrap_or_default();
    let start = Instant::now();
    let t0 = tokio::time::Instant::now();
    let interval = (l.rate > 0).then(|| Duration::from_secs_f64(1.0 / l.rate as f64));

    let mut tasks = Vec::with_capacity(clients.len());
    for client in clients {
        let (next, done, op, cancel) = (next.clone(), done.clone(), op.clone(), l.cancel.clone());
        let total = l.total;
        tasks.push(tokio::spawn(async move {
            let mut recs = vec![Recorder::new(); classes];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || cancel.is_cancelled() {
                    break;
                }
                if let Some(iv) = interval {
                    let at = t0 + iv.mul_f64(i as f64);
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = cancel.cancelled() => break,
                    }
                }
                let st = Instant::now();
                let (class, res) = tokio::select! {
                    r = op(client.clone(), i) => r,
                    _ = cancel.cancelled() => break,
                };
                let rec = &mut recs[class.min(classes - 1)];
                match res {
                    Ok(()) => rec.ok(st.elapsed()),
                    Err(s) => rec.status(&s),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            recs
        }));
    }
    let mut merged = vec![Recorder::new(); classes];
    for t in tasks {
        match t.await {
            Ok(recs) => {
                for (m, r) in merged.iter_mut().zip(&recs) {
                    m.merge(r);
                }
            }
            Err(e) => merged[0].err("ClientPanic", &e.to_string()),
        }
    }
    let elapsed = start.elapsed();
    let client_cpu = procstat::cpu_time(None)
        .unwrap_or_default()
        .saturating_sub(cpu0);
    if let Some(t) = ticker {
        t.abort();
    }
    progress.set(done.load(Ordering::Relaxed));
    progress.finish();
    let interrupted = l.cancel.is_cancelled();
    merged
        .into_iter()
        .zip(class_names)
        .map(|(rec, n)| Summary {
            name: if classes == 1 {
                l.name.to_string()
            } else {
                format!("{}-{n}", l.name)
            },
            elapsed,
            rec,
            client_cpu,
            interrupted,
            notes: Vec::new(),
        })
        .collect()
}

/// [`drive_classes`] with a single class.
pub(crate) async fn drive<C, F, Fut>(l: Loop<'_>, clients: Vec<C>, op: F) -> Summary
where
    C: Clone + Send + 'static,
    F: Fn(C, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    let op = Arc::new(op);
    let mut v = drive_classes(l, &["all"], clients, move |c, i| {
        let op = op.clone();
        async move { (0, op(c, i).await) }
    })
    .await;
    v.remove(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn runs_exactly_total_requests_and_counts_errors_apart() {
        rt().block_on(async {
            let cancel = CancellationToken::new();
            let l = Loop {
                name: "t",
                total: 1000,
                rate: 0,
                cancel: &cancel,
                quiet: true,
            };
            let s = drive(l, vec![(); 7], |_, i| async move {
                if i % 10 == 3 {
                    Err(tonic::Status::unavailable("down"))
                } else {
                    Ok(())
                }
            })
            .await;
            assert_eq!(s.rec.count(), 900);
            assert_eq!(s.rec.error_count(), 100);
            assert_eq!(s.rec.errors()["Unavailable"].count, 100);
            assert!(!s.interrupted);
        });
    }

    #[test]
    fn classes_get_their_own_summaries() {
        rt().block_on(async {
            let cancel = CancellationToken::new();
            let l = Loop {
                name: "mix",
                total: 100,
                rate: 0,
                cancel: &cancel,
                quiet: true,
            };
            let v = drive_classes(l, &["read", "write"], vec![(); 3], |_, i| async move {
                ((i % 4 == 0) as usize, Ok(()))
            })
            .await;
            assert_eq!(v[0].name, "mix-read");
            assert_eq!(v[0].rec.count(), 75);
            assert_eq!(v[1].rec.count(), 25);
        });
    }

    #[test]
    fn cancel_stops_early_and_marks_the_summary() {
        rt().block_on(async {
            let cancel = CancellationToken::new();
            let c2 = cancel.clone();
            let l = Loop {
                name: "t",
                total: u64::MAX,
                rate: 0,
                cancel: &cancel,
                quiet: true,
            };
            let s = drive(l, vec![c2; 2], |c, i| async move {
                if i == 50 {
                    c.cancel();
                }
                tokio::task::yield_now().await;
                Ok(())
            })
            .await;
            assert!(s.interrupted);
            // Requests in flight when the token fires are dropped, not recorded.
            assert!(
                s.rec.count() >= 40 && s.rec.count() < 1000,
                "{}",
                s.rec.count()
            );
        });
    }

    #[test]
    fn rate_paces_requests() {
        rt().block_on(async {
            let cancel = CancellationToken::new();
            let l = Loop {
                name: "t",
                total: 21,
                rate: 200,
                cancel: &cancel,
                quiet: true,
            };
            let s = drive(l, vec![(); 4], |_, _| async { Ok(()) }).await;
            // Request 20 may not start before 20 / 200 s: a lower bound, not a timing assertion.
            assert!(s.elapsed >= Duration::from_millis(100), "{:?}", s.elapsed);
            assert_eq!(s.rec.count(), 21);
        });
    }
}
