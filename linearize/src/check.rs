//! The entry points: [`check`] and [`check_with`], their [`Options`] and the [`Report`].

use std::fmt;
use std::time::{Duration, Instant};

use crate::compile::compile;
use crate::explain::{explain, static_violation};
use crate::history::{Kv, Op};
use crate::search::Search;

/// Limits and the state the history starts from.
#[derive(Clone, Debug)]
pub struct Options {
    /// Give up (verdict `Unknown`) after this long.
    pub time_limit: Option<Duration>,
    /// Give up after remembering this many search nodes (about 48 bytes each).
    pub max_states: usize,
    /// Store revision before the first op (1 for a new etcd cluster).
    pub initial_revision: i64,
    /// Keys present before the first op.
    pub initial_kvs: Vec<Kv>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            time_limit: Some(Duration::from_secs(60)),
            max_states: 20_000_000,
            initial_revision: 1,
            initial_kvs: Vec::new(),
        }
    }
}

/// What [`check`] concluded.
#[derive(Debug)]
pub enum Verdict {
    Ok,
    Illegal(Violation),
    /// The search hit a limit; the reason says which.
    Unknown(String),
    /// The history itself is malformed (a return before its call, an output of the wrong
    /// kind, a nested txn).
    Invalid(String),
}

/// The outcome of [`check`] with some statistics.
#[derive(Debug)]
pub struct Report {
    pub verdict: Verdict,
    /// Ops in the history.
    pub ops: usize,
    /// Ops with a response.
    pub completed: usize,
    /// Ops with a known output but no return time: given, or ambiguous puts whose value a
    /// completed op saw (see `inferred`).
    pub resolved: usize,
    /// Of `resolved`, those inferred by the checker.
    pub inferred: usize,
    /// Ambiguous writes the search could place (or leave out).
    pub ambiguous: usize,
    /// Ambiguous reads, dropped before the search (they cannot change anything).
    pub dropped: usize,
    /// Search nodes remembered.
    pub states: usize,
    /// Search steps taken.
    pub steps: u64,
    pub elapsed: Duration,
}

impl Report {
    /// The history is linearizable.
    pub fn is_ok(&self) -> bool {
        matches!(self.verdict, Verdict::Ok)
    }

    /// The history is not linearizable (a [`Violation`] says why).
    pub fn is_illegal(&self) -> bool {
        matches!(self.verdict, Verdict::Illegal(_))
    }

    /// Panics with the explanation unless the verdict is `Ok`.
    #[track_caller]
    pub fn assert_ok(&self) {
        if !self.is_ok() {
            panic!("linearizability check failed: {self}");
        }
    }

    /// Panics unless the verdict is `Illegal`; returns the violation.
    #[track_caller]
    pub fn expect_illegal(&self) -> &Violation {
        match &self.verdict {
            Verdict::Illegal(v) => v,
            _ => panic!("expected a linearizability violation, got: {self}"),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.verdict {
            Verdict::Ok => write!(f, "linearizable")?,
            Verdict::Illegal(v) => write!(f, "NOT linearizable\n{v}")?,
            Verdict::Unknown(why) => write!(f, "unknown ({why})")?,
            Verdict::Invalid(why) => write!(f, "invalid history: {why}")?,
        }
        write!(
            f,
            "\n[{} ops: {} completed, {} resolved ({} inferred), {} ambiguous writes, \
             {} ambiguous reads dropped; {} states, {} steps, {:?}]",
            self.ops,
            self.completed,
            self.resolved,
            self.inferred,
            self.ambiguous,
            self.dropped,
            self.states,
            self.steps,
            self.elapsed
        )
    }
}

/// Why a history is not linearizable.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Indices (into the checked history) of the longest linearizable prefix the search found,
    /// in order.
    pub prefix: Vec<usize>,
    /// Completed ops that could come next after that prefix but were rejected by the model.
    pub stuck: Vec<usize>,
    pub(crate) text: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Checks `history` with the default [`Options`].
pub fn check(history: &[Op]) -> Report {
    check_with(history, &Options::default())
}

/// Checks `history` starting from the state and within the limits of `opts`.
pub fn check_with(history: &[Op], opts: &Options) -> Report {
    let started = Instant::now();
    let mut report = Report {
        verdict: Verdict::Ok,
        ops: history.len(),
        completed: 0,
        resolved: 0,
        inferred: 0,
        ambiguous: 0,
        dropped: 0,
        states: 0,
        steps: 0,
        elapsed: Duration::ZERO,
    };
    let compiled = match compile(history, opts) {
        Ok(c) => c,
        Err(why) => {
            report.verdict = Verdict::Invalid(why);
            report.elapsed = started.elapsed();
            return report;
        }
    };
    let known = compiled.ops.iter().filter(|o| o.output.is_some()).count();
    report.completed = compiled.ops.iter().filter(|o| o.ret.is_some()).count();
    report.resolved = known - report.completed;
    report.inferred = compiled.ops.iter().filter(|o| o.inferred).count();
    report.ambiguous = compiled.ops.len() - known;
    report.dropped = compiled.dropped;

    if let Some(v) = static_violation(history, &compiled) {
        report.verdict = Verdict::Illegal(v);
        report.elapsed = started.elapsed();
        return report;
    }
    let deadline = opts.time_limit.map(|d| started + d);
    let mut search = Search::new(&compiled);
    let result = search.run(deadline, opts.max_states);
    report.states = search.cache.len();
    report.steps = search.steps;
    report.verdict = match result {
        Ok(true) => Verdict::Ok,
        Ok(false) => Verdict::Illegal(explain(history, &compiled, &search.best)),
        Err(why) => Verdict::Unknown(why),
    };
    report.elapsed = started.elapsed();
    report
}
