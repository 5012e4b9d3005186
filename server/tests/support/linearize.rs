//! A linearizability checker for histories of etcd KV calls, with a model of etcd's KV store.
//!
//! Clients record every call they make with a [`Recorder`] (or build [`Op`]s by hand), then
//! [`check`] decides whether there is one total order of the operations that
//! 1. respects real time: an operation that returned before another one was called comes first;
//! 2. replayed through the model of etcd's KV store (values, create/mod revisions, versions, the
//!    store revision in every response header) gives exactly the responses the clients saw.
//!
//! # Ambiguous operations
//! A call that timed out or failed in a way that leaves its outcome unknown is recorded with no
//! return time and no output ([`Recorder::fail`], or a [`Pending`] that is simply dropped, e.g. by
//! a timeout). It may have taken effect at any moment after its call, or never. (Taking effect
//! after everything else is the same as never, so "never" needs no special case.) A failed read
//! changes nothing and is dropped before the search. A call known NOT to have been applied
//! (refused before it reached the server) can be removed with [`Recorder::discard`]; when in
//! doubt, `fail` is always sound.
//!
//! # Search
//! Wing & Gong's backtracking over the time-ordered call/return entries, with Lowe's memoization
//! (porcupine's algorithm): a search node is the set of operations linearized so far plus the
//! model state, and a node already explored is never entered again. Nodes are remembered by
//! 128-bit fingerprints of the set and of the state (a collision could only prune a branch, that
//! is report a violation that is not one, with a probability around 2^-100; it can never hide one).
//!
//! etcd's revisions make almost every move forced, which keeps the search linear in practice:
//! * a completed operation the model accepts without moving the revision (a read, a delete that
//!   found nothing, a txn that wrote nothing) changes no state, so it can be moved in front of
//!   everything still pending: it is taken at once and never tried elsewhere;
//! * otherwise a completed write the model accepts claims revision `r + 1`; no other state change
//!   can come first (that write could never be placed afterwards), so it is taken at once too;
//! * only when no completed operation fits does the search branch, over ambiguous writes (one
//!   that would change nothing is skipped: the same as never happening).
//!
//! So the cost grows with the number of ambiguous writes, not with the number of clients.
//! Splitting the history by key is not valid for etcd (revisions are global) and is not done.
//!
//! Not modelled: leases, compaction, historical reads (`revision` in a range), `limit`, sort
//! options, `prev_kv`, nested txns (rejected as an invalid history), serializable reads (which are
//! not linearizable and must not be recorded).
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------------------------------
// History
// ------------------------------------------------------------------------------------------

/// A request as a client sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// One key, or with `prefix` every key starting with `key` (etcd's `WithPrefix`; an empty
    /// prefix means every key).
    Get {
        key: Vec<u8>,
        prefix: bool,
    },
    Delete {
        key: Vec<u8>,
        prefix: bool,
    },
    /// The branches hold `Put`, `Get` and `Delete` only (nested txns are not modelled).
    Txn {
        compares: Vec<Compare>,
        success: Vec<Input>,
        failure: Vec<Input>,
    },
}

impl Input {
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Input {
        Input::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    pub fn get(key: impl Into<Vec<u8>>) -> Input {
        Input::Get {
            key: key.into(),
            prefix: false,
        }
    }

    pub fn get_prefix(prefix: impl Into<Vec<u8>>) -> Input {
        Input::Get {
            key: prefix.into(),
            prefix: true,
        }
    }

    pub fn delete(key: impl Into<Vec<u8>>) -> Input {
        Input::Delete {
            key: key.into(),
            prefix: false,
        }
    }

    pub fn delete_prefix(prefix: impl Into<Vec<u8>>) -> Input {
        Input::Delete {
            key: prefix.into(),
            prefix: true,
        }
    }

    pub fn txn(compares: Vec<Compare>, success: Vec<Input>, failure: Vec<Input>) -> Input {
        Input::Txn {
            compares,
            success,
            failure,
        }
    }

    /// True when the request can never change the store (a get, or a txn of gets only).
    pub fn is_read_only(&self) -> bool {
        match self {
            Input::Get { .. } => true,
            Input::Put { .. } | Input::Delete { .. } => false,
            Input::Txn {
                success, failure, ..
            } => success.iter().chain(failure).all(Input::is_read_only),
        }
    }
}

/// One txn guard: `<target of key> <op> <operand>`, as etcd's `Compare` on a single key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    pub key: Vec<u8>,
    pub op: CmpOp,
    pub target: Target,
}

impl Compare {
    pub fn value(key: impl Into<Vec<u8>>, op: CmpOp, value: impl Into<Vec<u8>>) -> Compare {
        Compare {
            key: key.into(),
            op,
            target: Target::Value(value.into()),
        }
    }

    pub fn version(key: impl Into<Vec<u8>>, op: CmpOp, version: i64) -> Compare {
        Compare {
            key: key.into(),
            op,
            target: Target::Version(version),
        }
    }

    pub fn create_revision(key: impl Into<Vec<u8>>, op: CmpOp, revision: i64) -> Compare {
        Compare {
            key: key.into(),
            op,
            target: Target::CreateRevision(revision),
        }
    }

    pub fn mod_revision(key: impl Into<Vec<u8>>, op: CmpOp, revision: i64) -> Compare {
        Compare {
            key: key.into(),
            op,
            target: Target::ModRevision(revision),
        }
    }
}

/// `stored <op> operand`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Equal,
    NotEqual,
    Less,
    Greater,
}

/// What a compare looks at, with its operand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Value(Vec<u8>),
    Version(i64),
    CreateRevision(i64),
    ModRevision(i64),
}

/// A key-value pair as a response carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
}

impl Kv {
    pub fn new(
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        create_revision: i64,
        mod_revision: i64,
        version: i64,
    ) -> Kv {
        Kv {
            key: key.into(),
            value: value.into(),
            create_revision,
            mod_revision,
            version,
        }
    }
}

/// What the client saw. `revision` is the response header's revision: the store revision
/// after the operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Put {
        revision: i64,
    },
    /// `kvs` in key order, as etcd returns them.
    Get {
        revision: i64,
        kvs: Vec<Kv>,
    },
    Delete {
        revision: i64,
        deleted: i64,
    },
    /// `results`: one per op of the branch that ran.
    Txn {
        succeeded: bool,
        revision: i64,
        results: Vec<TxnResult>,
    },
}

impl Output {
    pub fn revision(&self) -> i64 {
        match self {
            Output::Put { revision }
            | Output::Get { revision, .. }
            | Output::Delete { revision, .. }
            | Output::Txn { revision, .. } => *revision,
        }
    }
}

/// The result of one op inside a txn (inner response headers are not checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnResult {
    Put,
    Get(Vec<Kv>),
    Delete(i64),
}

/// One call in a history.
///
/// | `ret`  | `output` | meaning                                                              |
/// |--------|----------|----------------------------------------------------------------------|
/// | `Some` | `Some`   | completed: took effect between `call` and `ret` with this output      |
/// | `None` | `Some`   | resolved: took effect with this output, at some point after `call`    |
/// | any    | `None`   | ambiguous: may take effect at any point after `call`, or never        |
///
/// A resolved op is an ambiguous one whose outcome was learnt later (e.g. from a watch, see
/// [`resolve_puts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub client: usize,
    /// When the call was made (any monotonic unit: [`Recorder`] uses nanoseconds).
    pub call: u64,
    /// When the response arrived; `None`: no response.
    pub ret: Option<u64>,
    pub input: Input,
    /// `None`: the outcome is unknown.
    pub output: Option<Output>,
}

impl Op {
    pub fn ok(client: usize, call: u64, ret: u64, input: Input, output: Output) -> Op {
        Op {
            client,
            call,
            ret: Some(ret),
            input,
            output: Some(output),
        }
    }

    pub fn ambiguous(client: usize, call: u64, input: Input) -> Op {
        Op {
            client,
            call,
            ret: None,
            input,
            output: None,
        }
    }

    /// Took effect with `output` at an unknown time after `call`.
    pub fn resolved(client: usize, call: u64, input: Input, output: Output) -> Op {
        Op {
            client,
            call,
            ret: None,
            input,
            output: Some(output),
        }
    }

    pub fn is_ambiguous(&self) -> bool {
        self.output.is_none()
    }
}

