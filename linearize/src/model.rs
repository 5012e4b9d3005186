//! The model of etcd's KV store: the public [`Model`] (a sequential store for generating
//! histories) and the compact form the checker runs on, with interned keys and values
//! ([`Names`]), compiled requests and responses, the store [`State`] with its undo log and
//! fingerprint, and [`diff`], which compares the model's answer with what a client saw.

use std::collections::HashMap;
use std::fmt;

use crate::history::{show, CmpOp, Input, Kv, Output, Target, TxnResult};
use crate::txn::TxnTree;

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

    /// The store revision.
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

    /// The current key-value of `key`, if present.
    pub fn get(&self, key: &[u8]) -> Option<Kv> {
        let id = self.names.key(key)?;
        let v = self.state.kv[id as usize]?;
        Some(self.names.export_kv(&CKv { key: id, val: v }))
    }
}

/// Keys (sorted, so a prefix is an id range) and values (interned) of a history.
pub(crate) struct Names {
    pub(crate) keys: Vec<Vec<u8>>,
    pub(crate) key_ids: HashMap<Vec<u8>, u32>,
    pub(crate) values: Vec<Vec<u8>>,
    pub(crate) value_ids: HashMap<Vec<u8>, u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeySel {
    One(u32),
    /// Key ids `lo..hi`.
    Range(u32, u32),
}

#[derive(Clone, Debug)]
pub(crate) enum CInput {
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
pub(crate) struct CCompare {
    pub(crate) key: u32,
    pub(crate) op: CmpOp,
    pub(crate) target: CTarget,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum CTarget {
    Value(u32),
    Version(i64),
    Create(i64),
    Mod(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Val {
    pub(crate) value: u32,
    pub(crate) create: i64,
    pub(crate) modr: i64,
    pub(crate) version: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CKv {
    pub(crate) key: u32,
    pub(crate) val: Val,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum COutput {
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
    pub(crate) fn revision(&self) -> i64 {
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
pub(crate) enum CResult {
    Put,
    Get(Vec<CKv>),
    Delete(i64),
}

impl TxnTree for CInput {
    fn branches(&self) -> Option<(&[CInput], &[CInput])> {
        match self {
            CInput::Txn {
                success, failure, ..
            } => Some((success, failure)),
            CInput::Put { .. } | CInput::Get(_) | CInput::Delete(_) => None,
        }
    }
}

/// Calls `f` with the (key, value) ids of every put of `input`, inside txns too.
pub(crate) fn for_each_put(input: &CInput, f: &mut dyn FnMut(u32, u32)) {
    input.walk(&mut |op| {
        if let CInput::Put { key, value } = op {
            f(*key, *value);
        }
    });
}

/// The ops of the branch a txn with a known outcome ran, each with its result when the
/// response carried results (`None` when only the branch is known, see
/// [`COutput::TxnOutcome`]); `None` for another request or output. Ops and results pair up
/// in order, as far as both go.
pub(crate) fn ran_ops<'a>(
    input: &'a CInput,
    output: &'a COutput,
) -> Option<impl Iterator<Item = (&'a CInput, Option<&'a CResult>)>> {
    let (succeeded, results) = match (input, output) {
        (
            CInput::Txn { .. },
            COutput::Txn {
                succeeded, results, ..
            },
        ) => (*succeeded, Some(results.as_slice())),
        (CInput::Txn { .. }, COutput::TxnOutcome { succeeded, .. }) => (*succeeded, None),
        _ => return None,
    };
    let ops = input.branch(succeeded);
    let n = results.map_or(ops.len(), |r| r.len().min(ops.len()));
    Some(
        ops[..n]
            .iter()
            .enumerate()
            .map(move |(i, op)| (op, results.map(|r| &r[i]))),
    )
}

impl Names {
    pub(crate) fn new(keys: impl Iterator<Item = Vec<u8>>) -> Names {
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

    pub(crate) fn input(&mut self, i: &Input) -> Result<CInput, String> {
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

    pub(crate) fn kvs(&mut self, kvs: &[Kv]) -> Result<Vec<CKv>, String> {
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

    pub(crate) fn output(&mut self, o: &Output) -> Result<COutput, String> {
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

    pub(crate) fn export_kv(&self, kv: &CKv) -> Kv {
        Kv::new(
            self.keys[kv.key as usize].clone(),
            self.values[kv.val.value as usize].clone(),
            kv.val.create,
            kv.val.modr,
            kv.val.version,
        )
    }

    pub(crate) fn export(&self, o: &COutput) -> Output {
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
pub(crate) struct State {
    pub(crate) kv: Vec<Option<Val>>,
    pub(crate) rev: i64,
    /// Sum of `slot_hash` over the present keys.
    pub(crate) fp: u128,
    pub(crate) undo: Vec<(u32, Option<Val>)>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Mark {
    pub(crate) undo: usize,
    pub(crate) rev: i64,
    pub(crate) fp: u128,
}

impl State {
    pub(crate) fn new(keys: usize, rev: i64) -> State {
        State {
            kv: vec![None; keys],
            rev,
            fp: 0,
            undo: Vec::new(),
        }
    }

    pub(crate) fn set(&mut self, k: u32, new: Option<Val>) {
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

    pub(crate) fn mark(&self) -> Mark {
        Mark {
            undo: self.undo.len(),
            rev: self.rev,
            fp: self.fp,
        }
    }

    pub(crate) fn rollback(&mut self, m: Mark) {
        while self.undo.len() > m.undo {
            let (k, old) = self.undo.pop().expect("undo entry");
            self.kv[k as usize] = old;
        }
        self.rev = m.rev;
        self.fp = m.fp;
    }

    pub(crate) fn ids(sel: KeySel) -> std::ops::Range<u32> {
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
    pub(crate) fn step(&mut self, input: &CInput, values: &[Vec<u8>]) -> COutput {
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
            CInput::Txn { compares, .. } => {
                let succeeded = compares.iter().all(|c| self.holds(c, values));
                let branch = input.branch(succeeded);
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
pub(crate) enum Reject {
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
pub(crate) fn diff(model: &COutput, seen: &COutput) -> Result<(), Reject> {
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

/// splitmix64's finalizer.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The fingerprint of one present key: its id and value, create and mod revisions and version.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Compare;

    fn kv(k: &str, v: &str, create: i64, modr: i64, version: i64) -> Kv {
        Kv::new(k, v, create, modr, version)
    }

    #[test]
    fn the_model_answers_as_etcd() {
        let mut m = Model::new(["a", "b", "c"]);
        assert_eq!(m.revision(), 1);
        assert_eq!(m.apply(&Input::put("a", "1")), Output::Put { revision: 2 });
        assert_eq!(m.apply(&Input::put("a", "2")), Output::Put { revision: 3 });
        assert_eq!(m.get(b"a"), Some(kv("a", "2", 2, 3, 2)));
        // A delete of nothing does not move the revision.
        assert_eq!(
            m.apply(&Input::delete("b")),
            Output::Delete {
                revision: 3,
                deleted: 0
            }
        );
        // Compares on a missing key: a value compare is false whatever the operator, the
        // other targets compare as 0.
        let t = m.apply(&Input::txn(
            vec![Compare::value("b", CmpOp::NotEqual, "x")],
            vec![Input::put("c", "1")],
            vec![],
        ));
        assert_eq!(
            t,
            Output::Txn {
                succeeded: false,
                revision: 3,
                results: vec![]
            }
        );
        // Writes of a txn share one revision; its reads see its earlier writes.
        let t = m.apply(&Input::txn(
            vec![
                Compare::version("b", CmpOp::Equal, 0),
                Compare::create_revision("a", CmpOp::Equal, 2),
                Compare::mod_revision("a", CmpOp::Greater, 2),
            ],
            vec![
                Input::put("b", "1"),
                Input::put("c", "1"),
                Input::get_prefix(""),
                Input::delete("a"),
            ],
            vec![],
        ));
        assert_eq!(
            t,
            Output::Txn {
                succeeded: true,
                revision: 4,
                results: vec![
                    TxnResult::Put,
                    TxnResult::Put,
                    TxnResult::Get(vec![
                        kv("a", "2", 2, 3, 2),
                        kv("b", "1", 4, 4, 1),
                        kv("c", "1", 4, 4, 1)
                    ]),
                    TxnResult::Delete(1),
                ]
            }
        );
        // A recreated key starts again at version 1.
        m.apply(&Input::put("a", "3"));
        assert_eq!(m.get(b"a"), Some(kv("a", "3", 5, 5, 1)));
    }

    #[test]
    fn rollback_restores_the_slots_the_revision_and_the_fingerprint() {
        let mut s = State::new(3, 1);
        let m = s.mark();
        let out = s.step(&CInput::Put { key: 1, value: 0 }, &[b"v".to_vec()]);
        assert_eq!(out, COutput::Put { rev: 2 });
        assert_ne!(s.fp, 0);
        s.step(&CInput::Delete(KeySel::Range(0, 3)), &[]);
        assert_eq!(s.fp, 0, "an empty store has the empty fingerprint");
        s.rollback(m);
        assert_eq!((s.kv.clone(), s.rev, s.fp), (vec![None; 3], 1, 0));
        // The fingerprint is of the slots, whatever order they were written in.
        let val = |value| Val {
            value,
            create: 2,
            modr: 2,
            version: 1,
        };
        let (mut x, mut y) = (State::new(2, 1), State::new(2, 1));
        x.set(0, Some(val(0)));
        x.set(1, Some(val(1)));
        y.set(1, Some(val(1)));
        y.set(0, Some(val(0)));
        assert_eq!(x.fp, y.fp);
        y.set(0, Some(val(1)));
        assert_ne!(x.fp, y.fp);
    }

    #[test]
    fn diff_says_what_differs() {
        let why = |m: COutput, s: COutput| diff(&m, &s).unwrap_err().to_string();
        assert_eq!(
            why(COutput::Put { rev: 3 }, COutput::Put { rev: 2 }),
            "header revision differs (model 3, client saw 2)"
        );
        assert_eq!(
            why(
                COutput::Delete { rev: 2, deleted: 1 },
                COutput::Delete { rev: 2, deleted: 0 }
            ),
            "deleted count differs (model 1, client saw 0)"
        );
        let txn = |succeeded, results: Vec<CResult>| COutput::Txn {
            succeeded,
            rev: 2,
            results,
        };
        assert_eq!(
            why(txn(false, vec![]), txn(true, vec![])),
            "txn fails in the model"
        );
        assert_eq!(
            why(txn(true, vec![CResult::Put]), txn(true, vec![])),
            "txn result count differs (model 1, client saw 0)"
        );
        assert_eq!(
            why(
                txn(true, vec![CResult::Put, CResult::Delete(1)]),
                txn(true, vec![CResult::Put, CResult::Delete(0)])
            ),
            "txn result #1 differs"
        );
        assert_eq!(
            why(
                COutput::Put { rev: 2 },
                COutput::Delete { rev: 2, deleted: 0 }
            ),
            "response kind does not match the request"
        );
        // Only the branch and revision of an inferred txn outcome are compared.
        assert!(diff(
            &txn(true, vec![CResult::Put]),
            &COutput::TxnOutcome {
                succeeded: true,
                rev: 2
            }
        )
        .is_ok());
    }

    #[test]
    fn ran_ops_pairs_the_branch_that_ran_with_its_results() {
        let t = CInput::Txn {
            compares: vec![],
            success: vec![
                CInput::Put { key: 0, value: 0 },
                CInput::Get(KeySel::One(0)),
                CInput::Delete(KeySel::One(1)),
            ],
            failure: vec![CInput::Get(KeySel::One(1))],
        };
        let out = COutput::Txn {
            succeeded: true,
            rev: 2,
            results: vec![CResult::Put, CResult::Get(vec![])],
        };
        let pairs: Vec<_> = ran_ops(&t, &out).unwrap().collect();
        assert_eq!(pairs.len(), 2, "as far as both go");
        assert!(matches!(pairs[0], (CInput::Put { .. }, Some(CResult::Put))));
        let outcome = COutput::TxnOutcome {
            succeeded: false,
            rev: 2,
        };
        let pairs: Vec<_> = ran_ops(&t, &outcome).unwrap().collect();
        assert!(matches!(pairs[..], [(CInput::Get(KeySel::One(1)), None)]));
        assert!(ran_ops(&CInput::Get(KeySel::One(0)), &COutput::Put { rev: 2 }).is_none());
        let mut puts = Vec::new();
        for_each_put(&t, &mut |k, v| puts.push((k, v)));
        assert_eq!(puts, [(0, 0)]);
    }
}
