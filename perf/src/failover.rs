//! Leader failover: under a light write load, kill -9 the leader and time how
//! long the cluster takes to acknowledge a write again.
//!
//! A 256 B put leaves every [`PROBE_INTERVAL`], round-robin over the members'
//! endpoints (after the kill: over the survivors), each with its own
//! [`ATTEMPT_TIMEOUT`]. Attempts overlap, so one attempt stuck on a member that
//! still believes in the dead leader does not hide the moment another succeeds:
//! the resolution is the probe interval, whatever the servers' own timeouts are.
//! The figure is the time from the kill to the acknowledgement of the first put
//! *sent after* the kill (only a new leader can commit it). A side task polls the
//! survivors' Status to note when one of them first names a new leader.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::conn::{self, BenchError, Pool};
use crate::proto::etcdserverpb::PutRequest;

/// Time between two write attempts (the light load, and the resolution).
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// How long one write attempt may take before it counts as failed.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Load before the kill.
pub(crate) const WARMUP: Duration = Duration::from_secs(1);
/// A cluster that acknowledges nothing this long after the kill has failed the run.
pub(crate) const GIVE_UP: Duration = Duration::from_secs(30);

/// One kill of the leader.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Run {
    /// Kill → first acknowledged write sent after the kill.
    pub(crate) to_write: Duration,
    /// Kill → first Status of a survivor naming a leader other than the killed one.
    pub(crate) to_leader: Option<Duration>,
    /// Write attempts sent after the kill that failed before the first success, per cause.
    pub(crate) failed: BTreeMap<String, u64>,
    /// Attempts sent after the kill, up to and including the first success.
    pub(crate) attempts: u64,
    /// Name of the member that was killed.
    pub(crate) killed: String,
}

impl Run {
    pub(crate) fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }
}

/// Runs one failover: load, `kill()` (which kills member `leader` and returns
/// the instant just before the signal), then load on the survivors until one
/// write is acknowledged. `pools[m]` talks to member `m` only; `endpoints[m]`
/// is its client URL (for Status); `leader_id` is the killed member's id.
pub(crate) async fn measure(
    pools: &[Pool],
    endpoints: &[String],
    leader: usize,
    leader_id: u64,
    kill: impl FnOnce() -> Result<Instant, BenchError>,
    cancel: &CancellationToken,
) -> Result<Run, BenchError> {
    if pools.len() < 2 || pools.len() != endpoints.len() || leader >= pools.len() {
        return Err(BenchError::Setup(
            "failover needs at least two members and the leader among them".into(),
        ));
    }
    let value = Bytes::from(vec![b'f'; 256]);
    let mut kill = Some(kill);
    let mut inflight = FuturesUnordered::new();
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut killed_at: Option<Instant> = None;
    let mut leader_task = None;
    let mut failed: BTreeMap<String, u64> = BTreeMap::new();
    let mut attempts = 0u64;
    let mut n = 0usize;
    let acked = loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                return Err(BenchError::Setup("interrupted during the failover run".into()));
            }
            _ = tick.tick() => {
                if killed_at.is_none() && started.elapsed() >= WARMUP {
                    if let Some(k) = kill.take() {
                        let at = k()?;
                        killed_at = Some(at);
                        let survivors: Vec<String> = endpoints
                            .iter()
                            .enumerate()
                            .filter(|(m, _)| *m != leader)
                            .map(|(_, e)| e.clone())
                            .collect();
                        let dialer = pools[0].dialer().clone();
                        leader_task = Some(tokio::spawn(new_leader_seen(
                            dialer, survivors, leader_id, at,
                        )));
                    }
                }
                if let Some(at) = killed_at {
                    if at.elapsed() > GIVE_UP {
                        return Err(BenchError::Server(format!(
                            "no write acknowledged within {} s of killing the leader \
                             ({attempts} attempts, failures: {failed:?})",
                            GIVE_UP.as_secs()
                        )));
                    }
                }
                let after = killed_at.is_some();
                let targets: Vec<usize> =
                    (0..pools.len()).filter(|&m| !after || m != leader).collect();
                let m = targets[n % targets.len()];
                let mut kv = pools[m].kv(n);
                n += 1;
                if after {
                    attempts += 1;
                }
                let req = PutRequest {
                    key: format!("/bench/failover/{}", n % 1000).into_bytes().into(),
                    value: value.clone(),
                    ..Default::default()
                };
                inflight.push(async move {
                    let r = tokio::time::timeout(ATTEMPT_TIMEOUT, kv.put(req)).await;
                    (after, r, Instant::now())
                });
            }
            Some((after, r, at)) = inflight.next() => {
                if !after {
                    continue;
                }
                match r {
                    Ok(Ok(_)) => break at,
                    Ok(Err(s)) => *failed.entry(format!("{:?}", s.code())).or_default() += 1,
                    Err(_) => *failed.entry("Timeout".into()).or_default() += 1,
                }
            }
        }
    };
    let killed_at = killed_at.unwrap_or(started);
    drop(inflight);
    let to_leader = match leader_task {
        Some(t) => match tokio::time::timeout(Duration::from_secs(5), t).await {
            Ok(Ok(d)) => d,
            _ => None,
        },
        None => None,
    };
    Ok(Run {
        to_write: acked.saturating_duration_since(killed_at),
        to_leader,
        failed,
        attempts,
        killed: String::new(),
    })
}