/// Resolves ambiguous puts from a list of writes known to have happened (e.g. the put events
/// of a watch from revision 1 over all keys, taken after the test). Only puts whose (key,
/// value) pair is written by no other op of the history are resolved: one found in `written`
/// gets its revision as output (it took effect at an unknown time); with `complete` (the
/// list holds every write since the history started) one not found is removed (it never
/// took effect). Other ops are kept as they are.
pub fn resolve_puts(history: Vec<Op>, written: &[Kv], complete: bool) -> Vec<Op> {
    let mut writers: HashMap<(&[u8], &[u8]), usize> = HashMap::new();
    for op in &history {
        for_each_put(&op.input, &mut |k, v| {
            *writers.entry((k, v)).or_default() += 1
        });
    }
    let seen: HashMap<(&[u8], &[u8]), i64> = written
        .iter()
        .map(|kv| ((kv.key.as_slice(), kv.value.as_slice()), kv.mod_revision))
        .collect();
    let mut decided: Vec<Option<Option<i64>>> = Vec::with_capacity(history.len());
    for op in &history {
        decided.push(match (&op.input, &op.output) {
            (Input::Put { key, value }, None)
                if writers.get(&(key.as_slice(), value.as_slice())) == Some(&1) =>
            {
                match seen.get(&(key.as_slice(), value.as_slice())) {
                    Some(&rev) => Some(Some(rev)),
                    None if complete => Some(None),
                    None => None,
                }
            }
            _ => None,
        });
    }
    history
        .into_iter()
        .zip(decided)
        .filter_map(|(mut op, d)| match d {
            None => Some(op),
            Some(None) => None,
            Some(Some(revision)) => {
                op.ret = None;
                op.output = Some(Output::Put { revision });
                Some(op)
            }
        })
        .collect()
}

