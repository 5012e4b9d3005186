//! Results of one benchmark run: latencies in an HDR histogram, errors counted per
//! gRPC status code, and the summary printed in etcd `benchmark`'s layout (or JSON).
//!
//! Failed requests never enter the latency figures: they are counted apart and
//! listed under "Error distribution", so an unreachable endpoint cannot make a run
//! look fast.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Percentiles printed under "Latency distribution", as etcd 3.5 does.
pub const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

/// Highest latency the histogram tracks exactly (longer ones are clamped): one hour.
const MAX_TRACKABLE_NS: u64 = 3_600_000_000_000;

/// Latencies and errors of one run (or one client's share of it; see [`Recorder::merge`]).
#[derive(Clone, Debug)]
pub struct Recorder {
    hist: Histogram<u64>,
    count: u64,
    sum_ns: u128,
    sum_sq_s: f64,
    min_ns: u64,
    max_ns: u64,
    errors: BTreeMap<String, ErrorCount>,
}

/// How often one status code was seen, with the first message as an example.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorCount {
    pub count: u64,
    pub example: String,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            // 3 significant digits: percentiles are exact to 0.1 %.
            hist: Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, 3)
                .expect("static histogram bounds are valid"),
            count: 0,
            sum_ns: 0,
            sum_sq_s: 0.0,
            min_ns: u64::MAX,
            max_ns: 0,
            errors: BTreeMap::new(),
        }
    }

    /// One successful request that took `d`.
    pub fn ok(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_TRACKABLE_NS);
        self.hist.saturating_record(ns);
        self.count += 1;
        self.sum_ns += u128::from(ns);
        let s = ns as f64 / 1e9;
        self.sum_sq_s += s * s;
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// One failed request; `code` is the gRPC status code's name (or a local
    /// failure class such as "Timeout"), `message` an example text.
    pub fn err(&mut self, code: &str, message: &str) {
        let e = self
            .errors
            .entry(code.to_string())
            .or_insert_with(|| ErrorCount {
                count: 0,
                example: message.to_string(),
            });
        e.count += 1;
    }

    /// Records a tonic status as an error under its code.
    pub fn status(&mut self, s: &tonic::Status) {
        self.err(&format!("{:?}", s.code()), s.message());
    }

    pub fn merge(&mut self, other: &Recorder) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
        self.count += other.count;
        self.sum_ns += other.sum_ns;
        self.sum_sq_s += other.sum_sq_s;
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
        for (code, e) in &other.errors {
            let mine = self
                .errors
                .entry(code.clone())
                .or_insert_with(|| ErrorCount {
                    count: 0,
                    example: e.example.clone(),
                });
            mine.count += e.count;
        }
    }

    /// Successful requests.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Failed requests, all codes together.
    pub fn error_count(&self) -> u64 {
        self.errors.values().map(|e| e.count).sum()
    }

    pub fn errors(&self) -> &BTreeMap<String, ErrorCount> {
        &self.errors
    }

    pub fn fastest(&self) -> Option<Duration> {
        (self.count > 0).then(|| Duration::from_nanos(self.min_ns))
    }

    pub fn slowest(&self) -> Option<Duration> {
        (self.count > 0).then(|| Duration::from_nanos(self.max_ns))
    }

    /// Mean latency in seconds (0 without successes).
    pub fn average_secs(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.sum_ns as f64 / 1e9 / self.count as f64
    }

    /// Population standard deviation in seconds, as etcd's report computes it.
    pub fn stddev_secs(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let n = self.count as f64;
        let mean = self.average_secs();
        (self.sum_sq_s / n - mean * mean).max(0.0).sqrt()
    }

    /// Latency at percentile `p` (0..=100), to the histogram's precision.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        (self.count > 0).then(|| {
            let v = self.hist.value_at_quantile(p / 100.0);
            // Never report beyond the exact extremes.
            Duration::from_nanos(v.clamp(self.min_ns, self.max_ns))
        })
    }

    /// etcd's "Response time histogram": 11 bucket marks from fastest to slowest,
    /// each with the number of latencies above the previous mark and up to it.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        if self.count == 0 {
            return Vec::new();
        }
        let (lo, hi) = (self.min_ns, self.max_ns);
        let step = (hi - lo) as f64 / 10.0;
        // Bucket i holds the latencies above mark i-1 and up to mark i. Histogram cells can
        // straddle a mark, so counting each bucket on its own would count a cell twice;
        // differencing one cumulative count (monotone in the mark, and ending at the exact
        // total) makes the buckets add up by construction.
        let cumulative = |mark: u64| self.hist.count_between(0, mark).min(self.count);
        let mut out = Vec::with_capacity(11);
        let mut below = 0u64;
        for i in 0..=10 {
            let mark = if i == 10 {
                hi
            } else {
                lo + (step * i as f64) as u64
            };
            let upto = if i == 10 {
                self.count
            } else {
                cumulative(mark).max(below)
            };
            out.push((mark as f64 / 1e9, upto - below));
            below = upto;
        }
        out
    }
}

