//! Compiling a history for the search: interning keys and values, dropping ambiguous reads,
//! inferring the outcome of ambiguous writes a read saw, and indexing what reads saw of each
//! key ([`KeyReads`]).

use std::collections::HashMap;

use crate::check::Options;
use crate::history::{Input, Op, Output, TxnResult};
use crate::model::{for_each_put, mix, ran_ops, CInput, CKv, COutput, CResult, Names, State, Val};
use crate::txn::TxnTree;

pub(crate) struct COp {
    /// Index in the history given to `check`.
    pub(crate) orig: usize,
    pub(crate) call: u64,
    /// `None` for an ambiguous op.
    pub(crate) ret: Option<u64>,
    pub(crate) input: CInput,
    /// `None` for an ambiguous op.
    pub(crate) output: Option<COutput>,
    /// Random 128-bit tag: a set of ops is fingerprinted by the sum of its tags.
    pub(crate) tag: u128,
    /// An ambiguous put whose output was inferred from a read that saw its value.
    pub(crate) inferred: bool,
}

/// An ambiguous put of a (key, value) pair that no other op writes, seen by a completed op
/// with mod revision `m`, certainly took effect, at revision `m`: it gets that output (and
/// becomes an op the search must place, at exactly that revision). The same holds for a txn
/// with such a put in one branch: it took effect at `m` and ran that branch. Without this
/// every such write would be a free choice of the search at every revision gap.
pub(crate) fn infer_observed_writes(ops: &mut [COp], initial: &State) {
    let mut writers: HashMap<(u32, u32), u32> = HashMap::new();
    for (k, v) in initial.kv.iter().enumerate() {
        if let Some(v) = v {
            *writers.entry((k as u32, v.value)).or_default() += 1;
        }
    }
    for op in ops.iter() {
        for_each_put(&op.input, &mut |k, v| {
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
            CInput::Txn { .. } => match (
                first_seen(op.input.branch(true)),
                first_seen(op.input.branch(false)),
            ) {
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
pub(crate) struct Seen {
    pub(crate) create: i64,
    pub(crate) modr: i64,
    pub(crate) version: i64,
}

/// What reads saw of one key (when present), in order of their header revision `h`, and
/// the revisions at which ops with a known output put it. Used to reject (`forbids`) placing
/// an ambiguous write at revision `m`: every op that saw the key at `h >= m` comes after it.
#[derive(Default)]
pub(crate) struct KeyReads {
    pub(crate) h: Vec<i64>,
    pub(crate) seen: Vec<Seen>,
    /// The op that saw it.
    pub(crate) by: Vec<u32>,
    /// The least mod / create revision seen from each index on.
    pub(crate) min_mod_from: Vec<i64>,
    pub(crate) min_create_from: Vec<i64>,
    /// Sorted.
    pub(crate) known_puts: Vec<i64>,
}

/// How many reads after a write `forbids` looks at for versions.
pub(crate) const VERSION_READS: usize = 8;

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
                (CInput::Txn { .. }, Some(out)) => {
                    let Some(ran) = ran_ops(&op.input, out) else {
                        continue;
                    };
                    let rev = out.revision();
                    // Reads inside a txn that wrote saw the state before it, or its own
                    // writes (whose mod revision is the txn's: never below `rev - 1`).
                    let wrote = matches!(out, COutput::Txn { results, .. } if results
                        .iter()
                        .any(|r| matches!(r, CResult::Put | CResult::Delete(1..))));
                    let h = if wrote { rev - 1 } else { rev };
                    for (b, r) in ran {
                        match (b, r) {
                            (CInput::Get(_), Some(CResult::Get(kvs))) => note(h, kvs, i),
                            // With results, only a put answered as one; with the branch only
                            // known, every put of it.
                            (CInput::Put { key, .. }, Some(CResult::Put) | None) => {
                                known_puts[*key as usize].push(rev)
                            }
                            _ => {}
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
    pub(crate) fn forbids(&self, m: i64, before: Option<Val>, after: Option<Val>) -> bool {
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

pub(crate) struct Compiled {
    pub(crate) names: Names,
    pub(crate) ops: Vec<COp>,
    pub(crate) reads: Vec<KeyReads>,
    pub(crate) initial: State,
    pub(crate) dropped: usize,
}

pub(crate) fn compile(history: &[Op], opts: &Options) -> Result<Compiled, String> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for op in history {
        op.input.walk(&mut |i| match i {
            Input::Put { key, .. } => keys.push(key.clone()),
            Input::Get { key, prefix } | Input::Delete { key, prefix } => {
                if !prefix {
                    keys.push(key.clone());
                }
            }
            Input::Txn { compares, .. } => keys.extend(compares.iter().map(|c| c.key.clone())),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str, create: i64, modr: i64, version: i64) -> crate::Kv {
        crate::Kv::new(k, v, create, modr, version)
    }

    fn get(call: u64, k: &str, rev: i64, kvs: Vec<crate::Kv>) -> Op {
        Op::ok(
            0,
            call,
            call + 1,
            Input::get(k),
            Output::Get { revision: rev, kvs },
        )
    }

    #[test]
    fn writes_a_read_saw_are_resolved_and_ambiguous_reads_dropped() {
        let history = vec![
            Op::ambiguous(1, 0, Input::put("a", "1")),
            get(10, "a", 2, vec![kv("a", "1", 2, 2, 1)]),
            Op::ambiguous(
                2,
                0,
                Input::txn(vec![], vec![Input::put("b", "x")], vec![Input::get("b")]),
            ),
            get(20, "b", 3, vec![kv("b", "x", 3, 3, 1)]),
            Op::ambiguous(3, 0, Input::get("a")),
        ];
        let c = compile(&history, &Options::default()).unwrap();
        assert_eq!((c.ops.len(), c.dropped), (4, 1));
        assert!(c.ops[0].inferred);
        assert_eq!(c.ops[0].output, Some(COutput::Put { rev: 2 }));
        assert!(c.ops[2].inferred);
        assert_eq!(
            c.ops[2].output,
            Some(COutput::TxnOutcome {
                succeeded: true,
                rev: 3
            })
        );
        // Both now count as puts at known revisions of their keys ("a" is key 0, "b" key 1).
        assert_eq!(c.reads[0].known_puts, [2]);
        assert_eq!(c.reads[1].known_puts, [3]);
        assert_eq!(c.reads[0].h, [2]);
    }

    #[test]
    fn later_reads_forbid_a_write_they_contradict() {
        let history = vec![
            Op::ok(0, 0, 1, Input::put("a", "1"), Output::Put { revision: 2 }),
            get(2, "a", 2, vec![kv("a", "1", 2, 2, 1)]),
            get(4, "a", 5, vec![kv("a", "1", 2, 2, 1)]),
        ];
        let c = compile(&history, &Options::default()).unwrap();
        let r = &c.reads[0];
        let val = |create, modr, version| {
            Some(Val {
                value: 0,
                create,
                modr,
                version,
            })
        };
        // A write at 3 or 4: the read at 5 still saw mod revision 2.
        assert!(r.forbids(3, val(2, 2, 1), val(2, 3, 2)));
        assert!(r.forbids(4, val(2, 2, 1), val(2, 4, 2)));
        // Nothing read after 5.
        assert!(!r.forbids(6, val(2, 2, 1), val(2, 6, 2)));
        // The creation at 2 is what both reads saw; a version they did not see is not.
        assert!(!r.forbids(2, None, val(2, 2, 1)));
        assert!(r.forbids(2, None, val(2, 2, 2)));
    }
}