/// Polls the survivors' Status until one names a leader that is not `old`;
/// returns the time since `since`, or None after [`GIVE_UP`].
async fn new_leader_seen(
    dialer: conn::Dialer,
    endpoints: Vec<String>,
    old: u64,
    since: Instant,
) -> Option<Duration> {
    while since.elapsed() < GIVE_UP {
        let polls = endpoints
            .iter()
            .map(|ep| conn::status(&dialer, ep, Duration::from_millis(500)));
        for st in futures::future::join_all(polls).await.into_iter().flatten() {
            if st.leader != 0 && st.leader != old {
                return Some(since.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// min, median and max of `v` (the median of an even count is the mean of the middle two).
pub(crate) fn min_median_max(v: &[Duration]) -> Option<[Duration; 3]> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort();
    let mid = s.len() / 2;
    let median = if s.len() % 2 == 1 {
        s[mid]
    } else {
        (s[mid - 1] + s[mid]) / 2
    };
    Some([s[0], median, s[s.len() - 1]])
}

/// "12 (Timeout×9, Unavailable×3)", or "0".
pub(crate) fn failures_text(runs: &[Run]) -> String {
    let mut all: BTreeMap<&str, u64> = BTreeMap::new();
    for r in runs {
        for (k, v) in &r.failed {
            *all.entry(k.as_str()).or_default() += v;
        }
    }
    let total: u64 = all.values().sum();
    if total == 0 {
        return "0".into();
    }
    let parts: Vec<String> = all.iter().map(|(k, v)| format!("{k}×{v}")).collect();
    format!("{total} ({})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn min_median_max_of_odd_and_even_counts() {
        assert_eq!(min_median_max(&[]), None);
        assert_eq!(
            min_median_max(&[ms(900), ms(1200), ms(1000)]),
            Some([ms(900), ms(1000), ms(1200)])
        );
        assert_eq!(
            min_median_max(&[ms(4), ms(1), ms(3), ms(2)]),
            Some([ms(1), Duration::from_micros(2500), ms(4)])
        );
    }

    #[test]
    fn failures_are_summed_per_cause_over_runs() {
        let run = |f: &[(&str, u64)]| Run {
            to_write: ms(1),
            to_leader: None,
            failed: f.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            attempts: 10,
            killed: "m0".into(),
        };
        assert_eq!(failures_text(&[run(&[]), run(&[])]), "0");
        let runs = [
            run(&[("Timeout", 2), ("Unavailable", 1)]),
            run(&[("Unavailable", 4)]),
        ];
        assert_eq!(failures_text(&runs), "7 (Timeout×2, Unavailable×5)");
        assert_eq!(runs[1].failed_total(), 4);
    }

    #[test]
    fn refuses_a_single_member() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cancel = CancellationToken::new();
        let r = rt.block_on(measure(&[], &[], 0, 1, || Ok(Instant::now()), &cancel));
        assert!(matches!(r, Err(BenchError::Setup(_))));
    }
}