/// A finished (or interrupted) run, ready to print.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Title line printed above the figures ("put", "Watch events received", ...).
    pub name: String,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    pub rec: Recorder,
    /// CPU time (user + system) this process spent during the run.
    pub client_cpu: Duration,
    /// Ctrl-C stopped the run before its total.
    pub interrupted: bool,
    /// Workload-specific lines (e.g. CAS conflicts), printed after the summary.
    pub notes: Vec<(String, String)>,
}

impl Summary {
    /// Successful requests per second of wall-clock time.
    pub fn requests_per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s <= 0.0 {
            return 0.0;
        }
        self.rec.count() as f64 / s
    }

    /// Client CPU per request (successful or not), in microseconds.
    pub fn client_cpu_us_per_request(&self) -> f64 {
        let n = self.rec.count() + self.rec.error_count();
        if n == 0 {
            return 0.0;
        }
        self.client_cpu.as_secs_f64() * 1e6 / n as f64
    }

    /// The summary in etcd benchmark's layout; `precise` prints full precision.
    pub fn to_text(&self, precise: bool) -> String {
        let f = |v: f64| -> String {
            if precise {
                format!("{v}")
            } else {
                format!("{v:4.4}")
            }
        };
        let mut s = String::new();
        if self.interrupted {
            let _ = writeln!(s, "\nInterrupted: partial results of {}", self.name);
        }
        let _ = writeln!(s, "\nSummary:");
        let _ = writeln!(s, "  Total:\t{} secs.", f(self.elapsed.as_secs_f64()));
        if let (Some(slow), Some(fast)) = (self.rec.slowest(), self.rec.fastest()) {
            let _ = writeln!(s, "  Slowest:\t{} secs.", f(slow.as_secs_f64()));
            let _ = writeln!(s, "  Fastest:\t{} secs.", f(fast.as_secs_f64()));
            let _ = writeln!(s, "  Average:\t{} secs.", f(self.rec.average_secs()));
            let _ = writeln!(s, "  Stddev:\t{} secs.", f(self.rec.stddev_secs()));
        }
        let _ = writeln!(s, "  Requests/sec:\t{}", f(self.requests_per_sec()));
        let _ = writeln!(
            s,
            "  Requests:\t{} ok, {} failed",
            self.rec.count(),
            self.rec.error_count()
        );
        let _ = writeln!(
            s,
            "  Client CPU:\t{:.1} µs/request ({:.3} secs. user+sys)",
            self.client_cpu_us_per_request(),
            self.client_cpu.as_secs_f64()
        );
        for (k, v) in &self.notes {
            let _ = writeln!(s, "  {k}:\t{v}");
        }
        let buckets = self.rec.buckets();
        if !buckets.is_empty() {
            let _ = writeln!(s, "\nResponse time histogram:");
            let max = buckets.iter().map(|b| b.1).max().unwrap_or(0).max(1);
            for (mark, n) in &buckets {
                let bar = "∎".repeat((n * 40 / max) as usize);
                let _ = writeln!(s, "  {} [{n}]\t|{bar}", f(*mark));
            }
            let _ = writeln!(s, "\nLatency distribution:");
            for p in PERCENTILES {
                if let Some(d) = self.rec.percentile(p) {
                    let _ = writeln!(s, "  {p}% in {} secs.", f(d.as_secs_f64()));
                }
            }
        }
        if !self.rec.errors().is_empty() {
            let _ = writeln!(s, "\nError distribution:");
            for (code, e) in self.rec.errors() {
                let _ = writeln!(s, "  [{}]\t{code}: {}", e.count, e.example);
            }
        }
        s
    }

    /// The same figures as JSON (seconds as floats).
    pub fn to_json(&self) -> Value {
        let pct: serde_json::Map<String, Value> = PERCENTILES
            .iter()
            .map(|p| {
                (
                    format!("p{p}"),
                    json!(self.rec.percentile(*p).map(|d| d.as_secs_f64())),
                )
            })
            .collect();
        let errors: serde_json::Map<String, Value> = self
            .rec
            .errors()
            .iter()
            .map(|(k, e)| (k.clone(), json!({"count": e.count, "example": e.example})))
            .collect();
        let notes: serde_json::Map<String, Value> = self
            .notes
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        json!({
            "name": self.name,
            "interrupted": self.interrupted,
            "total_secs": self.elapsed.as_secs_f64(),
            "requests": self.rec.count(),
            "errors_total": self.rec.error_count(),
            "errors": errors,
            "slowest_secs": self.rec.slowest().map(|d| d.as_secs_f64()),
            "fastest_secs": self.rec.fastest().map(|d| d.as_secs_f64()),
            "average_secs": self.rec.average_secs(),
            "stddev_secs": self.rec.stddev_secs(),
            "requests_per_sec": self.requests_per_sec(),
            "percentiles_secs": pct,
            "histogram": self.rec.buckets().iter().map(|(m, n)| json!([m, n])).collect::<Vec<_>>(),
            "client_cpu_secs": self.client_cpu.as_secs_f64(),
            "client_cpu_us_per_request": self.client_cpu_us_per_request(),
            "notes": notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn summary(rec: Recorder, secs: u64) -> Summary {
        Summary {
            name: "put".into(),
            elapsed: Duration::from_secs(secs),
            rec,
            client_cpu: ms(50),
            interrupted: false,
            notes: vec![],
        }
    }

    #[test]
    fn percentiles_follow_the_recorded_distribution() {
        let mut r = Recorder::new();
        for i in 1..=1000 {
            r.ok(Duration::from_micros(i * 10)); // 10 µs .. 10 ms
        }
        let p50 = r.percentile(50.0).unwrap().as_secs_f64();
        let p99 = r.percentile(99.0).unwrap().as_secs_f64();
        assert!((p50 - 0.005).abs() < 0.005 * 0.002, "p50 {p50}");
        assert!((p99 - 0.0099).abs() < 0.0099 * 0.002, "p99 {p99}");
        assert_eq!(r.fastest(), Some(Duration::from_micros(10)));
        assert_eq!(r.slowest(), Some(Duration::from_micros(10_000)));
        let avg = r.average_secs();
        assert!((avg - 0.005005).abs() < 1e-9, "avg {avg}");
        // Uniform over 1..=1000 steps of 10 µs: stddev = 10 µs * sqrt((n²-1)/12).
        let expect = 10e-6 * ((1000f64 * 1000.0 - 1.0) / 12.0).sqrt();
        assert!((r.stddev_secs() - expect).abs() < 1e-7);
    }

    #[test]
    fn merge_adds_counts_extremes_and_errors() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        a.ok(ms(2));
        a.err("Unavailable", "connection refused");
        b.ok(ms(8));
        b.err("Unavailable", "other text");
        b.err("PermissionDenied", "etcdserver: permission denied");
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.error_count(), 3);
        assert_eq!(a.errors()["Unavailable"].count, 2);
        assert_eq!(a.errors()["Unavailable"].example, "connection refused");
        assert_eq!(a.errors()["PermissionDenied"].count, 1);
        assert_eq!(a.fastest(), Some(ms(2)));
        assert_eq!(a.slowest(), Some(ms(8)));
        assert!((a.average_secs() - 0.005).abs() < 1e-9);
    }

    #[test]
    fn histogram_buckets_add_up_to_the_count() {
        let mut r = Recorder::new();
        for i in 0..537u64 {
            r.ok(Duration::from_micros(100 + (i * i) % 9000));
        }
        let b = r.buckets();
        assert_eq!(b.len(), 11);
        assert_eq!(b.iter().map(|x| x.1).sum::<u64>(), 537);
        assert!((b[0].0 - r.fastest().unwrap().as_secs_f64()).abs() < 1e-12);
        assert!((b[10].0 - r.slowest().unwrap().as_secs_f64()).abs() < 1e-12);
        assert!(b.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn histogram_buckets_add_up_with_outliers_and_clustered_latencies() {
        // Clustered latencies put bucket marks inside populated histogram cells, and a lone
        // slow outlier leaves the last bucket nearly empty: the totals must still add up.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..300u64 {
            let mut r = Recorder::new();
            let n = 50 + next() % 400;
            let base = 200 + next() % 5_000;
            let spread = 1 + next() % 800;
            for _ in 0..n {
                r.ok(Duration::from_micros(base + next() % spread));
            }
            for _ in 0..(round % 3) {
                r.ok(Duration::from_micros(base * (2 + next() % 20)));
            }
            let b = r.buckets();
            let total: u64 = b.iter().map(|x| x.1).sum();
            assert_eq!(total, n + round % 3, "round {round}: {b:?}");
        }
    }

    #[test]
    fn text_summary_has_etcds_sections_and_lists_errors_apart() {
        let mut r = Recorder::new();
        for i in 1..=100 {
            r.ok(ms(i));
        }
        r.err("Unavailable", "tcp connect error");
        r.err("Unavailable", "tcp connect error");
        let text = summary(r, 2).to_text(false);
        for needle in [
            "Summary:",
            "  Total:\t2.0000 secs.",
            "  Slowest:\t0.1000 secs.",
            "  Fastest:\t0.0010 secs.",
            "  Average:\t0.0505 secs.",
            "  Requests/sec:\t50.0000",
            "  Requests:\t100 ok, 2 failed",
            "Response time histogram:",
            "Latency distribution:",
            "  10% in 0.0100 secs.",
            "  99.9% in 0.1000 secs.",
            "Error distribution:",
            "  [2]\tUnavailable: tcp connect error",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        // 102 requests in total, 50 ms of client CPU.
        assert!(text.contains("Client CPU:\t490.2 µs/request"), "{text}");
    }

    #[test]
    fn errors_only_run_prints_no_latencies() {
        let mut r = Recorder::new();
        for _ in 0..5 {
            r.err("Unavailable", "refused");
        }
        let s = summary(r, 1);
        let text = s.to_text(false);
        assert!(!text.contains("Slowest"));
        assert!(!text.contains("Latency distribution"));
        assert!(text.contains("  [5]\tUnavailable: refused"));
        let j = s.to_json();
        assert_eq!(j["requests"], 0);
        assert_eq!(j["errors_total"], 5);
        assert_eq!(j["errors"]["Unavailable"]["count"], 5);
        assert_eq!(j["requests_per_sec"], 0.0);
    }

    #[test]
    fn precise_prints_full_precision() {
        let mut r = Recorder::new();
        r.ok(Duration::from_nanos(1_234_567));
        let text = summary(r, 3).to_text(true);
        assert!(text.contains("  Fastest:\t0.001234567 secs."), "{text}");
    }

    #[test]
    fn json_carries_percentiles_and_interruption() {
        let mut r = Recorder::new();
        for i in 1..=10 {
            r.ok(ms(i));
        }
        let mut s = summary(r, 1);
        s.interrupted = true;
        let j = s.to_json();
        assert_eq!(j["interrupted"], true);
        assert_eq!(j["requests"], 10);
        let p50 = j["percentiles_secs"]["p50"].as_f64().unwrap();
        assert!((p50 - 0.005).abs() < 0.00001, "{p50}");
        assert!(s
            .to_text(false)
            .contains("Interrupted: partial results of put"));
    }
}