fn for_each_put<'a>(input: &'a Input, f: &mut dyn FnMut(&'a [u8], &'a [u8])) {
    match input {
        Input::Put { key, value } => f(key, value),
        Input::Get { .. } | Input::Delete { .. } => {}
        Input::Txn {
            success, failure, ..
        } => {
            for op in success.iter().chain(failure) {
                for_each_put(op, f);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Recording
// ------------------------------------------------------------------------------------------

/// Thread-safe history recorder; clones share one history and one clock.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

struct RecorderInner {
    start: Instant,
    ops: Mutex<Vec<Option<Op>>>,
}

/// An op that has been called and not finished. Dropping it (e.g. when a timeout drops the
/// future holding it) leaves the op ambiguous, like [`Recorder::fail`].
#[must_use = "finish the op with end, fail or discard"]
pub struct Pending {
    idx: usize,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            inner: Arc::new(RecorderInner {
                start: Instant::now(),
                ops: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Monotonic nanoseconds since the recorder was created.
    pub fn now(&self) -> u64 {
        self.inner.start.elapsed().as_nanos() as u64
    }

    fn ops(&self) -> std::sync::MutexGuard<'_, Vec<Option<Op>>> {
        // A panicking client thread must not hide the history from the checker.
        self.inner.ops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a call; call it right before sending the request.
    pub fn begin(&self, client: usize, input: Input) -> Pending {
        let call = self.now();
        let mut ops = self.ops();
        ops.push(Some(Op::ambiguous(client, call, input)));
        Pending { idx: ops.len() - 1 }
    }

    /// Records the response; call it right after it arrived.
    pub fn end(&self, p: Pending, output: Output) {
        let ret = self.now();
        if let Some(op) = self.ops()[p.idx].as_mut() {
            op.ret = Some(ret);
            op.output = Some(output);
        }
    }

    /// The outcome is unknown: the op may have taken effect at any time after its call, or never.
    pub fn fail(&self, p: Pending) {
        let _ = p;
    }

    /// The op certainly did not take effect (e.g. refused before reaching the server).
    pub fn discard(&self, p: Pending) {
        self.ops()[p.idx] = None;
    }

    /// The recorded ops (unfinished ones are ambiguous).
    pub fn history(&self) -> Vec<Op> {
        self.ops().iter().flatten().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.ops().iter().flatten().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `input` through an etcd client and records it; any error leaves it ambiguous.
    pub async fn run(
        &self,
        client: usize,
        kv: &mut etcd_client::KvClient,
        input: Input,
    ) -> Result<Output, etcd_client::Error> {
        let p = self.begin(client, input.clone());
        match execute(kv, &input).await {
            Ok(out) => {
                self.end(p, out.clone());
                Ok(out)
            }
            Err(e) => {
                self.fail(p);
                Err(e)
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// etcd-client glue
// ------------------------------------------------------------------------------------------

/// Sends `input` with an etcd client (linearizable reads) and converts the response.
pub async fn execute(
    kv: &mut etcd_client::KvClient,
    input: &Input,
) -> Result<Output, etcd_client::Error> {
    Ok(match input {
        Input::Put { key, value } => {
            Output::from_put(&kv.put(key.clone(), value.clone(), None).await?)
        }
        Input::Get { key, prefix } => {
            Output::from_get(&kv.get(key.clone(), get_options(key, *prefix)).await?)
        }
        Input::Delete { key, prefix } => {
            Output::from_delete(&kv.delete(key.clone(), delete_options(key, *prefix)).await?)
        }
        Input::Txn { .. } => Output::from_txn(&kv.txn(to_etcd_txn(input)).await?),
    })
}

fn get_options(key: &[u8], prefix: bool) -> Option<etcd_client::GetOptions> {
    match (prefix, key.is_empty()) {
        (false, _) => None,
        (true, true) => Some(etcd_client::GetOptions::new().with_all_keys()),
        (true, false) => Some(etcd_client::GetOptions::new().with_prefix()),
    }
}

fn delete_options(key: &[u8], prefix: bool) -> Option<etcd_client::DeleteOptions> {
    match (prefix, key.is_empty()) {
        (false, _) => None,
        (true, true) => Some(etcd_client::DeleteOptions::new().with_all_keys()),
        (true, false) => Some(etcd_client::DeleteOptions::new().with_prefix()),
    }
}

/// The etcd-client txn for a [`Input::Txn`] (panics on another input).
pub fn to_etcd_txn(input: &Input) -> etcd_client::Txn {
    let Input::Txn {
        compares,
        success,
        failure,
    } = input
    else {
        panic!("to_etcd_txn: not a txn: {input}");
    };
    let ops = |v: &[Input]| -> Vec<etcd_client::TxnOp> {
        v.iter()
            .map(|op| match op {
                Input::Put { key, value } => {
                    etcd_client::TxnOp::put(key.clone(), value.clone(), None)
                }
                Input::Get { key, prefix } => {
                    etcd_client::TxnOp::get(key.clone(), get_options(key, *prefix))
                }
                Input::Delete { key, prefix } => {
                    etcd_client::TxnOp::delete(key.clone(), delete_options(key, *prefix))
                }
                Input::Txn { .. } => etcd_client::TxnOp::txn(to_etcd_txn(op)),
            })
            .collect()
    };
    let cmps: Vec<etcd_client::Compare> = compares
        .iter()
        .map(|c| {
            use etcd_client::CompareOp as E;
            let op = match c.op {
                CmpOp::Equal => E::Equal,
                CmpOp::NotEqual => E::NotEqual,
                CmpOp::Less => E::Less,
                CmpOp::Greater => E::Greater,
            };
            let k = c.key.clone();
            match &c.target {
                Target::Value(v) => etcd_client::Compare::value(k, op, v.clone()),
                Target::Version(n) => etcd_client::Compare::version(k, op, *n),
                Target::CreateRevision(n) => etcd_client::Compare::create_revision(k, op, *n),
                Target::ModRevision(n) => etcd_client::Compare::mod_revision(k, op, *n),
            }
        })
        .collect();
    etcd_client::Txn::new()
        .when(cmps)
        .and_then(ops(success))
        .or_else(ops(failure))
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> i64 {
    h.map_or(0, |h| h.revision())
}

fn kvs_of(kvs: &[etcd_client::KeyValue]) -> Vec<Kv> {
    kvs.iter()
        .map(|kv| {
            Kv::new(
                kv.key(),
                kv.value(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
            )
        })
        .collect()
}

impl Output {
    pub fn from_put(r: &etcd_client::PutResponse) -> Output {
        Output::Put {
            revision: header_revision(r.header()),
        }
    }

    pub fn from_get(r: &etcd_client::GetResponse) -> Output {
        Output::Get {
            revision: header_revision(r.header()),
            kvs: kvs_of(r.kvs()),
        }
    }

    pub fn from_delete(r: &etcd_client::DeleteResponse) -> Output {
        Output::Delete {
            revision: header_revision(r.header()),
            deleted: r.deleted(),
        }
    }

    /// Nested txn responses are not modelled; they are mapped to an empty get result, which
    /// the checker rejects.
    pub fn from_txn(r: &etcd_client::TxnResponse) -> Output {
        let results = r
            .op_responses()
            .iter()
            .map(|op| match op {
                etcd_client::TxnOpResponse::Put(_) => TxnResult::Put,
                etcd_client::TxnOpResponse::Get(g) => TxnResult::Get(kvs_of(g.kvs())),
                etcd_client::TxnOpResponse::Delete(d) => TxnResult::Delete(d.deleted()),
                etcd_client::TxnOpResponse::Txn(_) => TxnResult::Get(Vec::new()),
            })
            .collect();
        Output::Txn {
            succeeded: r.succeeded(),
            revision: header_revision(r.header()),
            results,
        }
    }
}

// ------------------------------------------------------------------------------------------
// Checking: public entry points
// ------------------------------------------------------------------------------------------

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
    pub fn is_ok(&self) -> bool {
        matches!(self.verdict, Verdict::Ok)
    }

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
    text: String,
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

// ------------------------------------------------------------------------------------------
// The model of etcd's KV store
// ------------------------------------------------------------------------------------------

/// A sequential etcd KV store over a fixed set of keys (for generating histories in tests).
pub struct Model {
    names: Names,
    state: State,
}

impl Model {
    /// An empty store at revision 1 that can hold `keys` (a prefix selects among these).
    pub fn new<K: Into<Vec<u8>>>(keys: impl IntoIterator<Item = K>) -> Model {
        let names = Names::new(keys.into_iter().map(Into::into));
        let state = State::new(names.keys.len(), 1);
        Model { names, state }
    }

    pub fn revision(&self) -> i64 {
        self.state.rev
    }

    /// Executes `input` and returns etcd's response. Panics on a key not given to `new` or a
    /// nested txn.
    pub fn apply(&mut self, input: &Input) -> Output {
        let c = self
            .names
            .input(input)
            .unwrap_or_else(|e| panic!("Model::apply({input}): {e}"));
        let out = self.state.step(&c, &self.names.values);
        self.state.undo.clear();
        self.names.export(&out)
    }

    pub fn get(&self, key: &[u8]) -> Option<Kv> {
        let id = self.names.key(key)?;
        let v = self.state.kv[id as usize]?;
        Some(self.names.export_kv(&CKv { key: id, val: v }))
    }
}

/// Keys (sorted, so a prefix is an id range) and values (interned) of a history.
struct Names {
    keys: Vec<Vec<u8>>,
    key_ids: HashMap<Vec<u8>, u32>,
    values: Vec<Vec<u8>>,
    value_ids: HashMap<Vec<u8>, u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeySel {
    One(u32),
    /// Key ids `lo..hi`.
    Range(u32, u32),
}

#[derive(Clone, Debug)]
enum CInput {
    Put {
        key: u32,
        value: u32,
    },
    Get(KeySel),
    Delete(KeySel),
    Txn {
        compares: Vec<CCompare>,
        success: Vec<CInput>,
        failure: Vec<CInput>,
    },
}

#[derive(Clone, Copy, Debug)]
struct CCompare {
    key: u32,
    op: CmpOp,
    target: CTarget,
}

#[derive(Clone, Copy, Debug)]
enum CTarget {
    Value(u32),
    Version(i64),
    Create(i64),
    Mod(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Val {
    value: u32,
    create: i64,
    modr: i64,
    version: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CKv {
    key: u32,
    val: Val,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum COutput {
    Put {
        rev: i64,
    },
    Get {
        rev: i64,
        kvs: Vec<CKv>,
    },
    Delete {
        rev: i64,
        deleted: i64,
    },
    Txn {
        succeeded: bool,
        rev: i64,
        results: Vec<CResult>,
    },
    /// Only the branch and revision of a txn are known (inferred from a read, see
    /// `infer_observed_writes`).
    TxnOutcome {
        succeeded: bool,
        rev: i64,
    },
}

impl COutput {
    fn revision(&self) -> i64 {
        match self {
            COutput::Put { rev }
            | COutput::Get { rev, .. }
            | COutput::Delete { rev, .. }
            | COutput::Txn { rev, .. }
            | COutput::TxnOutcome { rev, .. } => *rev,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum CResult {
    Put,
    Get(Vec<CKv>),
    Delete(i64),
}

impl Names {
    fn new(keys: impl Iterator<Item = Vec<u8>>) -> Names {
        let mut keys: Vec<Vec<u8>> = keys.collect();
        keys.sort();
        keys.dedup();
        let key_ids = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i as u32))
            .collect();
        Names {
            keys,
            key_ids,
            values: Vec::new(),
            value_ids: HashMap::new(),
        }
    }

    fn key(&self, k: &[u8]) -> Option<u32> {
        self.key_ids.get(k).copied()
    }

    fn known_key(&self, k: &[u8]) -> Result<u32, String> {
        self.key(k)
            .ok_or_else(|| format!("key {} is not in the model", show(k)))
    }

    fn value(&mut self, v: &[u8]) -> u32 {
        if let Some(&id) = self.value_ids.get(v) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(v.to_vec());
        self.value_ids.insert(v.to_vec(), id);
        id
    }

    fn sel(&self, key: &[u8], prefix: bool) -> Result<KeySel, String> {
        if !prefix {
            return self.known_key(key).map(KeySel::One);
        }
        let lo = self.keys.partition_point(|k| k.as_slice() < key);
        let n = self.keys[lo..]
            .iter()
            .take_while(|k| k.starts_with(key))
            .count();
        Ok(KeySel::Range(lo as u32, (lo + n) as u32))
    }

    fn input(&mut self, i: &Input) -> Result<CInput, String> {
        self.input_at(i, false)
    }

    fn input_at(&mut self, i: &Input, nested: bool) -> Result<CInput, String> {
        Ok(match i {
            Input::Put { key, value } => CInput::Put {
                key: self.known_key(key)?,
                value: self.value(value),
            },
            Input::Get { key, prefix } => CInput::Get(self.sel(key, *prefix)?),
            Input::Delete { key, prefix } => CInput::Delete(self.sel(key, *prefix)?),
            Input::Txn {
                compares,
                success,
                failure,
            } => {
                if nested {
                    return Err("nested txns are not modelled".into());
                }
                let mut cs = Vec::with_capacity(compares.len());
                for c in compares {
                    let target = match &c.target {
                        Target::Value(v) => CTarget::Value(self.value(v)),
                        Target::Version(n) => CTarget::Version(*n),
                        Target::CreateRevision(n) => CTarget::Create(*n),
                        Target::ModRevision(n) => CTarget::Mod(*n),
                    };
                    cs.push(CCompare {
                        key: self.known_key(&c.key)?,
                        op: c.op,
                        target,
                    });
                }
                let mut branch = |ops: &[Input]| -> Result<Vec<CInput>, String> {
                    ops.iter().map(|o| self.input_at(o, true)).collect()
                };
                let success = branch(success)?;
                let failure = branch(failure)?;
                CInput::Txn {
                    compares: cs,
                    success,
                    failure,
                }
            }
        })
    }

    fn kvs(&mut self, kvs: &[Kv]) -> Result<Vec<CKv>, String> {
        kvs.iter()
            .map(|kv| {
                Ok(CKv {
                    key: self.known_key(&kv.key)?,
                    val: Val {
                        value: self.value(&kv.value),
                        create: kv.create_revision,
                        modr: kv.mod_revision,
                        version: kv.version,
                    },
                })
            })
            .collect()
    }

    fn output(&mut self, o: &Output) -> Result<COutput, String> {
        Ok(match o {
            Output::Put { revision } => COutput::Put { rev: *revision },
            Output::Get { revision, kvs } => COutput::Get {
                rev: *revision,
                kvs: self.kvs(kvs)?,
            },
            Output::Delete { revision, deleted } => COutput::Delete {
                rev: *revision,
                deleted: *deleted,
            },
            Output::Txn {
                succeeded,
                revision,
                results,
            } => {
                let mut rs = Vec::with_capacity(results.len());
                for r in results {
                    rs.push(match r {
                        TxnResult::Put => CResult::Put,
                        TxnResult::Get(kvs) => CResult::Get(self.kvs(kvs)?),
                        TxnResult::Delete(n) => CResult::Delete(*n),
                    });
                }
                COutput::Txn {
                    succeeded: *succeeded,
                    rev: *revision,
                    results: rs,
                }
            }
        })
    }

    fn export_kv(&self, kv: &CKv) -> Kv {
        Kv::new(
            self.keys[kv.key as usize].clone(),
            self.values[kv.val.value as usize].clone(),
            kv.val.create,
            kv.val.modr,
            kv.val.version,
        )
    }

    fn export(&self, o: &COutput) -> Output {
        let kvs = |v: &[CKv]| v.iter().map(|kv| self.export_kv(kv)).collect::<Vec<_>>();
        match o {
            COutput::Put { rev } => Output::Put { revision: *rev },
            COutput::Get { rev, kvs: v } => Output::Get {
                revision: *rev,
                kvs: kvs(v),
            },
            COutput::Delete { rev, deleted } => Output::Delete {
                revision: *rev,
                deleted: *deleted,
            },
            COutput::Txn {
                succeeded,
                rev,
                results,
            } => Output::Txn {
                succeeded: *succeeded,
                revision: *rev,
                results: results
                    .iter()
                    .map(|r| match r {
                        CResult::Put => TxnResult::Put,
                        CResult::Get(v) => TxnResult::Get(kvs(v)),
                        CResult::Delete(n) => TxnResult::Delete(*n),
                    })
                    .collect(),
            },
            COutput::TxnOutcome { succeeded, rev } => Output::Txn {
                succeeded: *succeeded,
                revision: *rev,
                results: Vec::new(),
            },
        }
    }
}

/// The store: one slot per key id, the revision, a fingerprint of the slots, and an undo log.
#[derive(Clone)]
struct State {
    kv: Vec<Option<Val>>,
    rev: i64,
    /// Sum of `slot_hash` over the present keys.
    fp: u128,
    undo: Vec<(u32, Option<Val>)>,
}

#[derive(Clone, Copy, Debug)]
struct Mark {
    undo: usize,
    rev: i64,
    fp: u128,
}

impl State {
    fn new(keys: usize, rev: i64) -> State {
        State {
            kv: vec![None; keys],
            rev,
            fp: 0,
            undo: Vec::new(),
        }
    }

    fn set(&mut self, k: u32, new: Option<Val>) {
        let slot = &mut self.kv[k as usize];
        let old = *slot;
        *slot = new;
        if let Some(v) = old {
            self.fp = self.fp.wrapping_sub(slot_hash(k, &v));
        }
        if let Some(v) = new {
            self.fp = self.fp.wrapping_add(slot_hash(k, &v));
        }
        self.undo.push((k, old));
    }

    fn mark(&self) -> Mark {
        Mark {
            undo: self.undo.len(),
            rev: self.rev,
            fp: self.fp,
        }
    }

    fn rollback(&mut self, m: Mark) {
        while self.undo.len() > m.undo {
            let (k, old) = self.undo.pop().expect("undo entry");
            self.kv[k as usize] = old;
        }
        self.rev = m.rev;
        self.fp = m.fp;
    }

    fn ids(sel: KeySel) -> std::ops::Range<u32> {
        match sel {
            KeySel::One(k) => k..k + 1,
            KeySel::Range(lo, hi) => lo..hi,
        }
    }

    fn read(&self, sel: KeySel) -> Vec<CKv> {
        Self::ids(sel)
            .filter_map(|k| self.kv[k as usize].map(|val| CKv { key: k, val }))
            .collect()
    }

    /// Writes `value` at revision `rev` (etcd: a new key gets version 1 and
    /// create_revision = rev; an existing key keeps its create_revision, version + 1).
    fn put(&mut self, key: u32, value: u32, rev: i64) {
        let val = match self.kv[key as usize] {
            Some(old) => Val {
                value,
                create: old.create,
                modr: rev,
                version: old.version + 1,
            },
            None => Val {
                value,
                create: rev,
                modr: rev,
                version: 1,
            },
        };
        self.set(key, Some(val));
    }

    fn delete(&mut self, sel: KeySel) -> i64 {
        let mut n = 0;
        for k in Self::ids(sel) {
            if self.kv[k as usize].is_some() {
                self.set(k, None);
                n += 1;
            }
        }
        n
    }

    /// etcd: comparing the value of a missing key is false whatever the operator; the other
    /// targets of a missing key compare as 0.
    fn holds(&self, c: &CCompare, values: &[Vec<u8>]) -> bool {
        let cur = self.kv[c.key as usize];
        let ord = match (c.target, cur) {
            (CTarget::Value(_), None) => return false,
            (CTarget::Value(v), Some(x)) => values[x.value as usize].cmp(&values[v as usize]),
            (CTarget::Version(n), x) => x.map_or(0, |x| x.version).cmp(&n),
            (CTarget::Create(n), x) => x.map_or(0, |x| x.create).cmp(&n),
            (CTarget::Mod(n), x) => x.map_or(0, |x| x.modr).cmp(&n),
        };
        match c.op {
            CmpOp::Equal => ord.is_eq(),
            CmpOp::NotEqual => ord.is_ne(),
            CmpOp::Less => ord.is_lt(),
            CmpOp::Greater => ord.is_gt(),
        }
    }

    /// Executes one request. The revision moves by one iff something changed (a put always
    /// does; a delete does when it removed a key; a txn when any of its ops did).
    fn step(&mut self, input: &CInput, values: &[Vec<u8>]) -> COutput {
        let next = self.rev + 1;
        match input {
            CInput::Put { key, value } => {
                self.put(*key, *value, next);
                self.rev = next;
                COutput::Put { rev: next }
            }
            CInput::Get(sel) => COutput::Get {
                rev: self.rev,
                kvs: self.read(*sel),
            },
            CInput::Delete(sel) => {
                let deleted = self.delete(*sel);
                if deleted > 0 {
                    self.rev = next;
                }
                COutput::Delete {
                    rev: self.rev,
                    deleted,
                }
            }
            CInput::Txn {
                compares,
                success,
                failure,
            } => {
                let succeeded = compares.iter().all(|c| self.holds(c, values));
                let branch = if succeeded { success } else { failure };
                let mut changed = false;
                let mut results = Vec::with_capacity(branch.len());
                for op in branch {
                    results.push(match op {
                        CInput::Put { key, value } => {
                            self.put(*key, *value, next);
                            changed = true;
                            CResult::Put
                        }
                        // Reads inside a txn see its earlier writes.
                        CInput::Get(sel) => CResult::Get(self.read(*sel)),
                        CInput::Delete(sel) => {
                            let n = self.delete(*sel);
                            changed |= n > 0;
                            CResult::Delete(n)
                        }
                        CInput::Txn { .. } => unreachable!("nested txns are refused by compile"),
                    });
                }
                if changed {
                    self.rev = next;
                }
                COutput::Txn {
                    succeeded,
                    rev: self.rev,
                    results,
                }
            }
        }
    }
}

/// How a client's observation differs from the model's answer.
#[derive(Clone, Copy, Debug)]
enum Reject {
    Revision { model: i64, seen: i64 },
    Kvs,
    Deleted { model: i64, seen: i64 },
    Succeeded { model: bool },
    ResultCount { model: usize, seen: usize },
    Result { index: usize },
    Kind,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::Revision { model, seen } => write!(
                f,
                "header revision differs (model {model}, client saw {seen})"
            ),
            Reject::Kvs => write!(f, "returned key-values differ"),
            Reject::Deleted { model, seen } => {
                write!(
                    f,
                    "deleted count differs (model {model}, client saw {seen})"
                )
            }
            Reject::Succeeded { model } => write!(
                f,
                "txn {} in the model",
                if *model { "succeeds" } else { "fails" }
            ),
            Reject::ResultCount { model, seen } => write!(
                f,
                "txn result count differs (model {model}, client saw {seen})"
            ),
            Reject::Result { index } => write!(f, "txn result #{index} differs"),
            Reject::Kind => write!(f, "response kind does not match the request"),
        }
    }
}

/// Compares the model's answer with what the client saw.
fn diff(model: &COutput, seen: &COutput) -> Result<(), Reject> {
    let revs = |m: i64, s: i64| {
        if m == s {
            Ok(())
        } else {
            Err(Reject::Revision { model: m, seen: s })
        }
    };
    match (model, seen) {
        (COutput::Put { rev: m }, COutput::Put { rev: s }) => revs(*m, *s),
        (COutput::Get { rev: m, kvs: mk }, COutput::Get { rev: s, kvs: sk }) => {
            revs(*m, *s)?;
            if mk != sk {
                return Err(Reject::Kvs);
            }
            Ok(())
        }
        (
            COutput::Delete {
                rev: m,
                deleted: md,
            },
            COutput::Delete {
                rev: s,
                deleted: sd,
            },
        ) => {
            if md != sd {
                return Err(Reject::Deleted {
                    model: *md,
                    seen: *sd,
                });
            }
            revs(*m, *s)
        }
        (
            COutput::Txn {
                succeeded: ms,
                rev: m,
                results: mr,
            },
            COutput::Txn {
                succeeded: ss,
                rev: s,
                results: sr,
            },
        ) => {
            if ms != ss {
                return Err(Reject::Succeeded { model: *ms });
            }
            if mr.len() != sr.len() {
                return Err(Reject::ResultCount {
                    model: mr.len(),
                    seen: sr.len(),
                });
            }
            if let Some(index) = mr.iter().zip(sr).position(|(a, b)| a != b) {
                return Err(Reject::Result { index });
            }
            revs(*m, *s)
        }
        (
            COutput::Txn {
                succeeded: ms,
                rev: m,
                ..
            },
            COutput::TxnOutcome {
                succeeded: ss,
                rev: s,
            },
        ) => {
            if ms != ss {
                return Err(Reject::Succeeded { model: *ms });
            }
            revs(*m, *s)
        }
        _ => Err(Reject::Kind),
    }
}

// ------------------------------------------------------------------------------------------
// Compiling a history
// ------------------------------------------------------------------------------------------

struct COp {
    /// Index in the history given to `check`.
    orig: usize,
    call: u64,
    /// `None` for an ambiguous op.
    ret: Option<u64>,
    input: CInput,
    /// `None` for an ambiguous op.
    output: Option<COutput>,
    /// Random 128-bit tag: a set of ops is fingerprinted by the sum of its tags.
    tag: u128,
    /// An ambiguous put whose output was inferred from a read that saw its value.
    inferred: bool,
}

/// An ambiguous put of a (key, value) pair that no other op writes, seen by a completed op
/// with mod revision `m`, certainly took effect, at revision `m`: it gets that output (and
/// becomes an op the search must place, at exactly that revision). The same holds for a txn
/// with such a put in one branch: it took effect at `m` and ran that branch. Without this
/// every such write would be a free choice of the search at every revision gap.
fn infer_observed_writes(ops: &mut [COp], initial: &State) {
    fn puts(i: &CInput, f: &mut dyn FnMut(u32, u32)) {
        match i {
            CInput::Put { key, value } => f(*key, *value),
            CInput::Get(_) | CInput::Delete(_) => {}
            CInput::Txn {
                success, failure, ..
            } => {
                for op in success.iter().chain(failure) {
                    puts(op, f);
                }
            }
        }
    }
    let mut writers: HashMap<(u32, u32), u32> = HashMap::new();
    for (k, v) in initial.kv.iter().enumerate() {
        if let Some(v) = v {
            *writers.entry((k as u32, v.value)).or_default() += 1;
        }
    }
    for op in ops.iter() {
        puts(&op.input, &mut |k, v| {
            *writers.entry((k, v)).or_default() += 1
        });
    }
    // (key, value) -> the mod revisions it was seen with.
    let mut seen: HashMap<(u32, u32), Vec<i64>> = HashMap::new();
    let mut note = |kvs: &[CKv]| {
        for kv in kvs {
            seen.entry((kv.key, kv.val.value))
                .or_default()
                .push(kv.val.modr);
        }
    };
    for op in ops.iter() {
        match &op.output {
            Some(COutput::Get { kvs, .. }) => note(kvs),
            Some(COutput::Txn { results, .. }) => {
                for r in results {
                    if let CResult::Get(kvs) = r {
                        note(kvs);
                    }
                }
            }
            _ => {}
        }
    }
    // The one revision a unique (key, value) pair was seen with (seen with two different
    // revisions: left to the search to report).
    let seen_at = |k: u32, v: u32| -> Option<i64> {
        if writers.get(&(k, v)) != Some(&1) {
            return None;
        }
        match seen.get(&(k, v)).map(Vec::as_slice) {
            Some(&[rev, ref rest @ ..]) if rest.iter().all(|&r| r == rev) => Some(rev),
            _ => None,
        }
    };
    let first_seen = |branch: &[CInput]| {
        branch.iter().find_map(|op| match op {
            CInput::Put { key, value } => seen_at(*key, *value),
            _ => None,
        })
    };
    for op in ops.iter_mut() {
        if op.output.is_some() {
            continue;
        }
        let output = match &op.input {
            CInput::Put { key, value } => seen_at(*key, *value).map(|rev| COutput::Put { rev }),
            CInput::Txn {
                success, failure, ..
            } => match (first_seen(success), first_seen(failure)) {
                (Some(rev), None) => Some(COutput::TxnOutcome {
                    succeeded: true,
                    rev,
                }),
                (None, Some(rev)) => Some(COutput::TxnOutcome {
                    succeeded: false,
                    rev,
                }),
                _ => None,
            },
            _ => None,
        };
        if output.is_some() {
            op.output = output;
            op.inferred = true;
        }
    }
}

/// What a read saw of a key that was present.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    create: i64,
    modr: i64,
    version: i64,
}

/// What reads saw of one key (when present), in order of their header revision `h`, and
/// the revisions at which ops with a known output put it. Used to reject (`forbids`) placing
/// an ambiguous write at revision `m`: every op that saw the key at `h >= m` comes after it.
#[derive(Default)]
struct KeyReads {
    h: Vec<i64>,
    seen: Vec<Seen>,
    /// The op that saw it.
    by: Vec<u32>,
    /// The least mod / create revision seen from each index on.
    min_mod_from: Vec<i64>,
    min_create_from: Vec<i64>,
    /// Sorted.
    known_puts: Vec<i64>,
}

/// How many reads after a write `forbids` looks at for versions.
const VERSION_READS: usize = 8;

impl KeyReads {
    fn build(ops: &[COp], keys: usize) -> Vec<KeyReads> {
        let mut seen: Vec<Vec<(i64, Seen, u32)>> = vec![Vec::new(); keys];
        let mut known_puts: Vec<Vec<i64>> = vec![Vec::new(); keys];
        let mut note = |h: i64, kvs: &[CKv], by: usize| {
            for kv in kvs {
                let s = Seen {
                    create: kv.val.create,
                    modr: kv.val.modr,
                    version: kv.val.version,
                };
                seen[kv.key as usize].push((h, s, by as u32));
            }
        };
        for (i, op) in ops.iter().enumerate() {
            match (&op.input, &op.output) {
                (CInput::Get(_), Some(COutput::Get { rev, kvs })) => note(*rev, kvs, i),
                (CInput::Put { key, .. }, Some(COutput::Put { rev })) => {
                    known_puts[*key as usize].push(*rev)
                }
                (
                    CInput::Txn {
                        success, failure, ..
                    },
                    Some(COutput::Txn {
                        succeeded,
                        rev,
                        results,
                    }),
                ) => {
                    // Reads inside a txn that wrote saw the state before it, or its own
                    // writes (whose mod revision is the txn's: never below `rev - 1`).
                    let wrote = results
                        .iter()
                        .any(|r| matches!(r, CResult::Put | CResult::Delete(1..)));
                    let h = if wrote { rev - 1 } else { *rev };
                    let branch = if *succeeded { success } else { failure };
                    for (op, r) in branch.iter().zip(results) {
                        match (op, r) {
                            (CInput::Get(_), CResult::Get(kvs)) => note(h, kvs, i),
                            (CInput::Put { key, .. }, CResult::Put) => {
                                known_puts[*key as usize].push(*rev)
                            }
                            _ => {}
                        }
                    }
                }
                (
                    CInput::Txn {
                        success, failure, ..
                    },
                    Some(COutput::TxnOutcome { succeeded, rev }),
                ) => {
                    let branch = if *succeeded { success } else { failure };
                    for op in branch {
                        if let CInput::Put { key, .. } = op {
                            known_puts[*key as usize].push(*rev);
                        }
                    }
                }
                _ => {}
            }
        }
        seen.into_iter()
            .zip(known_puts)
            .map(|(mut v, mut known_puts)| {
                v.sort_unstable();
                known_puts.sort_unstable();
                let mut min_mod_from = vec![i64::MAX; v.len()];
                let mut min_create_from = vec![i64::MAX; v.len()];
                let (mut low_mod, mut low_create) = (i64::MAX, i64::MAX);
                for (i, &(_, s, _)) in v.iter().enumerate().rev() {
                    low_mod = low_mod.min(s.modr);
                    low_create = low_create.min(s.create);
                    min_mod_from[i] = low_mod;
                    min_create_from[i] = low_create;
                }
                KeyReads {
                    h: v.iter().map(|&(h, _, _)| h).collect(),
                    seen: v.iter().map(|&(_, s, _)| s).collect(),
                    by: v.iter().map(|&(_, _, by)| by).collect(),
                    min_mod_from,
                    min_create_from,
                    known_puts,
                }
            })
            .collect()
    }

    /// Known puts at revisions in `lo..=hi`.
    fn known_puts_in(&self, lo: i64, hi: i64) -> usize {
        let a = self.known_puts.partition_point(|&r| r < lo);
        let b = self.known_puts.partition_point(|&r| r <= hi);
        b.saturating_sub(a)
    }

    /// True if the key cannot have gone from `before` to `after` at revision `m`:
    /// * a later read saw a mod revision below `m`;
    /// * the key was absent just before or after `m`, but a later read saw an incarnation
    ///   created before `m`;
    /// * a later read saw the incarnation that holds at `m` with another create revision, or
    ///   a version below `after`'s plus the known puts between `m` and that read.
    fn forbids(&self, m: i64, before: Option<Val>, after: Option<Val>) -> bool {
        let i = self.h.partition_point(|&h| h < m);
        if i == self.h.len() {
            return false;
        }
        if self.min_mod_from[i] < m {
            return true;
        }
        if (before.is_none() || after.is_none()) && self.min_create_from[i] < m {
            return true;
        }
        let Some(now) = after else {
            return false;
        };
        self.seen[i..]
            .iter()
            .take(VERSION_READS)
            .filter(|s| s.create <= m && m <= s.modr)
            .any(|s| {
                s.create != now.create
                    || now.version + self.known_puts_in(m + 1, s.modr) as i64 > s.version
            })
    }
}

struct Compiled {
    names: Names,
    ops: Vec<COp>,
    reads: Vec<KeyReads>,
    initial: State,
    dropped: usize,
}

fn compile(history: &[Op], opts: &Options) -> Result<Compiled, String> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    fn input_keys(i: &Input, keys: &mut Vec<Vec<u8>>) {
        match i {
            Input::Put { key, .. } => keys.push(key.clone()),
            Input::Get { key, prefix } | Input::Delete { key, prefix } => {
                if !prefix {
                    keys.push(key.clone());
                }
            }
            Input::Txn {
                compares,
                success,
                failure,
            } => {
                keys.extend(compares.iter().map(|c| c.key.clone()));
                for op in success.iter().chain(failure) {
                    input_keys(op, keys);
                }
            }
        }
    }
    for op in history {
        input_keys(&op.input, &mut keys);
        match &op.output {
            Some(Output::Get { kvs, .. }) => keys.extend(kvs.iter().map(|kv| kv.key.clone())),
            Some(Output::Txn { results, .. }) => {
                for r in results {
                    if let TxnResult::Get(kvs) = r {
                        keys.extend(kvs.iter().map(|kv| kv.key.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    keys.extend(opts.initial_kvs.iter().map(|kv| kv.key.clone()));
    let mut names = Names::new(keys.into_iter());

    let mut initial = State::new(names.keys.len(), opts.initial_revision);
    for kv in names.kvs(&opts.initial_kvs)? {
        initial.set(kv.key, Some(kv.val));
    }
    initial.undo.clear();

    let mut ops = Vec::with_capacity(history.len());
    let mut dropped = 0;
    for (i, op) in history.iter().enumerate() {
        let what = |e: String| format!("op #{i} ({}): {e}", op.input);
        let input = names.input(&op.input).map_err(what)?;
        let Some(out) = &op.output else {
            if op.input.is_read_only() {
                dropped += 1;
                continue;
            }
            ops.push(COp {
                orig: i,
                call: op.call,
                ret: None,
                input,
                output: None,
                tag: 0,
                inferred: false,
            });
            continue;
        };
        if let Some(ret) = op.ret.filter(|&r| r < op.call) {
            return Err(what(format!(
                "returns ({ret}) before its call ({})",
                op.call
            )));
        }
        let kinds_match = matches!(
            (&op.input, out),
            (Input::Put { .. }, Output::Put { .. })
                | (Input::Get { .. }, Output::Get { .. })
                | (Input::Delete { .. }, Output::Delete { .. })
                | (Input::Txn { .. }, Output::Txn { .. })
        );
        if !kinds_match {
            return Err(what(format!("output {out} does not answer this request")));
        }
        let output = names.output(out).map_err(what)?;
        ops.push(COp {
            orig: i,
            call: op.call,
            ret: op.ret,
            input,
            output: Some(output),
            tag: 0,
            inferred: false,
        });
    }
    infer_observed_writes(&mut ops, &initial);
    for (i, op) in ops.iter_mut().enumerate() {
        let i = i as u64;
        op.tag = (u128::from(mix(i ^ 0x5851_f42d_4c95_7f2d)) << 64)
            | u128::from(mix(i.rotate_left(32) ^ 0x1405_7b7e_f767_814f));
    }
    let reads = KeyReads::build(&ops, names.keys.len());
    Ok(Compiled {
        names,
        ops,
        reads,
        initial,
        dropped,
    })
}

// ------------------------------------------------------------------------------------------
// The search
// ------------------------------------------------------------------------------------------

/// splitmix64's finalizer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn slot_hash(k: u32, v: &Val) -> u128 {
    let fields = [
        u64::from(v.value),
        v.create as u64,
        v.modr as u64,
        v.version as u64,
    ];
    let mut a = mix(u64::from(k) ^ 0x2545_f491_4f6c_dd1d);
    let mut b = mix(u64::from(k).rotate_left(29) ^ 0x9fb2_1c65_1e98_df25);
    for x in fields {
        a = mix(a ^ x);
        b = mix(b.wrapping_add(x.rotate_left(17)) ^ 0x3c6e_f372_fe94_f82b);
    }
    (u128::from(a) << 64) | u128::from(b)
}

/// The cache keys are fingerprints already: fold them instead of hashing again.
#[derive(Default)]
struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = mix(self.0 ^ u64::from(*b));
        }
    }

    fn write_u128(&mut self, x: u128) {
        self.0 = self.0.rotate_left(23) ^ (x as u64) ^ ((x >> 64) as u64).rotate_left(7);
    }

    fn write_i64(&mut self, x: i64) {
        self.0 ^= mix(x as u64);
    }
}

/// (fingerprint of the linearized set, fingerprint of the slots, revision).
type NodeKey = (u128, u128, i64);

struct Frame {
    op: u32,
    /// The state before the op.
    mark: Mark,
    /// Taken because nothing else could come first: on backtrack the node fails as a whole.
    forced: bool,
}

enum Forced {
    Took,
    /// The forced move leads to a node already explored: this node fails too.
    Fails,
    Nothing,
}

const NIL: u32 = u32::MAX;

/// A doubly linked list over op indices with two sentinels; unlinking and relinking in LIFO
/// order restores it exactly (dancing links).
struct Links {
    next: Vec<u32>,
    prev: Vec<u32>,
    head: u32,
    tail: u32,
}

impl Links {
    /// A list of `order`, whose entries are below `size`.
    fn new(size: u32, order: impl Iterator<Item = u32>) -> Links {
        let (head, tail) = (size, size + 1);
        let mut next = vec![NIL; size as usize + 2];
        let mut prev = vec![NIL; size as usize + 2];
        let mut last = head;
        for e in order {
            next[last as usize] = e;
            prev[e as usize] = last;
            last = e;
        }
        next[last as usize] = tail;
        prev[tail as usize] = last;
        Links {
            next,
            prev,
            head,
            tail,
        }
    }

    fn unlink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = n;
        self.prev[n as usize] = p;
    }

    fn relink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = e;
        self.prev[n as usize] = e;
    }
}

struct Search<'a> {
    ops: &'a [COp],
    values: &'a [Vec<u8>],
    reads: &'a [KeyReads],
    n: u32,
    /// Call and return entries of the ops with a known output, by time: the call entry of op
    /// `i` is `i`, its return entry `n + i`. Linearized ops are unlinked (relinked on
    /// backtrack).
    entries: Links,
    /// The ambiguous ops not placed, by call time.
    ambiguous: Links,
    state: State,
    frames: Vec<Frame>,
    set_fp: u128,
    /// Ops with a known output (which must all be placed) not linearized yet.
    remaining: usize,
    /// Their (output revision, op): the store revision never exceeds the least of them, as
    /// it never goes down.
    unplaced: BTreeSet<(i64, u32)>,
    cache: HashSet<NodeKey, BuildHasherDefault<FoldHasher>>,
    /// The deepest path found (by known ops linearized), as op indices.
    best: Vec<u32>,
    best_remaining: usize,
    /// `frames[..shared]` equals `best[..shared]`.
    shared: usize,
    steps: u64,
}

impl<'a> Search<'a> {
    fn new(c: &'a Compiled) -> Search<'a> {
        let n = c.ops.len() as u32;
        // (time, returns after calls at equal times, entry)
        let mut events: Vec<(u64, u8, u32)> = Vec::with_capacity(2 * n as usize);
        let mut ambiguous: Vec<(u64, u32)> = Vec::new();
        for (i, op) in c.ops.iter().enumerate() {
            let i = i as u32;
            if op.output.is_none() {
                ambiguous.push((op.call, i));
                continue;
            }
            events.push((op.call, 0, i));
            if let Some(r) = op.ret {
                events.push((r, 1, n + i));
            }
        }
        events.sort_unstable();
        ambiguous.sort_unstable();
        let remaining = c.ops.iter().filter(|o| o.output.is_some()).count();
        let unplaced = (0..n)
            .filter_map(|i| Some((c.ops[i as usize].output.as_ref()?.revision(), i)))
            .collect();
        Search {
            ops: &c.ops,
            values: &c.names.values,
            reads: &c.reads,
            n,
            entries: Links::new(2 * n, events.iter().map(|&(_, _, e)| e)),
            ambiguous: Links::new(n, ambiguous.iter().map(|&(_, i)| i)),
            state: c.initial.clone(),
            frames: Vec::new(),
            set_fp: 0,
            remaining,
            unplaced,
            cache: HashSet::default(),
            best: Vec::new(),
            best_remaining: remaining,
            shared: 0,
            steps: 0,
        }
    }

    fn is_call(&self, e: u32) -> bool {
        e < self.n
    }

    /// Runs the op against the model state; on acceptance returns the state before it and
    /// whether the revision stayed (nothing changed). On rejection the state is unchanged.
    fn try_op(&mut self, i: u32) -> Option<(Mark, bool)> {
        let op = &self.ops[i as usize];
        let m = self.state.mark();
        let out = self.state.step(&op.input, self.values);
        if let Some(seen) = &op.output {
            if diff(&out, seen).is_err() {
                self.state.rollback(m);
                return None;
            }
        }
        Some((m, self.state.rev == m.rev))
    }

    /// Linearizes op `i` (already applied to the state) unless the node it leads to was seen.
    fn enter(&mut self, i: u32, mark: Mark, forced: bool) -> bool {
        let op = &self.ops[i as usize];
        let set_fp = self.set_fp.wrapping_add(op.tag);
        // Past the revision of an op still to place: a dead end. (The op itself, if it has
        // an output, is at most at the revision it reports.)
        let beyond = self
            .unplaced
            .first()
            .is_some_and(|&(rev, _)| self.state.rev > rev);
        if beyond || !self.cache.insert((set_fp, self.state.fp, self.state.rev)) {
            self.state.rollback(mark);
            return false;
        }
        self.set_fp = set_fp;
        if let Some(out) = &op.output {
            self.entries.unlink(i);
            if op.ret.is_some() {
                self.entries.unlink(self.n + i);
            }
            self.remaining -= 1;
            self.unplaced.remove(&(out.revision(), i));
        } else {
            self.ambiguous.unlink(i);
        }
        self.frames.push(Frame {
            op: i,
            mark,
            forced,
        });
        if self.remaining < self.best_remaining {
            self.best_remaining = self.remaining;
            self.best.truncate(self.shared);
            self.best
                .extend(self.frames[self.shared..].iter().map(|f| f.op));
            self.shared = self.frames.len();
        }
        true
    }

    /// Undoes the last `enter`.
    fn pop(&mut self) -> Option<Frame> {
        let f = self.frames.pop()?;
        let op = &self.ops[f.op as usize];
        if let Some(out) = &op.output {
            if op.ret.is_some() {
                self.entries.relink(self.n + f.op);
            }
            self.entries.relink(f.op);
            self.remaining += 1;
            self.unplaced.insert((out.revision(), f.op));
        } else {
            self.ambiguous.relink(f.op);
        }
        self.set_fp = self.set_fp.wrapping_sub(op.tag);
        self.state.rollback(f.mark);
        self.shared = self.shared.min(self.frames.len());
        Some(f)
    }

    /// The candidates with a known output are the calls before the first return entry. One
    /// the model accepts without a state change comes first; else one that the model
    /// accepts.
    fn forced(&mut self) -> Forced {
        let mut bump = None;
        let mut e = self.entries.next[self.entries.head as usize];
        while e != self.entries.tail && self.is_call(e) {
            if let Some((m, unchanged)) = self.try_op(e) {
                if unchanged {
                    return if self.enter(e, m, true) {
                        Forced::Took
                    } else {
                        Forced::Fails
                    };
                }
                self.state.rollback(m);
                bump.get_or_insert(e);
            }
            e = self.entries.next[e as usize];
        }
        match bump {
            Some(b) => {
                let (m, _) = self.try_op(b).expect("accepted a moment ago");
                if self.enter(b, m, true) {
                    Forced::Took
                } else {
                    Forced::Fails
                }
            }
            None => Forced::Nothing,
        }
    }

    /// The latest ambiguous candidate: ambiguous ops called no later than the first return
    /// entry still pending can come next.
    fn last_ambiguous_candidate(&self) -> u32 {
        let mut e = self.entries.next[self.entries.head as usize];
        while e != self.entries.tail && self.is_call(e) {
            e = self.entries.next[e as usize];
        }
        let horizon = if e == self.entries.tail {
            u64::MAX
        } else {
            self.ops[(e - self.n) as usize].ret.unwrap_or(u64::MAX)
        };
        let mut a = self.ambiguous.prev[self.ambiguous.tail as usize];
        while a != self.ambiguous.head && self.ops[a as usize].call > horizon {
            a = self.ambiguous.prev[a as usize];
        }
        a
    }

    /// True if later reads rule out what the op just applied (since `m`) did to a key.
    fn contradicted(&self, m: &Mark) -> bool {
        let rev = self.state.rev;
        self.state.undo[m.undo..].iter().any(|&(k, before)| {
            let after = self.state.kv[k as usize];
            self.reads[k as usize].forbids(rev, before, after)
        })
    }

    /// Tries the ambiguous candidates from `from` back to the first one (latest call first:
    /// an op lost long ago is less likely to fill a gap now than one just made). An op that
    /// would change nothing is skipped (the same as never happening), and so is one whose
    /// write later reads rule out.
    fn branch(&mut self, from: u32) -> bool {
        let mut a = from;
        while a != self.ambiguous.head {
            if let Some((m, unchanged)) = self.try_op(a) {
                if unchanged || self.contradicted(&m) {
                    self.state.rollback(m);
                } else if self.enter(a, m, false) {
                    return true;
                }
            }
            a = self.ambiguous.prev[a as usize];
        }
        false
    }

    /// `Ok(true)`: linearizable; `Ok(false)`: not; `Err`: a limit was hit.
    fn run(&mut self, deadline: Option<Instant>, max_states: usize) -> Result<bool, String> {
        let mut resume: Option<u32> = None;
        loop {
            if self.remaining == 0 {
                return Ok(true);
            }
            self.steps += 1;
            if self.steps % 1024 == 0 {
                if deadline.is_some_and(|d| Instant::now() > d) {
                    return Err(format!(
                        "time limit after {} steps, best prefix {} ops",
                        self.steps,
                        self.best.len()
                    ));
                }
                if self.cache.len() > max_states {
                    return Err(format!("state limit ({max_states}) reached"));
                }
            }
            let moved = match resume.take() {
                Some(from) => self.branch(from),
                None => match self.forced() {
                    Forced::Took => true,
                    Forced::Fails => false,
                    Forced::Nothing => self.branch(self.last_ambiguous_candidate()),
                },
            };
            if moved {
                continue;
            }
            loop {
                let Some(f) = self.pop() else {
                    return Ok(false);
                };
                if !f.forced {
                    resume = Some(self.ambiguous.prev[f.op as usize]);
                    break;
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Explaining a violation
// ------------------------------------------------------------------------------------------

/// How many ops of the prefix the explanation shows.
const SHOWN_PREFIX: usize = 12;

fn explain(history: &[Op], c: &Compiled, best: &[u32]) -> Violation {
    use std::fmt::Write as _;
    let mut state = c.initial.clone();
    let mut revs = Vec::with_capacity(best.len());
    let mut placed = vec![false; c.ops.len()];
    for &i in best {
        state.step(&c.ops[i as usize].input, &c.names.values);
        revs.push(state.rev);
        placed[i as usize] = true;
    }
    let pending: Vec<usize> = (0..c.ops.len())
        .filter(|&i| !placed[i] && c.ops[i].output.is_some())
        .collect();
    // The pending op that returned first: nothing called after it can come next.
    let first_return = pending
        .iter()
        .copied()
        .filter(|&i| c.ops[i].ret.is_some())
        .min_by_key(|&i| c.ops[i].ret);
    let horizon = first_return.and_then(|i| c.ops[i].ret).unwrap_or(u64::MAX);
    // The least revision a pending op reports: the store may not move past it.
    let ceiling = pending
        .iter()
        .filter_map(|&i| Some(c.ops[i].output.as_ref()?.revision()))
        .min()
        .unwrap_or(i64::MAX);
    let stuck: Vec<usize> = pending
        .iter()
        .copied()
        .filter(|&i| {
            c.ops[i].call <= horizon
                || c.ops[i].output.as_ref().map(COutput::revision) == Some(ceiling)
        })
        .collect();
    let known = c.ops.iter().filter(|o| o.output.is_some()).count();
    let placed_known = known - pending.len();
    let ambiguous_open = (0..c.ops.len())
        .filter(|&i| !placed[i] && c.ops[i].output.is_none())
        .count();

    let mut t = String::new();
    let _ = writeln!(
        t,
        "at most {placed_known} of the {known} ops with a known outcome can be put in an order \
         consistent with real time and the model ({ambiguous_open} ambiguous writes left unplaced)"
    );
    let skip = best.len().saturating_sub(SHOWN_PREFIX);
    let _ = writeln!(
        t,
        "end of the longest linearizable prefix ({} ops{}), with the model revision after each:",
        best.len(),
        if skip > 0 {
            format!(", first {skip} not shown")
        } else {
            String::new()
        }
    );
    for (k, &i) in best.iter().enumerate().skip(skip) {
        let op = &c.ops[i as usize];
        let _ = writeln!(t, "  {}  => rev {}", op_line(history, op), revs[k]);
    }
    if best.is_empty() {
        let _ = writeln!(t, "  (nothing)");
    }
    let _ = writeln!(
        t,
        "none of the ops that could come next fits (model revision {}):",
        state.rev
    );
    let mut keys: Vec<u32> = Vec::new();
    for &i in &stuck {
        let op = &c.ops[i];
        let m = state.mark();
        let out = state.step(&op.input, &c.names.values);
        let why = match (op.call > horizon, op.output.as_ref().map(|seen| diff(&out, seen))) {
            (true, _) => format!(
                "must come after #{}, which returned before it was called",
                first_return.map_or(0, |f| c.ops[f].orig)
            ),
            (false, Some(Err(r))) => r.to_string(),
            _ if state.rev > ceiling => format!(
                "accepted here, but it moves the revision past {ceiling}, which a pending op reports"
            ),
            _ => "accepted here, but nothing can follow it".to_string(),
        };
        state.rollback(m);
        let _ = writeln!(t, "  {}", op_line(history, op));
        let _ = writeln!(
            t,
            "      model would answer: {}\n      {why}",
            c.names.export(&out)
        );
        collect_keys(&op.input, &mut keys);
    }
    keys.sort_unstable();
    keys.dedup();
    if !keys.is_empty() {
        let _ = write!(t, "model state of those keys:");
        for k in keys {
            match state.kv[k as usize] {
                Some(val) => {
                    let _ = write!(t, " {}", c.names.export_kv(&CKv { key: k, val }));
                }
                None => {
                    let _ = write!(t, " {}=<absent>", show(&c.names.keys[k as usize]));
                }
            }
        }
        let _ = writeln!(t);
    }
    Violation {
        prefix: best.iter().map(|&i| c.ops[i as usize].orig).collect(),
        stuck: stuck.iter().map(|&i| c.ops[i].orig).collect(),
        text: t,
    }
}

fn op_line(history: &[Op], op: &COp) -> String {
    let mut s = format!("#{} {}", op.orig, history[op.orig]);
    if let (true, Some(COutput::Put { rev })) = (op.inferred, &op.output) {
        s.push_str(&format!(
            " (a read saw its value: took effect at rev {rev})"
        ));
    }
    s
}

/// Violations visible without a search (and which a search could take very long to prove
/// when many writes are ambiguous): a read that saw a value no op wrote, and a read that saw
/// a key with a mod revision below that of a write with a known revision at or before the
/// read's (a stale read).
fn static_violation(history: &[Op], c: &Compiled) -> Option<Violation> {
    let mut written: HashSet<(u32, u32)> = HashSet::new();
    for (k, v) in c.initial.kv.iter().enumerate() {
        if let Some(v) = v {
            written.insert((k as u32, v.value));
        }
    }
    fn puts(i: &CInput, f: &mut dyn FnMut(u32, u32)) {
        match i {
            CInput::Put { key, value } => f(*key, *value),
            CInput::Get(_) | CInput::Delete(_) => {}
            CInput::Txn {
                success, failure, ..
            } => {
                for op in success.iter().chain(failure) {
                    puts(op, f);
                }
            }
        }
    }
    for op in &c.ops {
        puts(&op.input, &mut |k, v| {
            written.insert((k, v));
        });
    }
    let line = |i: usize| op_line(history, &c.ops[i]);
    let key = |k: u32| show(&c.names.keys[k as usize]);
    for (k, reads) in c.reads.iter().enumerate() {
        for (j, s) in reads.seen.iter().enumerate() {
            let by = reads.by[j] as usize;
            let value = match &c.ops[by].output {
                Some(COutput::Get { kvs, .. }) => kvs.iter().find(|kv| kv.key == k as u32),
                Some(COutput::Txn { results, .. }) => results
                    .iter()
                    .filter_map(|r| match r {
                        CResult::Get(kvs) => kvs.iter().find(|kv| kv.key == k as u32),
                        _ => None,
                    })
                    .find(|kv| kv.val.modr == s.modr),
                _ => None,
            };
            if let Some(kv) = value {
                if !written.contains(&(k as u32, kv.val.value)) {
                    return Some(Violation {
                        prefix: Vec::new(),
                        stuck: vec![c.ops[by].orig],
                        text: format!(
                            "a read saw a value of {} that no op wrote:\n  {}\n",
                            key(k as u32),
                            line(by)
                        ),
                    });
                }
            }
        }
    }
    for (w, op) in c.ops.iter().enumerate() {
        // (key, revision, true for a put / false for a delete that removed it)
        let mut writes: Vec<(u32, i64, bool)> = Vec::new();
        match (&op.input, &op.output) {
            (CInput::Put { key, .. }, Some(COutput::Put { rev })) => {
                writes.push((*key, *rev, true))
            }
            (CInput::Delete(KeySel::One(k)), Some(COutput::Delete { rev, deleted }))
                if *deleted > 0 =>
            {
                writes.push((*k, *rev, false))
            }
            (
                CInput::Txn {
                    success, failure, ..
                },
                Some(COutput::Txn {
                    succeeded,
                    rev,
                    results,
                }),
            ) => {
                let branch = if *succeeded { success } else { failure };
                for (b, r) in branch.iter().zip(results) {
                    match (b, r) {
                        (CInput::Put { key, .. }, _) => writes.push((*key, *rev, true)),
                        (CInput::Delete(KeySel::One(k)), CResult::Delete(1..)) => {
                            writes.push((*k, *rev, false))
                        }
                        _ => {}
                    }
                }
            }
            (
                CInput::Txn {
                    success, failure, ..
                },
                Some(COutput::TxnOutcome { succeeded, rev }),
            ) => {
                let branch = if *succeeded { success } else { failure };
                for b in branch {
                    if let CInput::Put { key, .. } = b {
                        writes.push((*key, *rev, true));
                    }
                }
            }
            _ => {}
        }
        for (k, rev, put) in writes {
            // After a put at `rev` the key's mod revision is at least `rev`; after a delete
            // any incarnation is created after `rev`.
            let reads = &c.reads[k as usize];
            let from = reads.h.partition_point(|&h| h < rev);
            let stale = |s: &Seen| if put { s.modr < rev } else { s.create < rev };
            let Some(j) = (from..reads.h.len()).find(|&j| stale(&reads.seen[j])) else {
                continue;
            };
            let r = reads.by[j] as usize;
            if r == w {
                continue;
            }
            let what = if put { "a write" } else { "a delete" };
            return Some(Violation {
                prefix: Vec::new(),
                stuck: vec![c.ops[r].orig, op.orig],
                text: format!(
                    "a read at revision {} saw {} (created at revision {}, last written at \
                     revision {}), but {what} of it took effect at revision {rev}:\n  {}\n  {}\n",
                    reads.h[j],
                    key(k),
                    reads.seen[j].create,
                    reads.seen[j].modr,
                    line(r),
                    line(w)
                ),
            });
        }
    }
    None
}

fn collect_keys(i: &CInput, keys: &mut Vec<u32>) {
    match i {
        CInput::Put { key, .. } => keys.push(*key),
        CInput::Get(sel) | CInput::Delete(sel) => keys.extend(State::ids(*sel)),
        CInput::Txn {
            compares,
            success,
            failure,
        } => {
            keys.extend(compares.iter().map(|c| c.key));
            for op in success.iter().chain(failure) {
                collect_keys(op, keys);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Printing
// ------------------------------------------------------------------------------------------

fn show(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if s.chars().all(|c| !c.is_control()) && !s.is_empty() => s.to_string(),
        _ => format!("{:?}", String::from_utf8_lossy(b)),
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ret = self.ret.map_or("?".to_string(), |r| r.to_string());
        write!(
            f,
            "client {} [{}..{}] {}",
            self.client, self.call, ret, self.input
        )?;
        match &self.output {
            Some(o) => write!(f, " -> {o}"),
            None => write!(f, " -> (unknown)"),
        }
    }
}

fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    f.write_str("[")?;
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{x}")?;
    }
    f.write_str("]")
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Put { key, value } => write!(f, "put {}={}", show(key), show(value)),
            Input::Get { key, prefix } => {
                if *prefix {
                    write!(f, "get prefix {}", show(key))
                } else {
                    write!(f, "get {}", show(key))
                }
            }
            Input::Delete { key, prefix } => {
                if *prefix {
                    write!(f, "delete prefix {}", show(key))
                } else {
                    write!(f, "delete {}", show(key))
                }
            }
            Input::Txn {
                compares,
                success,
                failure,
            } => {
                f.write_str("txn if ")?;
                write_list(f, compares)?;
                f.write_str(" then ")?;
                write_list(f, success)?;
                f.write_str(" else ")?;
                write_list(f, failure)
            }
        }
    }
}

impl fmt::Display for Compare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            CmpOp::Equal => "=",
            CmpOp::NotEqual => "!=",
            CmpOp::Less => "<",
            CmpOp::Greater => ">",
        };
        let k = show(&self.key);
        match &self.target {
            Target::Value(v) => write!(f, "value({k}) {op} {}", show(v)),
            Target::Version(n) => write!(f, "version({k}) {op} {n}"),
            Target::CreateRevision(n) => write!(f, "create({k}) {op} {n}"),
            Target::ModRevision(n) => write!(f, "mod({k}) {op} {n}"),
        }
    }
}

impl fmt::Display for Kv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={} (c{} m{} v{})",
            show(&self.key),
            show(&self.value),
            self.create_revision,
            self.mod_revision,
            self.version
        )
    }
}

impl fmt::Display for TxnResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnResult::Put => f.write_str("put ok"),
            TxnResult::Get(kvs) => write_list(f, kvs),
            TxnResult::Delete(n) => write!(f, "deleted {n}"),
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Put { revision } => write!(f, "rev {revision}"),
            Output::Get { revision, kvs } => {
                write!(f, "rev {revision} ")?;
                write_list(f, kvs)
            }
            Output::Delete { revision, deleted } => {
                write!(f, "rev {revision} deleted {deleted}")
            }
            Output::Txn {
                succeeded,
                revision,
                results,
            } => {
                write!(
                    f,
                    "rev {revision} {} ",
                    if *succeeded { "succeeded" } else { "failed" }
                )?;
                write_list(f, results)
            }
        }
    }
}
