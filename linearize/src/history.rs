//! Histories: the requests clients sent ([`Input`]), the responses they saw ([`Output`]),
//! and the calls that pair them with times ([`Op`]); how they print.

use std::collections::HashMap;
use std::fmt;

use crate::txn::TxnTree;

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
    /// Put `value` at `key`.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Input {
        Input::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// Linearizable get of one key.
    pub fn get(key: impl Into<Vec<u8>>) -> Input {
        Input::Get {
            key: key.into(),
            prefix: false,
        }
    }

    /// Linearizable get of every key starting with `prefix` (all keys when empty).
    pub fn get_prefix(prefix: impl Into<Vec<u8>>) -> Input {
        Input::Get {
            key: prefix.into(),
            prefix: true,
        }
    }

    /// Delete of one key.
    pub fn delete(key: impl Into<Vec<u8>>) -> Input {
        Input::Delete {
            key: key.into(),
            prefix: false,
        }
    }

    /// Delete of every key starting with `prefix` (all keys when empty).
    pub fn delete_prefix(prefix: impl Into<Vec<u8>>) -> Input {
        Input::Delete {
            key: prefix.into(),
            prefix: true,
        }
    }

    /// `if compares then success else failure`.
    pub fn txn(compares: Vec<Compare>, success: Vec<Input>, failure: Vec<Input>) -> Input {
        Input::Txn {
            compares,
            success,
            failure,
        }
    }

    /// True when the request can never change the store (a get, or a txn of gets only).
    pub fn is_read_only(&self) -> bool {
        let mut writes = false;
        self.walk(&mut |op| writes |= matches!(op, Input::Put { .. } | Input::Delete { .. }));
        !writes
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
    /// Compares the value of `key` with `value`.
    pub fn value(key: impl Into<Vec<u8>>, op: CmpOp, value: impl Into<Vec<u8>>) -> Compare {
        Compare {
            key: key.into(),
            op,
            target: Target::Value(value.into()),
        }
    }

    /// Compares the version of `key` (0 when absent) with `version`.
    pub fn version(key: impl Into<Vec<u8>>, op: CmpOp, version: i64) -> Compare {
        Compare {
            key: key.into(),
            op,
            target: Target::Version(version),
        }
    }

    /// Compares the create revision of `key` (0 when absent) with `revision`.
    pub fn create_revision(key: impl Into<Vec<u8>>, op: CmpOp, revision: i64) -> Compare {
        Compare {
            key: key.into(),
            op,
            target: Target::CreateRevision(revision),
        }
    }

    /// Compares the mod revision of `key` (0 when absent) with `revision`.
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
    /// A key-value pair with its revisions and version.
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
    /// The response header's revision.
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
    /// When the call was made (any monotonic unit: [`Recorder`](crate::Recorder) uses nanoseconds).
    pub call: u64,
    /// When the response arrived; `None`: no response.
    pub ret: Option<u64>,
    pub input: Input,
    /// `None`: the outcome is unknown.
    pub output: Option<Output>,
}

impl Op {
    /// A completed call: called at `call`, answered `output` at `ret`.
    pub fn ok(client: usize, call: u64, ret: u64, input: Input, output: Output) -> Op {
        Op {
            client,
            call,
            ret: Some(ret),
            input,
            output: Some(output),
        }
    }

    /// A call whose outcome is unknown.
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

    /// The outcome is unknown.
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
        op.input.walk(&mut |i| {
            if let Input::Put { key, value } = i {
                *writers.entry((key, value)).or_default() += 1;
            }
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

impl TxnTree for Input {
    fn branches(&self) -> Option<(&[Input], &[Input])> {
        match self {
            Input::Txn {
                success, failure, ..
            } => Some((success, failure)),
            Input::Put { .. } | Input::Get { .. } | Input::Delete { .. } => None,
        }
    }
}

// ------------------------------------------------------------------------------------------
// Printing
// ------------------------------------------------------------------------------------------

/// A key or value for people: as text when it is printable UTF-8, else quoted.
pub(crate) fn show(b: &[u8]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_puts_settles_only_puts_no_other_op_writes() {
        let history = vec![
            Op::ambiguous(0, 0, Input::put("a", "1")),
            Op::ambiguous(1, 1, Input::put("b", "2")),
            Op::ambiguous(2, 2, Input::put("c", "3")),
            Op::ambiguous(3, 3, Input::put("c", "3")),
            Op::ok(4, 4, 5, Input::put("d", "4"), Output::Put { revision: 9 }),
        ];
        let written = [Kv::new("a", "1", 5, 5, 1), Kv::new("c", "3", 6, 6, 1)];
        let r = resolve_puts(history.clone(), &written, false);
        assert_eq!(r.len(), 5);
        assert_eq!(
            r[0],
            Op::resolved(0, 0, Input::put("a", "1"), Output::Put { revision: 5 })
        );
        // Not seen, but the list may be incomplete: still ambiguous.
        assert_eq!(r[1], history[1]);
        // Written by two ops: which one took effect is unknown.
        assert_eq!(r[2..4], history[2..4]);
        assert_eq!(r[4], history[4]);
        // With the complete list, a put not in it never took effect.
        let r = resolve_puts(history.clone(), &written, true);
        assert_eq!(r.len(), 4);
        assert!(r.iter().all(|o| o.input != Input::put("b", "2")));
    }

    #[test]
    fn read_only_means_no_write_anywhere_in_the_txn() {
        assert!(Input::get("a").is_read_only());
        assert!(!Input::delete_prefix("a").is_read_only());
        let reads = Input::txn(vec![], vec![Input::get("a")], vec![Input::get_prefix("")]);
        assert!(reads.is_read_only());
        assert!(Input::txn(vec![], vec![], vec![]).is_read_only());
        let nested_write = Input::txn(
            vec![],
            vec![Input::get("a")],
            vec![Input::txn(vec![], vec![Input::put("b", "1")], vec![])],
        );
        assert!(!nested_write.is_read_only());
    }

    #[test]
    fn ops_print_for_people() {
        let op = Op::ok(
            3,
            10,
            12,
            Input::txn(
                vec![
                    Compare::mod_revision("a", CmpOp::Equal, 4),
                    Compare::value("b", CmpOp::NotEqual, vec![0u8, 1]),
                ],
                vec![Input::put("a", "x")],
                vec![Input::get_prefix("a")],
            ),
            Output::Txn {
                succeeded: false,
                revision: 7,
                results: vec![TxnResult::Get(vec![Kv::new("a", "1", 2, 4, 3)])],
            },
        );
        assert_eq!(
            op.to_string(),
            "client 3 [10..12] txn if [mod(a) = 4, value(b) != \"\\0\\u{1}\"] then [put a=x] \
             else [get prefix a] -> rev 7 failed [[a=1 (c2 m4 v3)]]"
        );
        assert_eq!(
            Op::ambiguous(1, 5, Input::delete("k")).to_string(),
            "client 1 [5..?] delete k -> (unknown)"
        );
    }
}
